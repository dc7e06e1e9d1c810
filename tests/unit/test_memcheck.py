"""Unit tests for memcheck: console lines, seed, and the program compiled and run natively."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import image_inputs as inputs
from devtools import memcheck as mc


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "FILEMEM-MEMCHECK pass=12 ms=143 verified=1 OK",
            mc.MemcheckPass(number=12, ms=143, verified=True, ok=True, bad_words=0),
        ),
        (
            "FILEMEM-MEMCHECK pass=3 ms=0 verified=0 CORRUPT bad_words=17\r",
            mc.MemcheckPass(number=3, ms=0, verified=False, ok=False, bad_words=17),
        ),
        (
            "FILEMEM-MEMCHECK-FILLED mb=256 ms=1794 seed=18446744073709551615",
            mc.MemcheckFilled(mb=256, ms=1794, seed=2**64 - 1),
        ),
        ("FILEMEM-MEMCHECK-EXIT status=137", mc.MemcheckExit(status=137)),
        # A console can glue a fragment of other output in front of a line.
        (
            "[   12.3] x FILEMEM-MEMCHECK pass=1 ms=5 verified=0 OK",
            mc.MemcheckPass(number=1, ms=5, verified=False, ok=True, bad_words=0),
        ),
        (
            "FILEMEM-MEMCHECK-START mb=8 hot_mb=2 verify_every=2 seed=1 seed_from=arg "
            "pass_delay_ms=0",
            None,
        ),
        ("FILEMEM-MEMCHECK-ERROR bad --mem-mb=x", None),
        ("FILEMEM-READY", None),
        ("", None),
    ],
)
def test_parse_memcheck_line(line: str, expected: mc.MemcheckLine | None) -> None:
    assert mc.parse_memcheck_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "FILEMEM-MEMCHECK pass=1 ms=5 verified=0",
        "FILEMEM-MEMCHECK pass=1 ms=5 verified=2 OK",
        "FILEMEM-MEMCHECK pass=1 ms=5 verified=1 OK bad_words=3",
        "FILEMEM-MEMCHECK pass=1 ms=5 verified=1 CORRUPT bad_words=0",
        "FILEMEM-MEMCHECK pass=1 ms=5 verified=1 CORRUPT",
        "FILEMEM-MEMCHECK pass=1 ms=5 verifi",
        "FILEMEM-MEMCHECK-FILLED mb=8 ms=1",
        "FILEMEM-MEMCHECK-SOMETHING new",
    ],
)
def test_parse_memcheck_line_rejects_malformed(line: str) -> None:
    with pytest.raises(ValueError, match="malformed memcheck line"):
        mc.parse_memcheck_line(line)


def test_parse_memcheck_console_skips_the_line_being_written() -> None:
    console = (
        "FILEMEM-READY\r\n"
        "FILEMEM-MEMCHECK-START mb=8 hot_mb=2 verify_every=2 seed=7 seed_from=arg "
        "pass_delay_ms=0\r\n"
        "FILEMEM-MEMCHECK-FILLED mb=8 ms=6 seed=7\r\n"
        "FILEMEM-MEMCHECK pass=1 ms=1 verified=0 OK\r\n"
        "FILEMEM-MEMCHECK pass=2 ms=2 veri"
    )
    assert mc.parse_memcheck_console(console) == [
        mc.MemcheckFilled(mb=8, ms=6, seed=7),
        mc.MemcheckPass(number=1, ms=1, verified=False, ok=True, bad_words=0),
    ]
    assert mc.parse_memcheck_console("") == []


def test_memcheck_seed_from_uuid_is_stable_and_per_guest() -> None:
    uuid = "8a4c3e2f-1b7d-4e5a-9c0f-6d2b1a3e5f70"
    seed = mc.memcheck_seed_from_uuid(uuid)
    assert 0 <= seed < 2**64
    assert mc.memcheck_seed_from_uuid(f" {uuid.upper()}\n") == seed
    assert mc.memcheck_seed_from_uuid(uuid.replace("8a4c", "8a4d")) != seed


def test_memcheck_source_is_read_from_the_checkouts_devtools() -> None:
    # devtools/ is not installed (test tooling), so the source is read beside its module.
    source = Path(__file__).resolve().parents[2] / "devtools" / "memcheck.c"
    assert inputs.memcheck_source() == source.read_bytes()
    assert inputs.memcheck_source().startswith(b"/*\n * memcheck:")


@dataclass(frozen=True)
class Run:
    returncode: int
    lines: list[mc.MemcheckLine]
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def memcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """memcheck compiled exactly as the image build does it (gcc -O2 -static)."""
    return inputs.compile_memcheck(tmp_path_factory.mktemp("memcheck"))


def run_memcheck(binary: Path, *args: str) -> Run:
    done = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )
    return Run(done.returncode, mc.parse_memcheck_console(done.stdout), done.stdout, done.stderr)


SMALL = ("--mem-mb=8", "--hot-mb=2", "--verify-every=2", "--passes=4")


def passes(run: Run) -> list[mc.MemcheckPass]:
    return [line for line in run.lines if isinstance(line, mc.MemcheckPass)]


def test_memcheck_source_compiles_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "memcheck.c"
    source.write_bytes(inputs.memcheck_source())
    subprocess.run(["gcc", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", str(source)], check=True)


def program_header_types(elf: bytes) -> list[int]:
    """p_type of each program header of a little-endian ELF64 file."""
    assert elf[:6] == b"\x7fELF\x02\x01", "not a little-endian ELF64 file"
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]


def test_memcheck_is_static(memcheck: Path) -> None:
    # An initramfs has no dynamic loader and no libc: no PT_INTERP (3), no PT_DYNAMIC (2).
    types = program_header_types(memcheck.read_bytes())
    assert 1 in types  # PT_LOAD
    assert 2 not in types and 3 not in types, types


def test_memcheck_runs_clean(memcheck: Path) -> None:
    run = run_memcheck(memcheck, *SMALL, "--seed=42", "--pass-delay-ms=1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == (
        "FILEMEM-MEMCHECK-START mb=8 hot_mb=2 verify_every=2 seed=42 seed_from=arg pass_delay_ms=1"
    )
    filled = run.lines[0]
    assert isinstance(filled, mc.MemcheckFilled)
    assert (filled.mb, filled.seed) == (8, 42)
    assert [(p.number, p.verified, p.ok, p.bad_words) for p in passes(run)] == [
        (1, False, True, 0),
        (2, True, True, 0),
        (3, False, True, 0),
        (4, True, True, 0),
    ]
    assert len(run.lines) == 5


def test_memcheck_reports_cold_corruption_on_verifying_passes(memcheck: Path) -> None:
    # By default the last word is flipped: only the passes that verify everything read it.
    run = run_memcheck(memcheck, *SMALL, "--corrupt-after-pass=1")
    assert run.returncode == 1, run.stderr
    assert [(p.number, p.verified, p.ok, p.bad_words) for p in passes(run)] == [
        (1, False, True, 0),
        (2, True, False, 1),
        (3, False, True, 0),
        (4, True, False, 1),
    ]
    assert "FILEMEM-MEMCHECK pass=2 ms=" in run.stdout
    assert " verified=1 CORRUPT bad_words=1\n" in run.stdout


def test_memcheck_reports_hot_corruption_on_every_pass(memcheck: Path) -> None:
    run = run_memcheck(memcheck, *SMALL, "--corrupt-after-pass=2", "--corrupt-word=1000")
    assert run.returncode == 1
    assert [p.ok for p in passes(run)] == [True, True, False, False]
    assert [p.bad_words for p in passes(run)] == [0, 0, 1, 1]


def test_memcheck_seeds_from_the_uuid_file(memcheck: Path, tmp_path: Path) -> None:
    uuid = "8A4C3E2F-1B7D-4E5A-9C0F-6D2B1A3E5F70"
    (tmp_path / "product_uuid").write_text(uuid + "\n")
    run = run_memcheck(memcheck, *SMALL, f"--uuid-file={tmp_path / 'product_uuid'}")
    assert run.returncode == 0, run.stderr
    assert "seed_from=uuid" in run.stdout
    filled = run.lines[0]
    assert isinstance(filled, mc.MemcheckFilled)
    assert filled.seed == mc.memcheck_seed_from_uuid(uuid)


def test_memcheck_falls_back_to_the_clock(memcheck: Path, tmp_path: Path) -> None:
    runs = [run_memcheck(memcheck, *SMALL, f"--uuid-file={tmp_path / 'absent'}") for _ in range(2)]
    assert all(run.returncode == 0 and "seed_from=time" in run.stdout for run in runs)
    seeds = {line.seed for run in runs for line in run.lines if isinstance(line, mc.MemcheckFilled)}
    assert len(seeds) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--mem-mb=8", "--hot-mb=9", "--verify-every=1"), "--hot-mb must be <= --mem-mb"),
        (("--mem-mb=0", "--hot-mb=1", "--verify-every=1"), "bad --mem-mb=0"),
        (("--mem-mb=-8", "--hot-mb=1", "--verify-every=1"), "bad --mem-mb=-8"),
        (("--mem-mb=8x", "--hot-mb=1", "--verify-every=1"), "bad --mem-mb=8x"),
        (("--mem-mb=8", "--hot-mb=1", "--verify-every=0"), "bad --verify-every=0"),
        (
            ("--mem-mb=8", "--hot-mb=1", "--verify-every=1", "--seed=18446744073709551616"),
            "bad --seed=",
        ),
        (("--mem-mb=8", "--hot-mb=1"), "--mem-mb, --hot-mb and --verify-every are required"),
        (("--mem-mb=8", "--hot-mb=1", "--verify-every=1", "extra"), "unexpected argument extra"),
        (
            ("--mem-mb=1", "--hot-mb=1", "--verify-every=1", "--corrupt-word=131072"),
            "--corrupt-word is past the end",
        ),
    ],
)
def test_memcheck_rejects_bad_arguments(
    memcheck: Path, args: tuple[str, ...], message: str
) -> None:
    run = run_memcheck(memcheck, *args)
    assert run.returncode == 2
    assert f"FILEMEM-MEMCHECK-ERROR {message}" in run.stderr
    assert "usage: memcheck" in run.stderr
    assert run.stdout == ""


def test_memcheck_reports_memory_it_cannot_have(memcheck: Path) -> None:
    # 16 TiB of address space is refused by mmap (or by RLIMIT_AS, set small here to be sure).
    done = subprocess.run(
        [
            "sh",
            "-c",
            f'ulimit -v 1048576 && exec "{memcheck}" "$@"',
            "sh",
            f"--mem-mb={mc.MEMCHECK_MAX_MEM_MB}",
            "--hot-mb=1",
            "--verify-every=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "FILEMEM-MEMCHECK-ERROR mmap of 16777216 MiB failed" in done.stderr
