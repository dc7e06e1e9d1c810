"""Run Tempest's compute API tests against a fresh filemem cloud and hold them to expected.yaml.

    python -m tests.tempest.run [--regex R] [--concurrency N] [--observed FILE] [--keep]

Exit 0 when every test outside expected.yaml passed and the lists hold no stale entry.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.test_image import TestImage, ensure_test_image
from tests.tempest.config import tempest_conf
from tests.tempest.results import (
    COMPUTE_API,
    Expected,
    Outcome,
    counts,
    observed_yaml,
    outcomes,
    parse_subunit,
    problems,
    test_name,
)
from tests.tempest.stack import TempestCloud, tempest_cloud

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
SCRATCH = Path("/var/tmp/filemem-tests")
# Two workers for two cores: each mostly waits on the API and on TCG guests booting.
CONCURRENCY = 2
RUN_TIMEOUT_S = 3600


@dataclass
class Report:
    every: dict[str, Outcome]
    problems: list[str]
    seconds: float
    log: Path

    def summary(self) -> str:
        totals = counts(self.every)
        return ", ".join(f"{n} {status}" for status, n in totals.items())


def _tempest(ws: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tempest ARGS` in the workspace (its etc/tempest.conf and .stestr.conf)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "TEMPEST_"))}
    env["TEMPEST_CONFIG_DIR"] = str(ws / "etc")
    if log is None:
        return subprocess.run(
            [str(BIN / "tempest"), *args],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    with log.open("w") as out:
        return subprocess.run(
            [str(BIN / "tempest"), *args],
            cwd=ws,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )


def _workspace(cloud: TempestCloud) -> Path:
    ws = cloud.base / "tempest"
    # A workspace file of its own: ~/.tempest/workspace.yaml would refuse a second run's name.
    registry = str(cloud.base / "workspace.yaml")
    done = _tempest(cloud.base, "init", "--workspace-path", registry, str(ws))
    assert done.returncode == 0, done.stdout + done.stderr
    with (ws / "etc" / "tempest.conf").open("w") as conf:
        tempest_conf(cloud, ws / "logs").write(conf)
    return ws


def _last_subunit(ws: Path) -> bytes:
    done = subprocess.run(
        [str(BIN / "stestr"), "last", "--subunit"],
        cwd=ws,
        capture_output=True,
        timeout=600,
        check=False,
    )
    return done.stdout


def run_tempest(cloud: TempestCloud, regex: str, concurrency: int, expected: Expected) -> Report:
    ws = _workspace(cloud)
    listed = _tempest(ws, "run", "--list-tests", "--regex", regex)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names = [test_name(line) for line in listed.stdout.splitlines() if line.startswith("tempest.")]
    assert names, f"no test matches {regex}:\n{listed.stdout}{listed.stderr}"
    log = cloud.base / "tempest-run.log"
    began = time.monotonic()
    _tempest(ws, "run", "--regex", regex, "--concurrency", str(concurrency), log=log)
    seconds = time.monotonic() - began
    every = outcomes(names, parse_subunit(_last_subunit(ws)))
    return Report(every, problems(every, expected), seconds, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--regex", help=f"default: expected.yaml's run list, or {COMPUTE_API} (--all)"
    )
    parser.add_argument("--all", action="store_true", help="every compute API test")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--observed", type=Path, help="write the outcomes here as YAML")
    parser.add_argument("--keep", action="store_true", help="leave logs in the state dir")
    args = parser.parse_args(argv)
    subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True)
    image: TestImage = ensure_test_image(
        Path(os.environ.get("FILEMEM_TEST_IMAGE_DIR", "/var/lib/filemem/images/test"))
    )
    base = SCRATCH / f"tempest-{os.getpid()}"
    with tempest_cloud(base, image, keep=args.keep) as cloud:
        expected = Expected.load()
        regex = args.regex or (COMPUTE_API if args.all else expected.regex())
        report = run_tempest(cloud, regex, args.concurrency, expected)
        if args.observed:
            args.observed.write_text(observed_yaml(report.every))
        print("\n".join(report.problems))
        print(f"tempest: {report.summary()} in {report.seconds:.0f} s (log {report.log})")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
