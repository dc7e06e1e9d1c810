"""Obtain the test image's inputs: the Debian cloud kernel and a static busybox (apt-get and
dpkg-deb; nothing is installed) and the memcheck binary (gcc)."""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from filemem.exceptions import FilememError

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# Without this, apt-get download as root warns that the _apt user cannot write the cwd.
APT_OPTS = ("-q", "-o", "APT::Sandbox::User=root")

# The memcheck workload: a static C program (memcheck.c, package data).
MEMCHECK_SOURCE = "memcheck.c"
MEMCHECK_PACKAGE = "libc6-dev"  # the static C library gcc -static links against
MEMCHECK_CFLAGS = ("-O2", "-static", "-s", "-Wall", "-Wextra")


class TestImageError(FilememError):
    """The test image could not be built (apt, dpkg-deb or the filesystem failed)."""

    __test__ = False  # not a pytest test class, despite the name


def parse_kernel_package(depends_output: str) -> str:
    """Pick linux-image-<ver>-cloud-amd64 out of `apt-cache depends linux-image-cloud-amd64`."""
    match = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)\b", depends_output)
    if match is None or match.group(1) == KERNEL_METAPACKAGE:
        raise TestImageError(f"no versioned kernel among the dependencies of {KERNEL_METAPACKAGE}")
    return match.group(1)


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise TestImageError(f"{cmd[0]} is not installed (this needs a Debian host)") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise TestImageError(f"{' '.join(cmd)} failed ({done.returncode}): {detail}")
    return done.stdout


def _fetch_deb(package: str, workdir: Path) -> Path:
    _run(["apt-get", *APT_OPTS, "download", package], cwd=workdir)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise TestImageError(f"apt-get download {package} left {len(debs)} .deb files")
    return debs[0]


def _with_apt_update(action: Callable[[], Path], log: Callable[[str], None]) -> Path:
    """Run an apt action; on failure refresh the package lists once (never run, or stale)."""
    try:
        return action()
    except TestImageError as exc:
        log(f"apt failed ({exc}); running apt-get update and retrying")
    _run(["apt-get", *APT_OPTS, "update"])
    return action()


def download_kernel_deb(workdir: Path, log: Callable[[str], None]) -> Path:
    def attempt() -> Path:
        package = parse_kernel_package(_run(["apt-cache", "depends", KERNEL_METAPACKAGE]))
        log(f"downloading {package}")
        return _fetch_deb(package, workdir)

    return _with_apt_update(attempt, log)


def deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).strip()


def extract_kernel(deb: Path, workdir: Path) -> Path:
    root = workdir / "kernel-root"
    _run(["dpkg-deb", "-x", str(deb), str(root)])
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise TestImageError(f"{deb.name} holds {len(kernels)} boot/vmlinuz-* files, expected 1")
    return kernels[0]


def kernel_modules(root: Path, release: str, names: Sequence[str]) -> dict[str, bytes]:
    """The named modules (uncompressed .ko, as Debian's kernel ships them) from an unpacked
    kernel package, by name in the order given."""
    tree = root / "lib" / "modules" / release / "kernel"
    found = {path.name.removesuffix(".ko"): path for path in tree.rglob("*.ko")}
    missing = [name for name in names if name not in found]
    if missing:
        raise TestImageError(f"the kernel {release} has no module {', '.join(missing)} in {tree}")
    return {name: found[name].read_bytes() for name in names}


def _installed_version(package: str) -> str | None:
    try:
        status = _run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package])
    except TestImageError:
        return None
    state, _, version = status.partition("\t")
    return version if state.endswith(" installed") else None


def obtain_busybox(workdir: Path, log: Callable[[str], None]) -> tuple[bytes, str]:
    """The static busybox binary and its package version.

    /bin/busybox is only used when busybox-static provides it: the plain busybox package ships a
    dynamically linked binary that cannot run in an initramfs without libc. Otherwise the package is
    downloaded and unpacked, which leaves the host's installed packages alone.
    """
    version = _installed_version(BUSYBOX_PACKAGE)
    if version is not None:
        log(f"using /bin/busybox from the installed {BUSYBOX_PACKAGE} {version}")
        return Path("/bin/busybox").read_bytes(), version
    log(f"{BUSYBOX_PACKAGE} is not installed; downloading it (not installing)")
    deb = _with_apt_update(lambda: _fetch_deb(BUSYBOX_PACKAGE, workdir), log)
    root = workdir / "busybox-root"
    _run(["dpkg-deb", "-x", str(deb), str(root)])
    return (root / "bin" / "busybox").read_bytes(), deb_field(deb, "Version")


def memcheck_source() -> bytes:
    """memcheck.c as shipped in the package."""
    return resources.files("devtools").joinpath(MEMCHECK_SOURCE).read_bytes()


@functools.cache
def memcheck_source_sha256() -> str:
    return hashlib.sha256(memcheck_source()).hexdigest()


def compile_memcheck(workdir: Path, source: bytes | None = None) -> Path:
    """Build memcheck.c into a static binary in workdir (gcc -O2 -static); returns its path."""
    src = workdir / MEMCHECK_SOURCE
    src.write_bytes(memcheck_source() if source is None else source)
    out = workdir / "memcheck"
    cmd = ["gcc", *MEMCHECK_CFLAGS, "-o", str(out), str(src)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise TestImageError(
            f"gcc is not installed; the test image compiles {MEMCHECK_SOURCE} with it "
            f"(apt-get install gcc {MEMCHECK_PACKAGE})"
        ) from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise TestImageError(
            f"{' '.join(cmd)} failed ({done.returncode}); a static build needs the static C "
            f"library from {MEMCHECK_PACKAGE} (apt-get install {MEMCHECK_PACKAGE}): {detail}"
        )
    return out


def gcc_version() -> str:
    return _run(["gcc", "-dumpfullversion"]).strip()
