"""Image upload and download throughput through filemem-api vs `cp` of the same file."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench._common import MIB, at_least, bench_parser, table
from filemem.common.guests import Image
from filemem.compute.agent_api import AgentApiClient
from filemem.compute.image_cache import ImageCache
from tests.functional.api_fixtures import TOKEN, api_env

DESCRIPTION = """\
Image transfer: one qcow2 image of --size-mib MiB of data (random bytes written into it, so
nothing is sparse), moved four ways per run, the order rotated each run so machine noise hits
all alike:

  cp        `cp` of the file to another file on the same file system (the baseline)
  upload    PUT /image/v2/images/{id}/file to a filemem-api process (streamed from the file;
            md5 + sha512 computed, the file inspected, then active)
  download  GET /image/v2/images/{id}/file into a file
  cache     the agent's image cache filling <scratch>/_base: the same GET through
            AgentApiClient.download_image, checked against size and sha512 while written,
            then inspected (filemem.compute.image_cache)

Everything runs on loopback on this machine, so the ratios measure filemem's overhead over
copying the bytes, not a network. The table shows medians (MiB/s) and each time over cp's.
(qcow2, as cloud images are: format_inspector reads its header only. A raw image is read
through every inspector to its end, at each upload and each cache fill.)
"""

OCTETS = {"Content-Type": "application/octet-stream"}


def _chunks(path: Path, size: int = MIB) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(size):
            yield chunk


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Transfers:
    """One API, one source file; each method is one measured transfer."""

    def __init__(self, http: httpx.Client, url: str, source: Path, scratch: Path) -> None:
        self.http, self.url, self.source, self.scratch = http, url, source, scratch
        self.agent = AgentApiClient(url, TOKEN)
        self.image_id = self._upload()

    def _queued(self) -> str:
        body = {"name": "bench", "disk_format": "qcow2", "container_format": "bare"}
        response = self.http.post("/image/v2/images", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    def _upload(self) -> str:
        image_id = self._queued()
        path = f"/image/v2/images/{image_id}/file"
        self.http.put(path, content=_chunks(self.source), headers=OCTETS).raise_for_status()
        return image_id

    def upload(self) -> None:
        image_id = self._upload()
        self.http.delete(f"/image/v2/images/{image_id}").raise_for_status()

    def download(self) -> None:
        target = self.scratch / "downloaded"
        with (
            self.http.stream("GET", f"/image/v2/images/{self.image_id}/file") as got,
            open(target, "wb") as out,
        ):
            got.raise_for_status()
            for chunk in got.iter_bytes(MIB):
                out.write(chunk)
        target.unlink()

    def cache(self) -> None:
        shown = self.http.get(f"/image/v2/images/{self.image_id}").json()
        base = self.scratch / "_base"
        shutil.rmtree(base, ignore_errors=True)
        image = Image(
            kind="disk",
            disk_format="qcow2",
            source="upload",
            image_id=self.image_id,
            size=shown["size"],
            os_hash_algo=shown["os_hash_algo"],
            os_hash_value=shown["os_hash_value"],
        )
        ImageCache(base, self.agent.download_image).ensure(image)

    def cp(self) -> None:
        target = self.scratch / "copied"
        subprocess.run(["cp", str(self.source), str(target)], check=True)
        target.unlink()


def measure(transfers: Transfers, runs: int) -> dict[str, list[float]]:
    ways: dict[str, Callable[[], None]] = {
        "cp": transfers.cp,
        "upload": transfers.upload,
        "download": transfers.download,
        "cache": transfers.cache,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            times[name].append(_timed(ways[name]))
    return times


def report(times: dict[str, list[float]], size_mib: int) -> str:
    base = statistics.median(times["cp"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            [name, f"{size_mib / median:.0f}", f"{median * 1000:.0f}", f"{median / base:.2f}x"]
        )
    return table(["transfer", "MiB/s", "median ms", "time / cp"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(
        "image_transfer", DESCRIPTION, runs=5, scratch=Path("/var/tmp/filemem-bench/images")
    )
    parser.add_argument("--size-mib", type=at_least(1), default=256, metavar="MIB")
    args = parser.parse_args(argv)
    scratch: Path = args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    raw, source = scratch / "source.raw", scratch / "source.qcow2"
    with open(raw, "wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(MIB))
    convert = ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(source)]
    subprocess.run(convert, check=True)
    raw.unlink()
    try:
        with api_env(
            scratch / "env", api_options=f"image_size_cap = {2 * args.size_mib * MIB}\n"
        ) as env:
            transfers = Transfers(env.http, env.url, source, scratch)
            times = measure(transfers, args.runs)
            transfers.agent.close()
    finally:
        source.unlink(missing_ok=True)
    print(f"{args.size_mib} MiB image, {args.runs} runs")
    print(report(times, args.size_mib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
