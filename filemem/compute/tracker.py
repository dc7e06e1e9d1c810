"""Resource tracker: keeps this host's resource provider, inventory and traits true in Placement."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oslo_config import cfg

from filemem.backing import store
from filemem.backing.store import StoreFacts
from filemem.common.guests import MemoryFileUsage
from filemem.common.private_files import PRIVATE_FILE
from filemem.common.resources import MEMORY_MB
from filemem.compute import inventory
from filemem.compute.inventory import HostInventory, HostResources, InventoryConfig, StoreUsage
from filemem.placement.client import CONCURRENT_UPDATE, PlacementClient, PlacementConflict
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

PROVIDER_UUID_FILE = "compute_node_uuid"


# -- provider identity ---------------------------------------------------------------------


def read_provider_uuid(state_path: Path) -> str | None:
    """The provider uuid kept under state_path, or None when none was created yet."""
    try:
        text = (Path(state_path) / PROVIDER_UUID_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return str(uuidlib.UUID(text))


def provider_uuid(state_path: Path) -> str:
    """This host's provider uuid: created once, then the same across restarts.

    Written to a temporary file and hard-linked into place, so a reader never sees a partial
    file and two processes starting together agree on the one that got there first.
    """
    state_path = Path(state_path)
    existing = read_provider_uuid(state_path)
    if existing is not None:
        return existing
    state_path.mkdir(parents=True, exist_ok=True)
    new = str(uuidlib.uuid4())
    tmp = state_path / f".{PROVIDER_UUID_FILE}.{os.getpid()}.{new[:8]}"
    # Private like every file of the state directory (private_files): no one else needs it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(new + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, state_path / PROVIDER_UUID_FILE)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    _fsync_dir(state_path)
    result = read_provider_uuid(state_path)
    assert result is not None
    return result


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- host facts ----------------------------------------------------------------------------


def local_host_resources(state_path: Path) -> HostResources:
    """RAM, CPUs and the instance-disk filesystem of this machine (libvirt is local)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    vfs = os.statvfs(state_path)
    return HostResources(
        memory_mb=memory, vcpus=os.cpu_count() or 1, disk_bytes=vfs.f_blocks * vfs.f_frsize
    )


@dataclass(frozen=True)
class StoreSample:
    """The backing store and our guests' memory files in it, read at one moment."""

    facts: StoreFacts
    files: dict[int, MemoryFileUsage]  # by libvirt domain id

    @property
    def allocated_bytes(self) -> int:
        return sum(f.allocated_bytes for f in self.files.values())

    def usage(self) -> StoreUsage:
        return StoreUsage(
            self.facts.size_bytes,
            self.facts.free_bytes,
            self.allocated_bytes,
            self.facts.ram_limit_bytes,
        )


def inventory_config(conf: cfg.ConfigOpts) -> InventoryConfig:
    return InventoryConfig(
        file_backed_memory_mb=conf.libvirt.file_backed_memory,
        reserved_host_memory_mb=conf.reserved_host_memory_mb,
        ram_allocation_ratio=conf.ram_allocation_ratio,
        cpu_allocation_ratio=conf.cpu_allocation_ratio,
        reserved_host_disk_mb=conf.reserved_host_disk_mb,
        backing_store_headroom_mb=conf.libvirt.backing_store_headroom_mb,
        guest_memory_limit_mb=conf.libvirt.guest_memory_limit_mb,
    )


# -- the tracker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    provider_uuid: str
    provider_generation: int
    inventory: HostInventory
    traits: frozenset[str]  # every trait on the provider after the sync, foreign ones included
    inventory_written: bool
    traits_written: bool
    store: StoreSample | None
    requests: int
    writes: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.writes > 0


class ResourceTracker:
    """Syncs the provider named [DEFAULT] host, its inventory and owned traits.

    `store_dir` replaces the driver's memory_backing_dir for store inspection (tests point it
    at a filesystem of their own); `host_resources` replaces the local RAM/CPU/disk probe.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        driver: HypervisorDriver,
        client: PlacementClient,
        *,
        store_dir: Path | None = None,
        host_resources: Callable[[], HostResources] | None = None,
    ) -> None:
        self.conf = conf
        self.driver = driver
        self.client = client
        self.state_path = Path(conf.state_path)
        self.name: str = conf.host
        self.config = inventory_config(conf)
        self._store_dir = store_dir
        self._host_resources = host_resources or (lambda: local_host_resources(self.state_path))
        self.provider_uuid = provider_uuid(self.state_path)
        self._last: HostInventory | None = None
        # The ram_allocation_ratio of the host's aggregates, as the API's registration answer
        # gave it; it replaces [DEFAULT] ram_allocation_ratio so a sync never undoes it.
        self.aggregate_ram_ratio: float | None = None

    def sample_store(self) -> StoreSample | None:
        """The backing store now; None on a host without file-backed memory."""
        if not self.config.file_backed:
            return None
        backing_dir = self._store_dir or self.driver.memory_backing_dir()
        user = store.qemu_user(self.driver.qemu_conf_text())
        return StoreSample(
            store.inspect_store(backing_dir, user), store.all_memory_files(backing_dir)
        )

    def wanted(self, sample: StoreSample | None) -> HostInventory:
        usage = sample.usage() if sample is not None else None
        config = self.config
        if self.aggregate_ram_ratio is not None:
            config = dataclasses.replace(config, ram_allocation_ratio=self.aggregate_ram_ratio)
        return inventory.compute_inventory(config, self._host_resources(), usage)

    def sync(self) -> SyncResult:
        """Provider, inventory, traits; with nothing changed only reads (3 GETs)."""
        started = time.monotonic()
        requests, writes = self.client.request_count, self.client.write_count
        sample = self.sample_store()
        wanted = self.wanted(sample)
        provider = self.client.ensure_resource_provider(self.provider_uuid, self.name)
        # Traits before inventory: a provider that has capacity always carries its traits, so
        # the scheduler never sees a new file-backed host without COMPUTE_... trait and sends
        # it a guest that forbids the trait (a huge-page flavor).
        traits_written, traits = self._sync_traits(wanted.traits)
        inventory_written = self.client.set_inventories(self.provider_uuid, wanted.inventories)
        notes = self._log_capacity(wanted, inventory_written)
        return SyncResult(
            provider_uuid=self.provider_uuid,
            provider_generation=provider.generation,
            inventory=wanted,
            traits=frozenset(traits),
            inventory_written=inventory_written,
            traits_written=traits_written,
            store=sample,
            requests=self.client.request_count - requests,
            writes=self.client.write_count - writes,
            seconds=time.monotonic() - started,
            notes=notes,
        )

    def _sync_traits(self, ours: frozenset[str]) -> tuple[bool, set[str]]:
        """Make our owned traits exactly `ours`, keeping foreign traits; one GET when unchanged.

        Not PlacementClient.set_traits: it would retry a generation race with the trait set
        computed before the race, dropping a foreign trait added meanwhile.
        """
        path = f"/resource_providers/{self.provider_uuid}/traits"
        for attempt in range(self.client.max_retries + 1):
            generation, current = self.client.get_traits(self.provider_uuid)
            wanted = inventory.merge_traits(current, ours)
            if wanted == current:
                return False, current
            body = {"resource_provider_generation": generation, "traits": sorted(wanted)}
            try:
                self.client.request("PUT", path, body)
            except PlacementConflict as exc:
                if exc.code != CONCURRENT_UPDATE or attempt >= self.client.max_retries:
                    raise
                time.sleep(min(1.0, 0.02 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311
                continue
            LOG.info(
                "traits of provider %s (%s) are now %s",
                self.name,
                self.provider_uuid,
                sorted(wanted),
            )
            return True, wanted
        raise AssertionError("unreachable")

    def _log_capacity(self, wanted: HostInventory, written: bool) -> list[str]:
        """WARNING when memory is held back (on change), INFO when it is given back."""
        notes: list[str] = []
        memory = wanted.inventories.get(MEMORY_MB, {})
        previous = self._last
        self._last = wanted
        if wanted.capacity_reduced:
            before = previous.inventories.get(MEMORY_MB, {}) if previous else {}
            if previous is None or before.get("reserved") != memory.get("reserved"):
                notes.append(f"capacity reduced: {wanted.capacity_reason}")
                LOG.warning(
                    "host %s: MEMORY_MB capacity reduced: %s", self.name, wanted.capacity_reason
                )
        elif previous is not None and previous.capacity_reduced:
            notes.append("capacity restored")
            LOG.info(
                "host %s: MEMORY_MB capacity restored: the backing store holds %s MiB "
                "again; reserved back to %s MiB of total %s MiB",
                self.name,
                wanted.store_capacity_mb,
                memory.get("reserved"),
                memory.get("total"),
            )
        if written:
            LOG.info("host %s: inventory written: %s", self.name, _summary(wanted))
        return notes


def _summary(wanted: HostInventory) -> str:
    return ", ".join(
        f"{rc} total {rec['total']} reserved {rec['reserved']} ratio {rec['allocation_ratio']}"
        for rc, rec in sorted(wanted.inventories.items())
    )
