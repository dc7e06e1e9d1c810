"""Unit tests for the test-image builder: cpio writer, cmdline, cache decisions (no downloads),
and the memcheck workload compiled and run natively."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from filemem.devtools import test_image as ti


@dataclass(frozen=True)
class Member:
    name: str
    mode: int
    nlink: int
    data: bytes
    rdev: tuple[int, int]


def parse_newc(blob: bytes) -> list[Member]:
    """An independent reader of the newc format, strict about magic and 4-byte alignment."""
    members: list[Member] = []
    pos = 0
    while True:
        assert blob[pos : pos + 6] == b"070701", f"bad magic at offset {pos}"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _, mode, _, _, nlink, _, size, _, _, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_end = pos + 110 + namesize
        assert blob[name_end - 1] == 0, "name must be NUL-terminated"
        name = blob[pos + 110 : name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        data = blob[data_start : data_start + size]
        pos = data_start + size + (-(data_start + size) % 4)
        if name == "TRAILER!!!":
            assert pos == len(blob), "nothing may follow the trailer"
            return members
        members.append(Member(name, mode, nlink, data, (rmaj, rmin)))


SAMPLE = [
    ti.directory("bin"),
    ti.regular_file("bin/hello", b"hello world\n", perm=0o755),
    ti.symlink("bin/hi", "hello"),
    ti.directory("dev"),
    ti.char_device("dev/console", 5, 1),
]


def sample_archive() -> bytes:
    out = io.BytesIO()
    ti.write_newc(SAMPLE, out)
    return out.getvalue()


def test_newc_round_trip() -> None:
    members = parse_newc(sample_archive())
    assert [m.name for m in members] == ["bin", "bin/hello", "bin/hi", "dev", "dev/console"]
    by_name = {m.name: m for m in members}
    assert by_name["bin"].mode == stat.S_IFDIR | 0o755
    assert by_name["bin"].nlink == 2
    assert by_name["bin/hello"].mode == stat.S_IFREG | 0o755
    assert by_name["bin/hello"].data == b"hello world\n"
    assert by_name["bin/hi"].mode == stat.S_IFLNK | 0o777
    assert by_name["bin/hi"].data == b"hello"
    assert by_name["dev/console"].mode == stat.S_IFCHR | 0o600
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["dev/console"].data == b""


def test_newc_ends_with_trailer() -> None:
    blob = sample_archive()
    assert b"TRAILER!!!\0" in blob[-128:]
    assert len(blob) % 4 == 0


def test_gnu_cpio_reads_the_archive() -> None:
    listing = subprocess.run(
        ["cpio", "-t", "-v"], input=sample_archive(), capture_output=True, check=True
    ).stdout.decode()
    lines = listing.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("drwxr-xr-x") and lines[0].endswith(" bin")
    assert lines[1].startswith("-rwxr-xr-x") and " 12 " in lines[1]
    assert lines[2].startswith("lrwxrwxrwx") and lines[2].endswith("bin/hi -> hello")
    assert lines[4].startswith("crw-------") and "5,   1" in lines[4]


def test_newc_rejects_absolute_names() -> None:
    with pytest.raises(ValueError, match="relative"):
        ti.write_newc([ti.directory("/bin")], io.BytesIO())


def test_initramfs_layout() -> None:
    members = parse_newc(gzip_payload_of_initrd())
    names = [m.name for m in members]
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or parent in names[:i], f"{name} comes before its directory"
    by_name = {m.name: m for m in members}
    assert by_name["bin/busybox"].data == b"BUSYBOX"
    assert by_name["bin/memcheck"].data == b"MEMCHECK"
    assert by_name["bin/memcheck"].mode == stat.S_IFREG | 0o755
    assert by_name["init"].mode == stat.S_IFREG | 0o755
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["dev/null"].rdev == (1, 3)
    for applet in ("sh", "mount", "cat", "poweroff", "head", "yes"):
        assert by_name[f"bin/{applet}"].data == b"busybox"
    for d in ("proc", "sys", "tmp", "dev"):
        assert stat.S_ISDIR(by_name[d].mode)


def gzip_payload_of_initrd() -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        ti.write_newc(ti.initramfs_entries(b"BUSYBOX", b"MEMCHECK"), gz)
    return gzip.decompress(out.getvalue())


def test_initrd_is_reproducible(tmp_path: Path) -> None:
    ti.write_initrd(tmp_path / "a", b"BUSYBOX", b"MEMCHECK")
    ti.write_initrd(tmp_path / "b", b"BUSYBOX", b"MEMCHECK")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_init_script_speaks_the_protocol() -> None:
    assert ti.INIT_SCRIPT.startswith("#!/bin/busybox sh\n")
    assert f"echo {ti.READY_LINE}\n" in ti.INIT_SCRIPT
    assert "filemem.touch_mb=" in ti.INIT_SCRIPT
    assert "filemem.poweroff=" in ti.INIT_SCRIPT
    assert "filemem.workload=" in ti.INIT_SCRIPT
    for arg, option in [
        ("mem_mb", "--mem-mb"),
        ("hot_mb", "--hot-mb"),
        ("verify_every", "--verify-every"),
        ("seed", "--seed"),
        ("pass_delay_ms", "--pass-delay-ms"),
    ]:
        assert f'filemem.{arg}=*) memcheck_args="$memcheck_args {option}=' in ti.INIT_SCRIPT


def test_init_runs_memcheck_as_a_child_and_reports_its_exit() -> None:
    # PID 1 must outlive memcheck: an exec would make its exit a kernel panic.
    assert "exec /bin/memcheck" not in ti.INIT_SCRIPT
    run = ti.INIT_SCRIPT.index("/bin/memcheck $memcheck_args\n")
    assert ti.INIT_SCRIPT.index('echo "FILEMEM-MEMCHECK-EXIT status=$?"') > run
    assert ti.INIT_SCRIPT.index("while :; do sleep 3600; done") > run


def test_init_script_parses() -> None:
    subprocess.run(["sh", "-n"], input=ti.INIT_SCRIPT.encode(), check=True)


def test_cmdline_defaults() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline().split()
    assert args[0] == "console=ttyS0"
    assert "filemem.touch_mb=0" in args
    assert not any(a.startswith("filemem.poweroff") for a in args)
    assert image.ready_line == "FILEMEM-READY"


def test_cmdline_touch_and_poweroff() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline(touch_mb=64, poweroff=True).split()
    assert "filemem.touch_mb=64" in args
    assert "filemem.poweroff=1" in args
    assert "panic=-1" in args
    assert image.touched_line(64) == "FILEMEM-TOUCHED 64"


def test_cmdline_rejects_negative_touch() -> None:
    with pytest.raises(ValueError):
        ti.TestImage(kernel=Path("/k"), initrd=Path("/i")).cmdline(touch_mb=-1)


def good_manifest() -> dict[str, object]:
    return {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "memcheck_sha256": ti.memcheck_source_sha256(),
        "sha256": {ti.KERNEL_NAME: "k" * 64, ti.INITRD_NAME: "i" * 64},
    }


def test_rebuild_reason_accepts_matching_cache() -> None:
    assert ti.rebuild_reason(good_manifest(), "k" * 64, "i" * 64) is None


@pytest.mark.parametrize(
    ("manifest", "kernel", "initrd", "expected"),
    [
        (None, "k" * 64, "i" * 64, "no manifest"),
        (good_manifest(), "x" * 64, "i" * 64, "vmlinuz does not match"),
        (good_manifest(), "k" * 64, "x" * 64, "initrd.img does not match"),
        (good_manifest(), None, "i" * 64, "vmlinuz is missing"),
        (good_manifest(), "k" * 64, None, "initrd.img is missing"),
        ({**good_manifest(), "format": 0}, "k" * 64, "i" * 64, "image format"),
        ({**good_manifest(), "init_sha256": "old"}, "k" * 64, "i" * 64, "/init has changed"),
        ({**good_manifest(), "memcheck_sha256": "old"}, "k" * 64, "i" * 64, "memcheck.c has"),
        ({k: v for k, v in good_manifest().items() if k != "sha256"}, "k", "i", "does not match"),
    ],
)
def test_rebuild_reason_rejects(
    manifest: dict[str, object] | None, kernel: str | None, initrd: str | None, expected: str
) -> None:
    reason = ti.rebuild_reason(manifest, kernel, initrd)
    assert reason is not None and expected in reason


def test_parse_kernel_package() -> None:
    output = (
        "linux-image-cloud-amd64\n"
        "  Depends: linux-image-6.1.0-56-cloud-amd64\n"
        "  Recommends: something-else\n"
    )
    assert ti.parse_kernel_package(output) == "linux-image-6.1.0-56-cloud-amd64"


def test_parse_kernel_package_without_versioned_kernel() -> None:
    with pytest.raises(ti.TestImageError):
        ti.parse_kernel_package("linux-image-cloud-amd64\n")


def write_cached_image(dest: Path) -> None:
    dest.mkdir()
    (dest / ti.KERNEL_NAME).write_bytes(b"kernel")
    (dest / ti.INITRD_NAME).write_bytes(b"initrd")
    manifest = {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "memcheck_sha256": ti.memcheck_source_sha256(),
        "sha256": {
            ti.KERNEL_NAME: hashlib.sha256(b"kernel").hexdigest(),
            ti.INITRD_NAME: hashlib.sha256(b"initrd").hexdigest(),
        },
    }
    (dest / ti.MANIFEST_NAME).write_text(json.dumps(manifest))


def test_ensure_uses_valid_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "img"
    write_cached_image(dest)

    def no_build(dest: Path, log: object) -> ti.TestImage:
        raise AssertionError("must not rebuild a valid cache")

    monkeypatch.setattr(ti, "build_test_image", no_build)
    logged: list[str] = []
    image = ti.ensure_test_image(dest, log=logged.append)
    assert image.kernel == dest / ti.KERNEL_NAME
    assert image.initrd == dest / ti.INITRD_NAME
    assert logged == [f"test image cached at {dest}"]


@pytest.mark.parametrize("force", [False, True])
def test_ensure_rebuilds_tampered_or_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    dest = tmp_path / "img"
    write_cached_image(dest)
    if not force:
        (dest / ti.INITRD_NAME).write_bytes(b"half-written")
    built: list[Path] = []

    def fake_build(dest: Path, log: object) -> ti.TestImage:
        built.append(dest)
        return ti.TestImage(kernel=dest / "k", initrd=dest / "i")

    monkeypatch.setattr(ti, "build_test_image", fake_build)
    ti.ensure_test_image(dest, force=force, log=lambda _: None)
    assert built == [dest]


def test_publish_is_atomic_and_world_readable(tmp_path: Path) -> None:
    digest = ti._publish(tmp_path, "file", lambda p: p.write_bytes(b"data"))
    assert digest == hashlib.sha256(b"data").hexdigest()
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_publish_failure_leaves_nothing(tmp_path: Path) -> None:
    def explode(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ti._publish(tmp_path, "file", explode)
    assert list(tmp_path.iterdir()) == []


def test_apt_update_runs_once_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: Path | None = None) -> str:
        calls.append(cmd)
        return ""

    attempts: list[int] = []

    def action() -> Path:
        attempts.append(1)
        if len(attempts) == 1:
            raise ti.TestImageError("E: Unable to locate package")
        return Path("/pkg.deb")

    monkeypatch.setattr(ti, "_run", fake_run)
    assert ti._with_apt_update(action, lambda _: None) == Path("/pkg.deb")
    assert len(attempts) == 2
    assert [c[-1] for c in calls] == ["update"]


# --- memcheck: the kernel command line, the console lines, the program itself --------------------

IMAGE = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))


def test_memcheck_cmdline() -> None:
    args = IMAGE.memcheck_cmdline(mem_mb=64, hot_mb=16, verify_every=2).split()
    assert args == [
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "loglevel=3",
        "filemem.workload=memcheck",
        "filemem.mem_mb=64",
        "filemem.hot_mb=16",
        "filemem.verify_every=2",
    ]


def test_memcheck_cmdline_with_seed_and_delay() -> None:
    args = IMAGE.memcheck_cmdline(8, 8, 1, seed=2**64 - 1, pass_delay_ms=250).split()
    assert args[-2:] == [f"filemem.seed={2**64 - 1}", "filemem.pass_delay_ms=250"]
    assert "filemem.seed=0" in IMAGE.memcheck_cmdline(8, 1, 1, seed=0).split()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mem_mb": 0}, "mem_mb"),
        ({"mem_mb": -5}, "mem_mb"),
        ({"mem_mb": ti.MEMCHECK_MAX_MEM_MB + 1}, "mem_mb"),
        ({"hot_mb": 0}, "hot_mb"),
        ({"hot_mb": 65}, "hot_mb"),
        ({"verify_every": 0}, "verify_every"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"pass_delay_ms": -1}, "pass_delay_ms"),
        ({"mem_mb": True}, "mem_mb"),
        ({"hot_mb": 1.5}, "hot_mb"),
    ],
)
def test_memcheck_cmdline_rejects(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"mem_mb": 64, "hot_mb": 16, "verify_every": 2, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} "):
        IMAGE.memcheck_cmdline(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "FILEMEM-MEMCHECK pass=12 ms=143 verified=1 OK",
            ti.MemcheckPass(number=12, ms=143, verified=True, ok=True, bad_words=0),
        ),
        (
            "FILEMEM-MEMCHECK pass=3 ms=0 verified=0 CORRUPT bad_words=17\r",
            ti.MemcheckPass(number=3, ms=0, verified=False, ok=False, bad_words=17),
        ),
        (
            "FILEMEM-MEMCHECK-FILLED mb=256 ms=1794 seed=18446744073709551615",
            ti.MemcheckFilled(mb=256, ms=1794, seed=2**64 - 1),
        ),
        ("FILEMEM-MEMCHECK-EXIT status=137", ti.MemcheckExit(status=137)),
        # A console can glue a fragment of other output in front of a line.
        (
            "[   12.3] x FILEMEM-MEMCHECK pass=1 ms=5 verified=0 OK",
            ti.MemcheckPass(number=1, ms=5, verified=False, ok=True, bad_words=0),
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
def test_parse_memcheck_line(line: str, expected: ti.MemcheckLine | None) -> None:
    assert ti.parse_memcheck_line(line) == expected


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
        ti.parse_memcheck_line(line)


def test_parse_memcheck_console_skips_the_line_being_written() -> None:
    console = (
        "FILEMEM-READY\r\n"
        "FILEMEM-MEMCHECK-START mb=8 hot_mb=2 verify_every=2 seed=7 seed_from=arg "
        "pass_delay_ms=0\r\n"
        "FILEMEM-MEMCHECK-FILLED mb=8 ms=6 seed=7\r\n"
        "FILEMEM-MEMCHECK pass=1 ms=1 verified=0 OK\r\n"
        "FILEMEM-MEMCHECK pass=2 ms=2 veri"
    )
    assert ti.parse_memcheck_console(console) == [
        ti.MemcheckFilled(mb=8, ms=6, seed=7),
        ti.MemcheckPass(number=1, ms=1, verified=False, ok=True, bad_words=0),
    ]
    assert ti.parse_memcheck_console("") == []


def test_memcheck_seed_from_uuid_is_stable_and_per_guest() -> None:
    uuid = "8a4c3e2f-1b7d-4e5a-9c0f-6d2b1a3e5f70"
    seed = ti.memcheck_seed_from_uuid(uuid)
    assert 0 <= seed < 2**64
    assert ti.memcheck_seed_from_uuid(f" {uuid.upper()}\n") == seed
    assert ti.memcheck_seed_from_uuid(uuid.replace("8a4c", "8a4d")) != seed


def test_memcheck_source_is_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"filemem.devtools" = ["memcheck.c"]' in pyproject
    assert ti.memcheck_source().startswith(b"/*\n * memcheck:")


@dataclass(frozen=True)
class Run:
    returncode: int
    lines: list[ti.MemcheckLine]
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def memcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """memcheck compiled exactly as the image build does it (gcc -O2 -static)."""
    return ti.compile_memcheck(tmp_path_factory.mktemp("memcheck"))


def run_memcheck(binary: Path, *args: str) -> Run:
    done = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )
    return Run(done.returncode, ti.parse_memcheck_console(done.stdout), done.stdout, done.stderr)


SMALL = ("--mem-mb=8", "--hot-mb=2", "--verify-every=2", "--passes=4")


def passes(run: Run) -> list[ti.MemcheckPass]:
    return [line for line in run.lines if isinstance(line, ti.MemcheckPass)]


def test_memcheck_source_compiles_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "memcheck.c"
    source.write_bytes(ti.memcheck_source())
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
    assert isinstance(filled, ti.MemcheckFilled)
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
    assert isinstance(filled, ti.MemcheckFilled)
    assert filled.seed == ti.memcheck_seed_from_uuid(uuid)


def test_memcheck_falls_back_to_the_clock(memcheck: Path, tmp_path: Path) -> None:
    runs = [run_memcheck(memcheck, *SMALL, f"--uuid-file={tmp_path / 'absent'}") for _ in range(2)]
    assert all(run.returncode == 0 and "seed_from=time" in run.stdout for run in runs)
    seeds = {line.seed for run in runs for line in run.lines if isinstance(line, ti.MemcheckFilled)}
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
            f"--mem-mb={ti.MEMCHECK_MAX_MEM_MB}",
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


def test_compile_memcheck_names_libc6_dev_when_the_build_fails(tmp_path: Path) -> None:
    with pytest.raises(ti.TestImageError, match="libc6-dev") as failure:
        ti.compile_memcheck(tmp_path, source=b"#include <no-such-header.h>\n")
    assert "no-such-header.h" in str(failure.value)


def test_compile_memcheck_without_gcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ti.TestImageError, match=r"gcc is not installed.*libc6-dev"):
        ti.compile_memcheck(tmp_path)
