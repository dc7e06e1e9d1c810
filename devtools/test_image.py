"""Build and cache the tiny bootable test guest (Debian cloud kernel + busybox initramfs)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.cpio import (
    CpioEntry,
    char_device,
    directory,
    regular_file,
    symlink,
    write_newc,
)
from devtools.image_inputs import (
    BUSYBOX_PACKAGE,
    KERNEL_METAPACKAGE,
    MEMCHECK_CFLAGS,
    MEMCHECK_PACKAGE,
    MEMCHECK_SOURCE,
    TestImageError,
    compile_memcheck,
    deb_field,
    download_kernel_deb,
    extract_kernel,
    gcc_version,
    kernel_modules,
    memcheck_source,
    memcheck_source_sha256,
    obtain_busybox,
)
from devtools.memcheck import MEMCHECK_EXIT_PREFIX, MEMCHECK_MAX_MEM_MB
from filemem.cmd import up_image

# Where `filemem up` looks for the image, and the names and boot line it registers it with.
DEFAULT_DEST = up_image.TEST_IMAGE_DIR
KERNEL_NAME = up_image.KERNEL_NAME
INITRD_NAME = up_image.INITRD_NAME
BASE_CMDLINE = up_image.BASE_CMDLINE
READY_LINE = "FILEMEM-READY"
TOUCHED_PREFIX = "FILEMEM-TOUCHED"
# With filemem.config_drive=1, /init mounts the config drive and prints these lines (the
# volume label, then openstack/latest/meta_data.json and user_data, each on one line).
CONFIG_DRIVE_PREFIX = "FILEMEM-CONFIG-DRIVE"
# The kernel modules a config drive needs, in load order (the Debian cloud kernel builds them
# as modules): the IDE CD-ROM (ata_piix, sr_mod) and its filesystem (isofs).
CONFIG_DRIVE_MODULES = ("scsi_common", "scsi_mod", "cdrom", "sr_mod", "libata", "ata_piix", "isofs")
# Bump when the initramfs layout changes, so cached images are rebuilt (/init and memcheck.c edits
# are caught by their hashes in the manifest).
IMAGE_FORMAT = 3
MANIFEST_NAME = "manifest.json"

# The memcheck workload (see devtools.memcheck) lives at /bin/memcheck in the guest.
MEMCHECK_PATH = "/bin/memcheck"

APPLETS = (
    "sh",
    "mount",
    "umount",
    "echo",
    "cat",
    "sleep",
    "poweroff",
    "reboot",
    "dd",
    "head",
    "ls",
    "free",
    "yes",
    "mkdir",
    "uname",
    "dmesg",
    "insmod",
)

# The guest writes a non-zero pattern: zero pages would be skipped by QEMU's migration and could be
# deduplicated by a backing store, making "touched" memory look smaller than it is. One `cat` of a
# 1 MiB block repeated N times is ~10x faster under TCG than piping `yes` through dd.
INIT_SCRIPT = f"""#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
touch_mb=0
touch_delay=0
want_poweroff=0
workload=
config_drive=0
memcheck_args=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        filemem.touch_mb=*) touch_mb="${{arg#*=}}" ;;
        filemem.poweroff=*) want_poweroff="${{arg#*=}}" ;;
        filemem.touch_delay=*) touch_delay="${{arg#*=}}" ;;
        filemem.workload=*) workload="${{arg#*=}}" ;;
        filemem.config_drive=*) config_drive="${{arg#*=}}" ;;
        filemem.mem_mb=*) memcheck_args="$memcheck_args --mem-mb=${{arg#*=}}" ;;
        filemem.hot_mb=*) memcheck_args="$memcheck_args --hot-mb=${{arg#*=}}" ;;
        filemem.verify_every=*) memcheck_args="$memcheck_args --verify-every=${{arg#*=}}" ;;
        filemem.seed=*) memcheck_args="$memcheck_args --seed=${{arg#*=}}" ;;
        filemem.pass_delay_ms=*) memcheck_args="$memcheck_args --pass-delay-ms=${{arg#*=}}" ;;
    esac
done
case "$touch_mb" in
    ''|*[!0-9]*) echo "FILEMEM-BAD-ARG touch_mb=$touch_mb"; touch_mb=0 ;;
esac
case "$touch_delay" in
    ''|*[!0-9]*) echo "FILEMEM-BAD-ARG touch_delay=$touch_delay"; touch_delay=0 ;;
esac
echo {READY_LINE}
if [ "$config_drive" = 1 ]; then
    for module in {" ".join(CONFIG_DRIVE_MODULES)}; do
        insmod /lib/modules/$module.ko || echo "{CONFIG_DRIVE_PREFIX}-ERROR insmod $module"
    done
    # The CD-ROM appears once the IDE bus is probed.
    i=0
    while [ ! -b /dev/sr0 ] && [ "$i" -lt 30 ]; do sleep 1; i=$((i + 1)); done
    mkdir -p /mnt/config
    if mount -t iso9660 -o ro /dev/sr0 /mnt/config; then
        # The ISO 9660 volume label: 32 bytes at 32808 (sector 16, offset 40).
        echo "{CONFIG_DRIVE_PREFIX}-LABEL $(dd if=/dev/sr0 bs=1 skip=32808 count=32 2>/dev/null)"
        echo "{CONFIG_DRIVE_PREFIX}-META $(cat /mnt/config/openstack/latest/meta_data.json)"
        echo "{CONFIG_DRIVE_PREFIX}-USER $(cat /mnt/config/openstack/latest/user_data)"
        umount /mnt/config
    else
        echo "{CONFIG_DRIVE_PREFIX}-ERROR no config drive on /dev/sr0"
    fi
fi
if [ "$touch_mb" -gt 0 ]; then
    # A delay lets an observer measure the memory file before the guest writes to it.
    sleep "$touch_delay"
    mount -t tmpfs -o size=$((touch_mb + 16))m tmpfs /tmp
    yes filemem-test-guest | head -c 1048576 >/tmp/block
    set --
    i=0
    while [ "$i" -lt "$touch_mb" ]; do set -- "$@" /tmp/block; i=$((i + 1)); done
    cat "$@" >/tmp/fill
    echo "{TOUCHED_PREFIX} $touch_mb"
fi
case "$workload" in
    '') ;;
    memcheck)
        # A child, not exec: were PID 1 to exit, the kernel would panic. memcheck checks its own
        # arguments; $memcheck_args is split into words on purpose.
        {MEMCHECK_PATH} $memcheck_args
        echo "{MEMCHECK_EXIT_PREFIX} status=$?"
        ;;
    *) echo "FILEMEM-BAD-ARG workload=$workload" ;;
esac
if [ "$want_poweroff" = 1 ]; then
    poweroff -f
fi
while :; do sleep 3600; done
"""


INIT_SHA256 = hashlib.sha256(INIT_SCRIPT.encode()).hexdigest()


@dataclass(frozen=True)
class TestImage:
    """A built test guest: direct-kernel-boot files plus the console line that means "booted"."""

    __test__ = False  # not a pytest test class, despite the name

    kernel: Path
    initrd: Path
    ready_line: str = READY_LINE

    def cmdline(
        self,
        touch_mb: int = 0,
        poweroff: bool = False,
        touch_delay: int = 0,
        config_drive: bool = False,
    ) -> str:
        """Kernel command line: serial console, quiet boot, what /init should do."""
        if touch_mb < 0:
            raise ValueError(f"touch_mb must be >= 0, not {touch_mb}")
        if touch_delay < 0:
            raise ValueError(f"touch_delay must be >= 0, not {touch_delay}")
        args = [*BASE_CMDLINE, f"filemem.touch_mb={touch_mb}"]
        if touch_delay:
            args.append(f"filemem.touch_delay={touch_delay}")
        if poweroff:
            args.append("filemem.poweroff=1")
        if config_drive:
            args.append("filemem.config_drive=1")
        return " ".join(args)

    def touched_line(self, touch_mb: int) -> str:
        """The console line /init prints once it has written touch_mb MiB."""
        return f"{TOUCHED_PREFIX} {touch_mb}"

    def memcheck_cmdline(
        self,
        mem_mb: int,
        hot_mb: int,
        verify_every: int,
        seed: int | None = None,
        pass_delay_ms: int = 0,
    ) -> str:
        """Kernel command line for the self-checking workload (see memcheck.c).

        The guest fills mem_mb MiB with a pattern derived from seed (default: from the domain UUID),
        then forever re-touches the first hot_mb MiB, checking all mem_mb MiB every verify_every
        passes and sleeping pass_delay_ms between passes; read its console with
        devtools.memcheck.parse_memcheck_console. The guest needs memory for its kernel
        besides mem_mb.
        """
        _check_int("mem_mb", mem_mb, 1, MEMCHECK_MAX_MEM_MB)
        _check_int("hot_mb", hot_mb, 1, MEMCHECK_MAX_MEM_MB)
        if hot_mb > mem_mb:
            raise ValueError(f"hot_mb must be <= mem_mb ({mem_mb}), not {hot_mb}")
        _check_int("verify_every", verify_every, 1, 2**64 - 1)
        _check_int("pass_delay_ms", pass_delay_ms, 0, 86_400_000)
        args = [
            *BASE_CMDLINE,
            "filemem.workload=memcheck",
            f"filemem.mem_mb={mem_mb}",
            f"filemem.hot_mb={hot_mb}",
            f"filemem.verify_every={verify_every}",
        ]
        if seed is not None:
            _check_int("seed", seed, 0, 2**64 - 1)
            args.append(f"filemem.seed={seed}")
        if pass_delay_ms:
            args.append(f"filemem.pass_delay_ms={pass_delay_ms}")
        return " ".join(args)


def _check_int(name: str, value: int, low: int, high: int) -> None:
    # bool is an int to Python and to mypy, but True MiB is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")


# --- the initramfs --------------------------------------------------------------------------------


def initramfs_entries(
    busybox: bytes, memcheck: bytes, modules: Mapping[str, bytes] | None = None
) -> list[CpioEntry]:
    """The whole guest userland: busybox, its applet links, memcheck, device nodes, the
    config drive's kernel modules (name -> .ko) and /init."""
    entries = [directory(d) for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")]
    entries += [
        regular_file(f"lib/modules/{name}.ko", data, perm=0o644)
        for name, data in (modules or {}).items()
    ]
    entries += [
        # The kernel opens /dev/console for init before devtmpfs is mounted, so it must exist.
        char_device("dev/console", 5, 1),
        char_device("dev/null", 1, 3, perm=0o666),
        regular_file("bin/busybox", busybox, perm=0o755),
        regular_file(MEMCHECK_PATH.lstrip("/"), memcheck, perm=0o755),
    ]
    entries += [symlink(f"bin/{applet}", "busybox") for applet in APPLETS]
    entries.append(regular_file("init", INIT_SCRIPT.encode(), perm=0o755))
    return entries


def write_initrd(
    path: Path, busybox: bytes, memcheck: bytes, modules: Mapping[str, bytes] | None = None
) -> None:
    # filename="" and mtime=0 keep the temp file's name and the build time out of the gzip header.
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
    ):
        write_newc(initramfs_entries(busybox, memcheck, modules), gz)


# --- cache decision -------------------------------------------------------------------------------


def rebuild_reason(
    manifest: Mapping[str, Any] | None,
    kernel_sha: str | None,
    initrd_sha: str | None,
    init_sha: str = INIT_SHA256,
    memcheck_sha: str | None = None,
) -> str | None:
    """Why the cached image cannot be reused (None: it can). Hashes are None for missing files;
    memcheck_sha defaults to the hash of the packaged memcheck.c."""
    if manifest is None:
        return "no manifest"
    if manifest.get("format") != IMAGE_FORMAT:
        return f"image format {manifest.get('format')!r} is not {IMAGE_FORMAT}"
    if manifest.get("init_sha256") != init_sha:
        return "/init has changed"
    if memcheck_sha is None:
        memcheck_sha = memcheck_source_sha256()
    if manifest.get("memcheck_sha256") != memcheck_sha:
        return f"{MEMCHECK_SOURCE} has changed"
    for name, actual in ((KERNEL_NAME, kernel_sha), (INITRD_NAME, initrd_sha)):
        if actual is None:
            return f"{name} is missing"
        if manifest.get("sha256", {}).get(name) != actual:
            return f"{name} does not match the manifest"
    return None


def sha256_file(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- build ----------------------------------------------------------------------------------------


def _publish(dest: Path, name: str, write: Callable[[Path], object]) -> str:
    """Write dest/name through a temp file + os.replace, world-readable; returns its sha256."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=dest)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # QEMU runs as libvirt-qemu, not as the user who built the image.
        tmp.chmod(0o644)
        digest = sha256_file(tmp)
        os.replace(tmp, dest / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    assert digest is not None
    return digest


def _prepare_dest(dest: Path) -> None:
    # Every directory we create must be traversable by libvirt-qemu, whatever our umask is.
    for directory_ in [*reversed(dest.parents), dest]:
        if not directory_.exists():
            directory_.mkdir()
            directory_.chmod(0o755)
    dest.chmod(0o755)
    # Without a manifest a half-replaced image can never be mistaken for a valid one.
    (dest / MANIFEST_NAME).unlink(missing_ok=True)


def build_test_image(dest: Path, log: Callable[[str], None] = print) -> TestImage:
    """Build the image into dest unconditionally (see ensure_test_image for the cached path)."""
    _prepare_dest(dest)
    with tempfile.TemporaryDirectory(prefix="filemem-test-image-") as tmp:
        workdir = Path(tmp)
        deb = download_kernel_deb(workdir, log)
        kernel_src = extract_kernel(deb, workdir)
        release = kernel_src.name.removeprefix("vmlinuz-")
        modules = kernel_modules(kernel_src.parent.parent, release, CONFIG_DRIVE_MODULES)
        busybox, busybox_version = obtain_busybox(workdir, log)
        source = memcheck_source()
        log(f"compiling {MEMCHECK_SOURCE} (gcc {' '.join(MEMCHECK_CFLAGS)})")
        memcheck = compile_memcheck(workdir, source).read_bytes()
        kernel_sha = _publish(dest, KERNEL_NAME, lambda p: shutil.copyfile(kernel_src, p))
        initrd_sha = _publish(
            dest, INITRD_NAME, lambda p: write_initrd(p, busybox, memcheck, modules)
        )
        manifest = {
            "format": IMAGE_FORMAT,
            "init_sha256": INIT_SHA256,
            "memcheck_sha256": hashlib.sha256(source).hexdigest(),
            "memcheck_gcc": gcc_version(),
            "kernel_package": deb_field(deb, "Package"),
            "kernel_version": deb_field(deb, "Version"),
            "kernel_release": release,
            "busybox_package": BUSYBOX_PACKAGE,
            "busybox_version": busybox_version,
            "sha256": {KERNEL_NAME: kernel_sha, INITRD_NAME: initrd_sha},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _publish(dest, MANIFEST_NAME, lambda p: p.write_text(text))
    log(f"built test image in {dest}: {manifest['kernel_package']} {manifest['kernel_version']}")
    return TestImage(kernel=dest / KERNEL_NAME, initrd=dest / INITRD_NAME)


def ensure_test_image(
    dest: Path = DEFAULT_DEST, force: bool = False, log: Callable[[str], None] = print
) -> TestImage:
    """Return the cached test image in dest, building it first if missing, stale or forced."""
    reason = (
        "--force"
        if force
        else rebuild_reason(
            read_manifest(dest / MANIFEST_NAME),
            sha256_file(dest / KERNEL_NAME),
            sha256_file(dest / INITRD_NAME),
        )
    )
    if reason is None:
        log(f"test image cached at {dest}")
        return TestImage(kernel=dest / KERNEL_NAME, initrd=dest / INITRD_NAME)
    log(f"building test image in {dest} ({reason})")
    return build_test_image(dest, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-test-image",
        description=(
            "Build the tiny guest the functional tests boot: the Debian cloud kernel "
            f"({KERNEL_METAPACKAGE}, downloaded and unpacked, not installed) and an initramfs "
            f"holding only a static busybox and an /init that prints {READY_LINE} on the serial "
            "console, optionally writes filemem.touch_mb=N MiB of memory (then prints "
            f"'{TOUCHED_PREFIX} N'), and powers off if filemem.poweroff=1 or else idles. "
            "With filemem.workload=memcheck it runs memcheck (a static C program built here by "
            f"gcc, which needs {MEMCHECK_PACKAGE}) that fills filemem.mem_mb MiB with a pattern "
            "and checks it forever, one 'FILEMEM-MEMCHECK pass=...' console line per pass. "
            "It boots in seconds under TCG, so tests can start real QEMU guests cheaply. "
            "The result is cached; a rebuild happens only when files do not match the manifest."
        ),
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"directory for vmlinuz, initrd.img and manifest.json (default: {DEFAULT_DEST})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    args = parser.parse_args(argv)
    try:
        image = ensure_test_image(args.dest, force=args.force)
    except (TestImageError, OSError) as exc:
        print(f"build-test-image: {exc}", file=sys.stderr)
        return 1
    print(f"kernel: {image.kernel}\ninitrd: {image.initrd}\ncmdline: {image.cmdline()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
