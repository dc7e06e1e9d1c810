"""The API's answers to its agents (API -> agent): the long-poll desired set, registration,
and the small acknowledgements. Unknown fields are ignored (additive changes, see the package
docstring); defaults stand for fields an older API leaves out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from filemem.common.agent_contract import UNVERSIONED


class Answer(BaseModel):
    """Read by agents of this or an older contract: fields they do not know are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class FlavorView(Answer):
    id: str | None = None
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int | None = 0
    extra_specs: dict[str, str] | None = Field(default_factory=dict)


class ImageView(Answer):
    """A kernel boot (kernel_path, initrd_path, cmdline) or a disk image (disk_path,
    disk_format); kind null: the instance's image is not in the catalogue."""

    id: str | None = None
    kind: Literal["kernel", "disk"] | None
    kernel_path: str | None = None
    initrd_path: str | None = None
    cmdline: str | None = ""
    disk_path: str | None = None
    disk_format: Literal["qcow2", "raw"] | None = None
    name: str | None = None
    # The image property hw_mem_page_size: guest config combines it with the flavor's.
    mem_page_size: str | None = None
    # "upload": no path; the agent downloads the data (GET /image/v2/images/{id}/file) into
    # its image cache and checks it against os_hash_value (os_hash_algo) and size. None or
    # "path": the files are where the paths say, on every host.
    source: Literal["path", "upload"] | None = None
    size: int | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None


class LiveMigrationView(Answer):
    """The source host's view of an outgoing live migration (docs/live-migration-agent.md)."""

    migration_uuid: str
    dest_host: str
    # Where libvirt connects: the destination's migration_address, else its host name.
    dest_address: str | None = None
    dest_file_backed_memory_mb: int = 0
    block_migration: bool = False
    dest_prepared: bool = False
    force_complete: bool = False
    abort: bool = False


class IncomingMigrationView(Answer):
    """The destination host's view of a live migration coming in."""

    migration_uuid: str
    source_host: str


class NicView(Answer):
    """One network interface of the instance (a port, in Neutron's words). The API allocates
    the port and its address; the agent plugs it as `vif_type` says and never chooses either."""

    port_id: str
    mac_address: str
    network_id: str
    network_name: str
    ip_address: str | None = None
    # The subnet the address is in ("10.0.0.0/24"), its gateway and DNS servers: what a config
    # drive's network_data.json and the DHCP server hand the guest.
    cidr: str | None = None
    gateway: str | None = None
    dns_nameservers: list[str] = Field(default_factory=list)
    mtu: int | None = None
    # "bridge": the built-in driver's Linux bridge named in `bridge`; "ovs" (Neutron's ML2/OVN,
    # a later contract addition) carries what os-vif needs in vif_details.
    vif_type: str = "bridge"
    bridge: str | None = None
    vif_details: dict[str, Any] = Field(default_factory=dict)


class AgentInstance(Answer):
    """What an agent needs to converge one instance (the "agent view")."""

    uuid: str
    name: str
    host: str | None = None
    vm_state: str
    task_state: str | None = None
    power_state: int | None = None
    flavor: FlavorView
    image: ImageView
    deleted_requested: bool = False
    project_id: str | None = ""
    user_id: str | None = ""
    # Requests answered beside the task: an NMI (trigger_crash_dump), and the console log's
    # tail for the request made at this time (the stored time in full, isoformat, naive UTC:
    # the agent echoes it, and the API clears the request only when it still is that time).
    crash_dump_requested: bool = False
    console_requested_at: str | None = None
    # Placement consumers of the instance's unfinished moves: the agent's heal keeps them.
    migration_uuids: list[str] = Field(default_factory=list)
    live_migration: LiveMigrationView | None = None
    incoming_migration: IncomingMigrationView | None = None
    # The guest's interfaces, in the order the guest sees them (eth0 first).
    nics: list[NicView] = Field(default_factory=list)
    # What the guest learns about itself (nova's metadata: a config drive and the metadata
    # API read the same facts). user_data is the request's base64 text, unchanged.
    config_drive: bool = False
    hostname: str | None = None
    user_data: str | None = None
    key_name: str | None = None
    public_keys: dict[str, str] = Field(default_factory=dict)
    availability_zone: str | None = None
    launch_index: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)
    # While task_state is image_snapshot: the queued image the guest's disk is uploaded to.
    snapshot_image_id: str | None = None


class WatchAnswer(Answer):
    """GET /filemem/v1/hosts/{host}/instances: the full desired set of the host, and the
    cursor (the host's newest change) it is not older than."""

    contract_version: int = UNVERSIONED
    cursor: int
    instances: list[AgentInstance]


class ServiceView(Answer):
    id: int
    host: str
    binary: str
    disabled: bool
    disabled_reason: str | None = None
    provider_uuid: str | None = None
    file_backed: bool = False
    file_backed_memory_mb: int = 0
    capabilities: dict[str, bool] | None = None
    version: str | None = None
    migration_address: str | None = None
    store_free_mb: int | None = None
    last_seen_at: str | None = None


class RegistrationAnswer(Answer):
    """PUT /filemem/v1/services/{host}: the service as stored, and the MEMORY_MB allocation
    ratio the host's aggregates give it (null: its own)."""

    contract_version: int = UNVERSIONED
    service: ServiceView
    ram_allocation_ratio: float | None = None


class MemoryUsageAnswer(Answer):
    """PUT /filemem/v1/hosts/{host}/memory-usage: guests stored, and those of other hosts."""

    stored: int
    ignored: int


class MigrationEventAnswer(Answer):
    """POST /filemem/v1/migrations/{uuid}/events: the migration's status after the event."""

    migration_uuid: str
    status: str
