"""Shared benchmark helpers: options, libvirtd, scratch dirs, guests, Placement, tables."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import libvirt

from devtools.services import ReadyLine, ServiceProcess, python_module
from devtools.test_image import DEFAULT_DEST, TestImage, ensure_test_image
from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image
from filemem.virt import guest_config
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver

REPO = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
SCRATCH = Path("/var/tmp/filemem-bench")
POLL_S = 0.02
MIB = 1024 * 1024
ACTIVE = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE

PLACEMENT_READY = ReadyLine(r"^placement listening on (http://127\.0\.0\.1:\d+)$")
PLACEMENT_START_S = 120.0

AllocationMode = Literal["immediate", "ondemand"]


# -- command line ----------------------------------------------------------------------------


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= low."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        return value

    return parse


def bench_parser(
    name: str,
    description: str,
    *,
    runs: int | None = None,
    runs_help: str = "measured runs",
    warmup: int | None = None,
    warmup_help: str = "unmeasured runs first",
    scratch: Path | None = None,
    scratch_help: str = "where the run's files go",
) -> argparse.ArgumentParser:
    """The parser of `python -m bench.<name>`: `description` shown as written (line breaks
    kept), and the options benches share, each added when given its default: --runs N (>= 1),
    --warmup N (>= 0), --scratch DIR. Add the bench's own options to it, then parse_args."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if runs is not None:
        parser.add_argument(
            "--runs",
            type=at_least(1),
            default=runs,
            metavar="N",
            help=f"{runs_help} (default {runs})",
        )
    if warmup is not None:
        parser.add_argument(
            "--warmup",
            type=at_least(0),
            default=warmup,
            metavar="N",
            help=f"{warmup_help} (default {warmup})",
        )
    if scratch is not None:
        parser.add_argument(
            "--scratch",
            type=Path,
            default=scratch,
            metavar="DIR",
            help=f"{scratch_help} (default {scratch})",
        )
    return parser


def add_guest_args(parser: argparse.ArgumentParser) -> None:
    """--memory-mb, --file-backed-memory, --allocation: the guests of the libvirt benches."""
    parser.add_argument(
        "--memory-mb",
        type=at_least(1),
        default=256,
        metavar="MIB",
        help="guest memory in MiB (default 256)",
    )
    parser.add_argument(
        "--file-backed-memory",
        type=at_least(1),
        default=4096,
        metavar="MIB",
        help="[libvirt] file_backed_memory in MiB (default 4096)",
    )
    parser.add_argument(
        "--allocation",
        choices=["immediate", "ondemand"],
        default="immediate",
        help="memory file allocation mode (default immediate)",
    )


# -- libvirtd, Placement, scratch dirs, guests ------------------------------------------------


def start_libvirt() -> None:
    """Run scripts/start-libvirt (idempotent); it prints the libvirt and QEMU versions."""
    subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True)


@contextlib.contextmanager
def standalone_placement(
    log_dir: Path, args: Sequence[str], serve: Sequence[str] | None = None
) -> Iterator[str]:
    """`<serve> <args> --bind 127.0.0.1 --port 0` (serve: `python -m filemem.cmd.placement`)
    until the block ends; yields its URL. stderr goes to <log_dir>/placement-stderr.log."""
    argv = [
        *(serve or python_module("filemem.cmd.placement")),
        *args,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]
    with ServiceProcess(
        argv,
        log_path=log_dir / "placement-stderr.log",
        ready=PLACEMENT_READY,
        cwd=REPO,
        name="placement",
        start_timeout=PLACEMENT_START_S,
        stop_timeout=15,
    ) as url:
        yield url


def mkdir_0755(path: Path) -> Path:
    """QEMU runs as libvirt-qemu: every directory down to a console log must be searchable."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


class ForeignWatch:
    """Polls libvirt in a thread for running guests that are not ours (CPU and disk noise)."""

    def __init__(self, prefix: str, interval: float = 0.5) -> None:
        self.prefix = prefix
        self.interval = interval
        self._seen: list[tuple[float, frozenset[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="foreign-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = libvirt.open(URI)
        try:
            while not self._stop.is_set():
                with contextlib.suppress(libvirt.libvirtError):
                    names = frozenset(
                        dom.name()
                        for dom in conn.listAllDomains(ACTIVE)
                        if not dom.name().startswith(self.prefix)
                    )
                    if names:
                        self._seen.append((time.perf_counter(), names))
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def between(self, t0: float, t1: float) -> set[str]:
        """Other guests seen running from t0 to t1 (perf_counter times, widened by a poll)."""
        lo, hi = t0 - self.interval, t1 + self.interval
        return {name for at, names in list(self._seen) if lo <= at <= hi for name in names}

    def all(self) -> set[str]:
        return {name for _, names in list(self._seen) for name in names}


@dataclass(frozen=True)
class Session:
    """One benchmark run: its scratch dir, the prefix of every guest it names, the test image."""

    run_dir: Path
    prefix: str
    image: TestImage
    watch: ForeignWatch

    def guest_name(self, label: str) -> str:
        return f"{self.prefix}{label}"

    def virsh_dir(self, name: str) -> Path:
        return mkdir_0755(self.run_dir / "virsh" / name)

    def settings(
        self, file_backed_memory_mb: int, allocation_mode: AllocationMode
    ) -> DriverSettings:
        return driver_settings(self.run_dir / "state", file_backed_memory_mb, allocation_mode)

    def driver(self, file_backed_memory_mb: int, allocation_mode: AllocationMode) -> LibvirtDriver:
        return LibvirtDriver(self.settings(file_backed_memory_mb, allocation_mode))


def driver_settings(
    state_path: Path, file_backed_memory_mb: int, allocation_mode: AllocationMode
) -> DriverSettings:
    mkdir_0755(state_path)
    return DriverSettings(
        connection_uri=URI,
        virt_type="qemu",
        file_backed_memory_mb=file_backed_memory_mb,
        allocation_mode=allocation_mode,
        headroom_mb=16,
        state_path=state_path,
        qemu_conf_path=Path("/etc/libvirt/qemu.conf"),
        shutdown_timeout=10.0,
    )


@contextlib.contextmanager
def session(tag: str) -> Iterator[Session]:
    """Start libvirtd, ensure the test image; on exit (Ctrl-C too) remove every guest and file."""
    start_libvirt()
    image = ensure_test_image(DEFAULT_DEST, log=lambda line: print(f"# {line}"))
    mkdir_0755(SCRATCH)
    run_dir = mkdir_0755(SCRATCH / uuidlib.uuid4().hex[:12])
    prefix = f"{tag}-{run_dir.name[:6]}-"
    current = Session(run_dir=run_dir, prefix=prefix, image=image, watch=ForeignWatch(prefix))
    current.watch.start()
    try:
        yield current
    finally:
        current.watch.stop()
        if current.watch.all():
            print(
                f"# NOTE: other guests (not this benchmark's) ran meanwhile: "
                f"{', '.join(sorted(current.watch.all()))}"
            )
        left = remove_domains(prefix)
        if left:
            print(f"# cleanup: removed leftover guests {', '.join(left)}")
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_domains(prefix: str) -> list[str]:
    """Destroy and undefine every domain whose name starts with prefix; returns their names."""
    conn = libvirt.open(URI)
    removed: list[str] = []
    try:
        for dom in conn.listAllDomains(0):
            name = dom.name()
            if not name.startswith(prefix):
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isPersistent():
                    dom.undefine()
            removed.append(name)
    finally:
        conn.close()
    return removed


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def kernel_image(test_image: TestImage, touch_mb: int = 0) -> Image:
    return Image(
        kind="kernel",
        kernel=test_image.kernel,
        initrd=test_image.initrd,
        cmdline=test_image.cmdline(touch_mb=touch_mb),
    )


def domain_xml(
    name: str, uuid: str, flavor: Flavor, image: Image, console_log: Path, host: HostFacts
) -> str:
    """The XML filemem's spawn would define for this guest (same pure build_domain)."""
    request = GuestRequest(
        name=name, uuid=uuid, flavor=flavor, image=image, console_log=console_log
    )
    return guest_config.build_domain(request, host).to_xml()


def virsh(*args: str) -> None:
    done = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)} failed: {done.stderr.strip()}")


def wait_for_line(path: Path, needle: str, timeout: float) -> float:
    """Poll path every POLL_S until needle appears; returns time.perf_counter() at that poll."""
    deadline = time.perf_counter() + timeout
    text = ""
    while True:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text(errors="replace")
            if needle in text:
                return time.perf_counter()
        if time.perf_counter() > deadline:
            tail = text[-400:].strip() or "(empty or missing)"
            raise TimeoutError(f"{needle!r} not in {path} after {timeout:.0f} s; tail:\n{tail}")
        time.sleep(POLL_S)


def run_sync() -> None:
    os.sync()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain right-aligned text table (the first column left-aligned)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds, for tables."""
    return f"{seconds * 1000:.0f}"


class _Ordered(Protocol):
    @property
    def order(self) -> str: ...


PairT = TypeVar("PairT", bound=_Ordered)


def interleaved(warmup: int, runs: int, run_pair: Callable[[int], PairT]) -> list[PairT]:
    """warmup + runs pairs (run_pair(i) alternates the order itself); warm-ups are dropped."""
    pairs: list[PairT] = []
    for i in range(warmup + runs):
        pair = run_pair(i)
        if i < warmup:
            print(f"# warm-up pair {i + 1}/{warmup} ({pair.order}) dropped", flush=True)
        else:
            print(f"# run {i - warmup + 1}/{runs} ({pair.order}) done", flush=True)
            pairs.append(pair)
    return pairs
