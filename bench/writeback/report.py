"""Writeback's report: per-window figures, the table, header and note lines."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench._common import MIB, table
from bench.stats import p95
from bench.writeback.measure import FLUSH_MARGIN_S, SAMPLE_S, Run, Window


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def figures(w: Window, run: Run, args: argparse.Namespace) -> dict[str, Any]:
    guests = max(1, len(w.passes))
    minutes = w.seconds / 60
    bg = run.background_rate()
    raw = None if w.write_bytes is None else w.write_bytes / MIB / guests / minutes
    net = (
        None
        if w.write_bytes is None or bg is None
        else max(0.0, w.write_bytes - bg * w.seconds) / MIB / guests / minutes
    )
    rewritten = sum(w.passes) * args.hot_mb / guests / minutes if minutes else None
    return {
        "setting": w.setting.label,
        "pressure": w.pressure,
        "sysctls": w.sysctls,
        "window_s": w.seconds,
        "write_bytes": w.write_bytes,
        "write_mib_per_guest_min_raw": raw,
        "write_mib_per_guest_min": net,
        "hot_sets_written_per_min": None if net is None else net / args.hot_mb,
        "rewritten_mib_per_guest_min": rewritten,
        "amplification": None if net is None or not rewritten else net / rewritten,
        "passes_per_guest": w.passes,
        "hot_ms_median": statistics.median(w.hot_ms) if w.hot_ms else None,
        "hot_ms_p95": p95(w.hot_ms) if w.hot_ms else None,
        "dirty_mib_mean": statistics.fmean(w.dirty_kib) / 1024 if w.dirty_kib else None,
        "dirty_mib_max": max(w.dirty_kib) / 1024 if w.dirty_kib else None,
        "writeback_mib_mean": statistics.fmean(w.writeback_kib) / 1024 if w.writeback_kib else None,
        "writeback_mib_max": max(w.writeback_kib) / 1024 if w.writeback_kib else None,
        "partition_cache_mib_mean": statistics.fmean(w.cache_bytes) / MIB
        if w.cache_bytes
        else None,
        "partition_failcnt": w.failcnt,
        "alive": w.alive,
        "store_changed": w.store_changed,
    }


def result_table(run: Run, args: argparse.Namespace) -> str:
    rows = []
    for w in run.windows:
        f = figures(w, run, args)
        rows.append(
            [
                w.setting.label,
                "pressure" if w.pressure else "none",
                f"{f['window_s']:.0f}",
                fmt(f["write_mib_per_guest_min"]),
                fmt(f["write_mib_per_guest_min_raw"]),
                fmt(f["hot_sets_written_per_min"], ".2f"),
                fmt(f["rewritten_mib_per_guest_min"], ".0f"),
                fmt(f["amplification"], ".4f"),
                fmt(f["hot_ms_median"], ".0f"),
                fmt(f["hot_ms_p95"], ".0f"),
                f"{fmt(f['dirty_mib_mean'], '.0f')}/{fmt(f['dirty_mib_max'], '.0f')}",
                f"{fmt(f['writeback_mib_mean'], '.1f')}/{fmt(f['writeback_mib_max'], '.0f')}",
                fmt(f["partition_cache_mib_mean"], ".0f"),
                str(f["partition_failcnt"]),
                f"{w.alive}/{len(w.passes)}" + (" DISTURBED" if w.store_changed else ""),
            ]
        )
    return table(
        [
            "setting",
            "limit",
            "window s",
            "write MiB/g/min",
            "raw",
            "hot sets/min",
            "rewritten MiB/g/min",
            "amplif.",
            "hot ms med",
            "p95",
            "Dirty MiB mean/max",
            "Writeback mean/max",
            "cache MiB",
            "failcnt",
            "alive",
        ],
        rows,
    )


def header_lines(env: dict[str, Any], args: argparse.Namespace) -> list[str]:
    return [
        f"# writeback: {args.guests} guests of {args.guest_mb} MiB, file-backed "
        f"({args.allocation}); memcheck fills {args.mem_mb} MiB, rewrites a {args.hot_mb} MiB "
        f"hot set per pass, {args.pass_delay_ms} ms between passes, verifies all every "
        f"{args.verify_every} passes; pressure = partition limit {args.limit_mb} MiB",
        f"# kernel {env['kernel']}, {env['cpus']} CPUs, libvirt {env['libvirt']}, QEMU "
        f"{env['qemu']}, {env['virt_type']}; memory files in {env['memory_backing_dir']} on "
        f"block device {env['backing_device']}"
        + (
            f", shared with {', '.join(env['device_shared_with'])}"
            if env["device_shared_with"]
            else ""
        ),
    ]


def note_lines(run: Run, args: argparse.Namespace) -> list[str]:
    bg = run.background_rate()
    lines = [
        "write MiB/g/min: block device writes in the window minus the background rate, per guest",
        "per minute; raw: before subtracting it. hot sets/min: that over --hot-mb (how many",
        "times a minute the hot set reaches the disk). rewritten: passes x hot set per guest per",
        "minute (every pass, verifying ones too, rewrites the hot set). amplif.: write /",
        "rewritten (below 1: the page cache absorbs rewrites; one dirty 4 KiB page can cost a",
        "whole large folio, which this ratio includes). hot ms: in-guest time of one non-",
        "verifying hot-set pass. Dirty, Writeback: /proc/meminfo (whole host) sampled every",
        f"{SAMPLE_S:g} s. cache MiB: the partition's page cache (mean). failcnt: limit hits in",
        "the window. Each window starts with a sync; a no-pressure window covers expire +",
        f"writeback interval + {FLUSH_MARGIN_S} s, so it holds about one periodic flush per",
        "expire interval; flushes come in whole hot sets, so a window's rate is quantised (one",
        "flush more or less moves it by hot set / window).",
        "background (other writers on the device, subtracted): "
        + "; ".join(
            f"{b.what} {fmt(None if (r := b.bytes_per_s) is None else r * 60 / MIB)} MiB/min "
            f"over {b.seconds:.0f} s"
            for b in run.backgrounds
        )
        + f"; mean {fmt(None if bg is None else bg * 60 / MIB)} MiB/min",
        f"boot+fill wrote {fmt(None if (b := run.boot_write_bytes) is None else b / MIB, '.0f')}"
        " MiB; "
        f"OOM kills in the partition: {'?' if run.oom_kills is None else run.oom_kills}",
    ]
    if run.folios:
        large = statistics.fmean(
            f["in_large_folios"] / f["mapped_pages"] for f in run.folios if f["mapped_pages"]
        )
        lines.append(
            "memory file pages mapped in large folios at the end (under pressure): "
            f"{large * 100:.0f} %"
        )
    lines.append(run.restored)
    return lines
