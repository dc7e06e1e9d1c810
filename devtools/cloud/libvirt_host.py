"""One simulated host's private libvirt: directories, config, mounts, store, virtlogd + libvirtd."""

from __future__ import annotations

import shutil
import socket
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

from devtools.cloud import namespaces, procs
from devtools.cloud.spec import (
    IMAGE_DIR,
    MEMORY_BACKING_DIR,
    PRIVATE_LIBVIRT_DIRS,
    CloudSpec,
    HostSpec,
    libvirtd_conf,
    qemu_conf,
)

SYSTEM_LIBVIRT_ETC = Path("/etc/libvirt")
SYSTEM_QEMU_CAPS = Path("/var/cache/libvirt/qemu/capabilities")
LIBVIRTD_PORT = 16509
DAEMON_TIMEOUT_S = 60.0

Progress = Callable[[str], None]


def system_objects(directory: str, names: list[str]) -> set[str]:
    """What a host's copy of /etc/libvirt leaves out (shutil.copytree's `ignore`): the system
    libvirtd's own objects. Its domain definitions (qemu/*.xml, qemu/autostart) would be
    defined on every new host, where no agent owns them: the functional tests' and `filemem
    up`'s guests showed up as leftovers on simulated hosts. Its secrets are not a host's either."""
    where = Path(directory)
    if where == SYSTEM_LIBVIRT_ETC:
        return {"secrets"} & set(names)
    if where == SYSTEM_LIBVIRT_ETC / "qemu":
        return {name for name in names if name.endswith(".xml") or name == "autostart"}
    return set()


def prepare_dirs(spec: CloudSpec, host: HostSpec) -> None:
    """The host's own copies of libvirt's directories, its config and its filemem state."""
    host_dir = spec.host_dir(host)
    for key in PRIVATE_LIBVIRT_DIRS:
        (host_dir / key).mkdir(mode=0o755, parents=True, exist_ok=True)
    etc = host_dir / "etc"
    shutil.rmtree(etc)
    shutil.copytree(SYSTEM_LIBVIRT_ETC, etc, symlinks=True, ignore=system_objects)
    address = spec.address_of(host)
    libvirtd = etc / "libvirtd.conf"
    libvirtd.write_text(libvirtd_conf(libvirtd.read_text(), address, str(uuidlib.uuid4())))
    qemu = etc / "qemu.conf"
    qemu.write_text(qemu_conf(qemu.read_text(), address))
    (host_dir / "log" / "qemu").mkdir(mode=0o755, exist_ok=True)
    (host_dir / "lib" / "qemu").mkdir(mode=0o755, exist_ok=True)
    # A copy of the system daemon's QEMU capabilities saves each host a probe of QEMU (seconds
    # on a busy machine); libvirtd re-probes by itself if the copy does not fit.
    if SYSTEM_QEMU_CAPS.is_dir():
        caps = host_dir / "cache" / "qemu" / "capabilities"
        caps.mkdir(mode=0o755, parents=True, exist_ok=True)
        for xml in SYSTEM_QEMU_CAPS.glob("*.xml"):
            shutil.copy2(xml, caps / xml.name)
    (host_dir / "state").mkdir(mode=0o755, exist_ok=True)
    spec.state_path.mkdir(mode=0o755, parents=True, exist_ok=True)


def mount_host(spec: CloudSpec, host: HostSpec, holder: int) -> None:
    """Inside the host's mount namespace: private libvirt dirs, the store, the state path and
    the image catalogue read-only."""
    host_dir = spec.host_dir(host)
    run = namespaces.run_in
    run(holder, ["hostname", host.name])
    for key, target in PRIVATE_LIBVIRT_DIRS.items():
        run(holder, ["mount", "--bind", str(host_dir / key), str(target)])
    run(holder, ["mount", "--bind", str(host_dir / "state"), str(spec.state_path)])
    run(holder, ["mkdir", "-p", str(MEMORY_BACKING_DIR)])
    if host.file_backed:
        store = f"size={host.store_mb}m,mode=0755"
        run(
            holder,
            ["mount", "-t", "tmpfs", "-o", store, f"fmstore-{host.name}", str(MEMORY_BACKING_DIR)],
        )
    if IMAGE_DIR.is_dir():
        run(holder, ["mount", "--bind", str(IMAGE_DIR), str(IMAGE_DIR)])
        run(holder, ["mount", "-o", "remount,bind,ro", str(IMAGE_DIR)])


def _listening(address: str) -> bool:
    try:
        with socket.create_connection((address, LIBVIRTD_PORT), timeout=1):
            return True
    except OSError:
        return False


def start_daemons(spec: CloudSpec, host: HostSpec, holder: int, progress: Progress) -> None:
    """virtlogd and libvirtd (TCP on the host's address), daemonized, pid files in the host's
    private /run/libvirt; waits until libvirtd answers on TCP."""
    namespaces.run_in(holder, ["virtlogd", "-d", "-p", "/run/libvirt/virtlogd.pid"])
    start_libvirtd(spec, host, holder, progress)


def start_libvirtd(spec: CloudSpec, host: HostSpec, holder: int, progress: Progress) -> None:
    """libvirtd alone (also to bring it back after stop_libvirtd); waits until it answers."""
    namespaces.run_in(holder, ["libvirtd", "-d", "--listen", "-p", "/run/libvirt/libvirtd.pid"])
    address = spec.address_of(host)
    procs.wait_for(
        f"{host.name}: libvirtd on {address}:{LIBVIRTD_PORT}",
        lambda: _listening(address),
        DAEMON_TIMEOUT_S,
        lambda: "\n" + procs.log_tail(spec.host_dir(host) / "log" / "libvirtd.log"),
    )
    version = procs.run(["virsh", "-c", spec.libvirt_uri(host), "version"])
    if "Running hypervisor: QEMU" not in version:
        raise procs.CloudError(f"{host.name}: libvirtd answers but has no QEMU:\n{version}")
    progress(f"{host.name}: libvirtd up at {spec.libvirt_uri(host)}")


def daemon_pid(spec: CloudSpec, host: HostSpec, daemon: str) -> int | None:
    """libvirtd's or virtlogd's pid from its own pid file (plain pid, no start time)."""
    try:
        return int((spec.host_dir(host) / "run" / f"{daemon}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def destroy_guests(spec: CloudSpec, host: HostSpec) -> None:
    """Destroy every running guest of the host's libvirtd (their memory files go with them)."""
    uri = spec.libvirt_uri(host)
    if not _listening(spec.address_of(host)):
        return
    names = procs.run(["virsh", "-c", uri, "list", "--name"], check=False).split()
    for name in names:
        procs.run(["virsh", "-c", uri, "destroy", name], check=False)


def stop_libvirtd(spec: CloudSpec, host: HostSpec) -> None:
    """libvirtd alone (a fault: guests keep running, the host's libvirt is unreachable)."""
    stop_daemons(spec, host, ("libvirtd",))


def stop_daemons(
    spec: CloudSpec, host: HostSpec, daemons: tuple[str, ...] = ("libvirtd", "virtlogd")
) -> None:
    """libvirtd, then virtlogd (it writes the guests' console logs until they are gone)."""
    holder = namespaces.holder_pid(spec, host)
    for daemon in daemons:
        pid = daemon_pid(spec, host, daemon)
        if pid is None or holder is None or pid not in namespaces.pids_in_namespace(holder):
            continue  # not ours any more: never signal a pid outside the host's namespace
        procs.terminate(pid, 15)
