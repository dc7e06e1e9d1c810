"""Running one density case: guests spawned into a fresh partition, filled, then watched."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import threading
import time
from pathlib import Path

from bench._common import MIB, Session, new_uuid
from bench.density.cases import CaseResult, CaseSpec, GuestRun
from bench.density.probes import Device, delta, kernel_oom_kills, mapped_folios, written_bytes
from devtools.memcheck import MEMCHECK_FILLED_PREFIX, MemcheckPass
from filemem.backing.residency import block_device_of, file_residency, process_memory, qemu_pid
from filemem.common.guests import Flavor, Image
from filemem.exceptions import FilememError
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver

DISTURBED = "; DISTURBED: something was mounted over memory_backing_dir meanwhile"
SAMPLE_S = 2.0  # residency and partition counters during the measured window
FILL_POLL_S = 0.1


class FillWatch:
    """Notes when each guest's console first shows the FILLED line (a thread polls the logs), so
    a guest that fills while the next one is being spawned gets its own time."""

    def __init__(self) -> None:
        self._pending: dict[str, GuestRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fill-watch", daemon=True)

    def __enter__(self) -> FillWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, run: GuestRun) -> None:
        with self._lock:
            self._pending[run.uuid] = run

    def _run(self) -> None:
        while not self._stop.wait(FILL_POLL_S):
            with self._lock:
                pending = list(self._pending.values())
            for run in pending:
                with contextlib.suppress(FileNotFoundError):
                    if MEMCHECK_FILLED_PREFIX in run.console.read_text(errors="replace"):
                        run.filled_at = time.perf_counter()
                        with self._lock:
                            del self._pending[run.uuid]


def sample(
    case: CaseResult,
    part: partition.Partition,
    guest_bytes: int,
    backing_dir: Path,
    device: Device | None,
) -> None:
    case.store_changed |= block_device_of(backing_dir) != device
    for run in case.running():
        if (path := run.memory_file_via_fd()) is not None:
            resident = file_residency(path)
            if resident is not None and resident.nominal_bytes:
                run.residency.append(resident.resident_bytes / resident.nominal_bytes)
        elif run.pid is not None:
            # QEMU's own memory is in the RSS too: a RAM-backed guest can exceed 100 %.
            memory = process_memory(run.pid)
            if memory is not None:
                run.residency.append(memory.rss_bytes / guest_bytes)
    usage = partition.partition_memory_usage(part)
    case.anon_bytes.append(usage.rss_bytes)
    case.cache_bytes.append(usage.cache_bytes)


def spawn_all(
    s: Session,
    driver: LibvirtDriver,
    spec: CaseSpec,
    image: Image,
    flavor: Flavor,
    watch: FillWatch,
) -> list[GuestRun]:
    runs = []
    for i in range(spec.guests):
        uuid = new_uuid()
        run = GuestRun(
            name=s.guest_name(f"{spec.label}-{i}"),
            uuid=uuid,
            console=driver.console_log(uuid),
            spawn_started=time.perf_counter(),
        )
        runs.append(run)
        try:
            info = driver.spawn(run.name, uuid, flavor, image)
        except FilememError as exc:
            # A RAM-backed set may not even start under the limit: a result, not a crash.
            run.spawn_error = str(exc)
            print(f"#   {run.name}: spawn failed: {exc}", flush=True)
            continue
        run.pid = qemu_pid(run.name)
        if info.memory_file is not None:
            run.memory_file = info.memory_file.path
            with contextlib.suppress(OSError):
                run.memory_dir_fd = os.open(
                    run.memory_file.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                )
        watch.add(run)
    return runs


def measure(
    s: Session,
    case: CaseResult,
    driver: LibvirtDriver,
    part: partition.Partition,
    args: argparse.Namespace,
    started: float,
    device: Device | None,
) -> None:
    """Boot the case's guests, wait until they filled (or died), then watch them for the
    measured window; everything read before teardown removes the console logs."""
    spec = case.spec
    backing_dir = driver.memory_backing_dir()
    case.store_changed |= block_device_of(backing_dir) != device
    cmdline = s.image.memcheck_cmdline(
        args.mem_mb, args.hot_mb, args.verify_every, pass_delay_ms=args.pass_delay_ms
    )
    image = Image(kind="kernel", kernel=s.image.kernel, initrd=s.image.initrd, cmdline=cmdline)
    flavor = Flavor(name=f"density-{args.guest_mb}", vcpus=1, memory_mb=args.guest_mb)
    written_at_start = written_bytes(device)
    with FillWatch() as watch:
        case.runs = spawn_all(s, driver, spec, image, flavor, watch)
        deadline = time.perf_counter() + args.fill_timeout
        while any(r.filled_at is None and r.running() for r in case.booted):
            if time.perf_counter() > deadline:
                print(f"#   not all filled after {args.fill_timeout} s; measuring anyway")
                break
            time.sleep(0.2)
    window_start = time.perf_counter()
    written_before = written_bytes(device)
    case.boot_write_bytes = delta(written_at_start, written_before)
    for run in case.booted:
        run.passes_before_window = len([x for x in run.read_lines() if isinstance(x, MemcheckPass)])
    end = window_start + args.duration
    while case.running() and time.perf_counter() < end:
        sample(case, part, args.guest_mb * MIB, backing_dir, device)
        time.sleep(max(0.0, min(SAMPLE_S, end - time.perf_counter())))
    written_after = written_bytes(device)
    case.window_s = time.perf_counter() - window_start
    case.window_write_bytes = delta(written_before, written_after)
    case.store_changed |= block_device_of(backing_dir) != device
    for run in case.booted:
        run.survived = run.running()
        run.lines = run.read_lines()
        if run.survived and run.pid is not None and run.memory_file is not None:
            run.folios = mapped_folios(run.pid, run.memory_file)
    usage = partition.partition_memory_usage(part)
    case.failcnt, case.max_usage_bytes = usage.failcnt, usage.max_usage_bytes
    case.oom_killed_pids = kernel_oom_kills(part)
    case.other_guests = sorted(s.watch.between(started, time.perf_counter()))


def run_case(
    s: Session, spec: CaseSpec, args: argparse.Namespace, device: Device | None
) -> CaseResult:
    started = time.perf_counter()
    name = s.guest_name(spec.label)
    limit_mb = args.limit_mb if spec.limited else 0
    part = partition.ensure_partition(name, limit_mb * MIB or None)
    file_backed_mb = spec.guests * args.guest_mb * 2 if spec.backing == "file" else 0
    settings = dataclasses.replace(
        s.settings(file_backed_mb, "immediate"),
        guest_partition=name,
        guest_memory_limit_mb=limit_mb,
    )
    driver = LibvirtDriver(settings)
    case = CaseResult(spec=spec, partition=part.libvirt_path)
    print(
        f"# {spec.label}: {spec.guests} x {args.guest_mb} MiB guests, {spec.backing}-backed, "
        f"partition {part.libvirt_path}, limit {f'{limit_mb} MiB' if limit_mb else 'none'}",
        flush=True,
    )
    try:
        measure(s, case, driver, part, args, started, device)
    finally:
        for run in case.runs:
            if run.memory_dir_fd is not None:
                os.close(run.memory_dir_fd)
            with contextlib.suppress(FilememError):
                driver.destroy(run.uuid)
        driver.connection.close()
        partition.remove_partition(part, wait=30.0)
    case.elapsed_s = time.perf_counter() - started
    kills = "?" if case.oom_killed_pids is None else len(case.oom_killed_pids)
    print(
        f"#   {len(case.survivors)}/{len(case.booted)} alive, {kills} OOM kills, "
        f"{len(case.hot_ms())} hot passes in {case.window_s:.0f} s; case took "
        f"{case.elapsed_s:.0f} s" + (DISTURBED if case.store_changed else ""),
        flush=True,
    )
    return case


def plan(args: argparse.Namespace) -> list[CaseSpec]:
    """Baseline, then file- and RAM-backed at every factor, then the baseline again."""

    def guests(factor: float) -> int:
        count: int = max(1, round(factor * args.limit_mb / args.mem_mb))
        return count

    base = guests(1.0)
    specs = [CaseSpec("base-a", "ram", 1.0, base, limited=False)]
    for factor in args.factors:
        for backing in ("file", "ram"):
            specs.append(
                CaseSpec(f"{backing}-{factor:g}x", backing, factor, guests(factor), limited=True)
            )
    specs.append(CaseSpec("base-b", "ram", 1.0, base, limited=False))
    return specs
