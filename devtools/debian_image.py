"""Build and cache a bootable Debian 12 cloud guest (cloud-init, ssh, cloud kernel) as qcow2."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import debian_disk
from devtools.debian_disk import DiskLayout
from devtools.image_inputs import TestImageError
from devtools.test_image import read_manifest, sha256_file

DEFAULT_DEST = Path(os.environ.get("FILEMEM_DEBIAN_IMAGE_DIR", "/var/lib/filemem/images/debian"))
IMAGE_NAME = "debian-12.qcow2"
MANIFEST_NAME = "manifest.json"
# Bump when the build steps change in a way the recipe below does not show.
IMAGE_FORMAT = 1
SUITE = "bookworm"
ROOT_LABEL = "debian-root"
# The account cloud-init creates from Debian's cloud.cfg; its key comes from the metadata.
LOGIN_USER = "debian"

# mmdebstrap --variant=minbase brings only Essential + apt; everything else is named here
# (no Recommends). Sudo: cloud-init's default user gets passwordless sudo, as on Debian's images.
PACKAGES = (
    "systemd-sysv",
    "udev",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "openssh-server",
    "cloud-init",
    "cloud-guest-utils",
    "sudo",
    "iproute2",
    "e2fsprogs",
    "netbase",
    "python3",
)
# Docs, man pages and translations are a third of a minimal system and no test reads them.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
# Units that cost boot time under TCG and do nothing a test guest needs. wait-online would hold
# boot for two minutes on a NIC without DHCP; cloud-init reads the config drive without a network.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@tty1.service",
    # No account has a password, so a console login prompt serves nobody; under load its wait
    # for the ttyS0 device ran into systemd's 90 s timeout.
    "serial-getty@ttyS0.service",
    "systemd-networkd-wait-online.service",
)
ENABLED_UNITS = ("systemd-networkd.service",)

CLOUD_INIT_MODULES = (
    "seed_random",
    "bootcmd",
    "write_files",
    "growpart",
    "resizefs",
    "mounts",
    "set_hostname",
    "update_hostname",
    "update_etc_hosts",
    "users_groups",
    "ssh",
)
CLOUD_CONFIG_MODULES = ("set_passwords", "timezone", "runcmd")
CLOUD_FINAL_MODULES = (
    "package_update_upgrade_install",
    "write_files_deferred",
    "scripts_vendor",
    "scripts_per_once",
    "scripts_per_boot",
    "scripts_per_instance",
    "scripts_user",
    "ssh_authkey_fingerprints",
    "final_message",
    "power_state_change",
)


def _yaml_list(items: tuple[str, ...]) -> str:
    return "[ " + ", ".join(items) + " ]"


# Files written into the root filesystem after the packages are installed.
FILES: dict[str, str] = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 rw,discard,errors=remount-ro 0 1\n",
    "etc/hostname": "debian\n",
    # The config drive first (filemem's and nova's), then nova's metadata service; None last so a
    # guest without either still boots and runs its default modules.
    "etc/cloud/cloud.cfg.d/90-filemem.cfg": (
        "datasource_list: [ ConfigDrive, OpenStack, None ]\n"
        "system_info:\n"
        "  network:\n"
        "    renderers: [ networkd ]\n"
        # RSA keys take seconds to generate under TCG; these two take milliseconds.
        "ssh_genkeytypes: [ ed25519, ecdsa ]\n"
        "disable_root: true\n"
        # Debian's module lists without what costs minutes under TCG (locale generation) or
        # needs software the image lacks (apt, grub-dpkg, snap, puppet, chef, ...).
        f"cloud_init_modules: {_yaml_list(CLOUD_INIT_MODULES)}\n"
        f"cloud_config_modules: {_yaml_list(CLOUD_CONFIG_MODULES)}\n"
        f"cloud_final_modules: {_yaml_list(CLOUD_FINAL_MODULES)}\n"
    ),
    # DHCP on any NIC until cloud-init writes its own (10-cloud-init-*.network sorts first).
    "etc/systemd/network/90-dhcp.network": (
        "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n"
    ),
}


@dataclass(frozen=True)
class DebianImage:
    """A built Debian guest: the qcow2 and the user cloud-init makes for the key in the metadata."""

    disk: Path
    user: str = LOGIN_USER
    disk_format: str = "qcow2"


def recipe() -> dict[str, Any]:
    """Everything the build takes from this module; a change to any of it rebuilds the image."""
    return {
        "format": IMAGE_FORMAT,
        "suite": SUITE,
        "packages": list(PACKAGES),
        "dpkg_excludes": list(DPKG_EXCLUDES),
        "masked": list(MASKED_UNITS),
        "enabled": list(ENABLED_UNITS),
        "files": FILES,
        "layout": debian_disk.recipe(),
    }


def recipe_sha256() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()


def rebuild_reason(manifest: dict[str, Any] | None, disk_sha: str | None) -> str | None:
    """Why the cached image cannot be reused (None: it can)."""
    if manifest is None:
        return "no manifest"
    if manifest.get("recipe_sha256") != recipe_sha256():
        return "the recipe has changed"
    if disk_sha is None:
        return f"{IMAGE_NAME} is missing"
    if manifest.get("sha256") != disk_sha:
        return f"{IMAGE_NAME} does not match the manifest"
    return None


def _run(cmd: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, check=False, errors="replace"
        )
    except FileNotFoundError as exc:
        raise TestImageError(f"{cmd[0]} is not installed (see scripts/install)") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-3000:]
        raise TestImageError(f"{' '.join(cmd)} failed ({done.returncode}): {detail}")
    return done.stdout


# --- the root filesystem --------------------------------------------------------------------------


def bootstrap(root: Path) -> None:
    """Debian with PACKAGES into root (run as root: the packages' scripts run in a chroot)."""
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory", "--quiet"]
    cmd += [f"--include={','.join(PACKAGES)}"]
    cmd += [f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES]
    _run([*cmd, SUITE, str(root)])


def customize(root: Path) -> None:
    """Our files, masked and enabled units, and nothing left that must differ per guest."""
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    _run(["systemctl", f"--root={root}", "enable", *ENABLED_UNITS])
    # Every guest gets its own host keys (cloud-init) and machine id (systemd, first boot).
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for leftover in (root / "var/lib/apt/lists").glob("*_*"):
        leftover.unlink()
    (root / "etc/resolv.conf").unlink(missing_ok=True)


def kernel_release(root: Path) -> str:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise TestImageError(f"expected one kernel in {root / 'boot'}, found {len(kernels)}")
    release = kernels[0].name.removeprefix("vmlinuz-")
    if not (root / "boot" / f"initrd.img-{release}").is_file():
        raise TestImageError(f"the kernel {release} has no initrd in {root / 'boot'}")
    return release


def package_versions(root: Path) -> dict[str, str]:
    out = _run(
        ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f=${Package} ${Version}\n"]
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


# --- build ----------------------------------------------------------------------------------------


def build_debian_image(dest: Path, log: Callable[[str], None] = print) -> DebianImage:
    """Build the image into dest unconditionally (see ensure_debian_image for the cached path)."""
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    (dest / MANIFEST_NAME).unlink(missing_ok=True)
    # Under /var/tmp: the root filesystem is ~600 MB and /tmp may be a small tmpfs.
    with tempfile.TemporaryDirectory(prefix="filemem-debian-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        root = work / "root"
        log(f"mmdebstrap {SUITE} with {len(PACKAGES)} packages (a few minutes)")
        bootstrap(root)
        customize(root)
        release = kernel_release(root)
        versions = package_versions(root)
        layout = DiskLayout(root_label=ROOT_LABEL, kernel_release=release)
        log(f"writing the disk: kernel {release}, root LABEL={ROOT_LABEL}")
        tmp_image = dest / f".{IMAGE_NAME}.tmp"
        try:
            debian_disk.write_bootable_qcow2(root, layout, work / "disk.raw", tmp_image)
            tmp_image.chmod(0o644)  # QEMU runs as libvirt-qemu
            digest = sha256_file(tmp_image)
            os.replace(tmp_image, dest / IMAGE_NAME)
        finally:
            tmp_image.unlink(missing_ok=True)
    seconds = round(time.monotonic() - started, 1)
    size = (dest / IMAGE_NAME).stat().st_size
    manifest = {
        "recipe_sha256": recipe_sha256(),
        "sha256": digest,
        "kernel_release": release,
        "packages": {name: versions.get(name, "") for name in PACKAGES},
        "bytes": size,
        "build_seconds": seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest_tmp = dest / f".{MANIFEST_NAME}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    manifest_tmp.chmod(0o644)
    os.replace(manifest_tmp, dest / MANIFEST_NAME)
    log(f"built {dest / IMAGE_NAME}: {size / 2**20:.0f} MiB in {seconds} s")
    return DebianImage(disk=dest / IMAGE_NAME)


def ensure_debian_image(
    dest: Path = DEFAULT_DEST, force: bool = False, log: Callable[[str], None] = print
) -> DebianImage:
    """Return the cached image in dest, building it first if missing, stale or forced."""
    reason = (
        "--force"
        if force
        else rebuild_reason(read_manifest(dest / MANIFEST_NAME), sha256_file(dest / IMAGE_NAME))
    )
    if reason is None:
        log(f"Debian image cached at {dest / IMAGE_NAME}")
        return DebianImage(disk=dest / IMAGE_NAME)
    log(f"building the Debian image in {dest} ({reason})")
    return build_debian_image(dest, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-debian-image",
        description=(
            f"Build a small bootable Debian 12 cloud guest ({IMAGE_NAME}): mmdebstrap from the "
            "host's configured Debian mirror with the cloud kernel, cloud-init (config drive, "
            "then the metadata service), openssh-server and systemd-networkd (DHCP on the first "
            "NIC), written as a partitioned disk with GRUB and converted to compressed qcow2. "
            f"The root password is locked; cloud-init creates the user {LOGIN_USER!r} with the "
            "key from the metadata. Needs root, mmdebstrap and grub-pc-bin (scripts/install). "
            "The result is cached; a rebuild happens only when the recipe or the file changes."
        ),
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"directory for {IMAGE_NAME} and {MANIFEST_NAME} (default: {DEFAULT_DEST})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    args = parser.parse_args(argv)
    try:
        image = ensure_debian_image(args.dest, force=args.force)
    except (TestImageError, OSError) as exc:
        print(f"build-debian-image: {exc}", file=sys.stderr)
        return 1
    print(f"disk: {image.disk}\nformat: {image.disk_format}\nuser: {image.user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
