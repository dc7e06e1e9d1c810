"""Reconcile policy: from desired instances (the API's view) and observed guests, the next steps.

Pure and level-triggered: the plan depends only on the two states, never on which message was
seen before, so an agent killed at any point converges after a restart. Every step is safe to
repeat: a spawn is planned only for a guest that does not exist, a report only repeats facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filemem.common.agent_contract.answers import (
    AgentInstance,
    IncomingMigrationView,
    LiveMigrationView,
    NicView,
)
from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.common.states import (
    ACTIVE,
    BUILDING,
    DELETING,
    ERROR,
    IMAGE_SNAPSHOT,
    PAUSED,
    PAUSING,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    REBUILDING,
    RESIZE_MIGRATING,
    RESIZE_REVERTING,
    RESIZED,
    RESUMING,
    STOPPED,
    SUSPENDED,
    SUSPENDING,
    UNPAUSING,
)

OWNER = "api"  # the owner metadata of guests agents reconcile (and may reap as orphans)


@dataclass(frozen=True)
class LiveMigrationSpec:
    """The source's view of an outgoing live migration (the contract's `live_migration`)."""

    migration_uuid: str
    dest_host: str
    dest_address: str
    dest_file_backed_memory_mb: int = 0
    block_migration: bool = False
    dest_prepared: bool = False
    force_complete: bool = False
    abort: bool = False

    @classmethod
    def from_contract(cls, view: LiveMigrationView | None) -> LiveMigrationSpec | None:
        if view is None:
            return None
        return cls(
            migration_uuid=view.migration_uuid,
            dest_host=view.dest_host,
            dest_address=view.dest_address or view.dest_host,
            dest_file_backed_memory_mb=view.dest_file_backed_memory_mb,
            block_migration=view.block_migration,
            dest_prepared=view.dest_prepared,
            force_complete=view.force_complete,
            abort=view.abort,
        )


@dataclass(frozen=True)
class IncomingMigration:
    """The destination's view of a live migration coming in (`incoming_migration`)."""

    migration_uuid: str
    source_host: str

    @classmethod
    def from_contract(cls, view: IncomingMigrationView | None) -> IncomingMigration | None:
        if view is None:
            return None
        return cls(migration_uuid=view.migration_uuid, source_host=view.source_host)


@dataclass(frozen=True)
class MigrationFacts:
    """What this host knows of an instance's live migration besides libvirt's guest list:
    whether this agent runs it or ran it to its end, libvirt's job, and the markers left in
    the instance directory (source: started; destination: prepared reported)."""

    running_here: bool = False
    finished_here: bool = False
    job_active: bool = False
    persistent: bool = True
    started_marker: bool = False
    prepared_marker: bool = False


@dataclass(frozen=True)
class DesiredInstance:
    """One instance the API assigned to this host (the contract's AgentInstance, as the plan
    reads it)."""

    uuid: str
    name: str
    vm_state: str
    task_state: str | None
    flavor: Flavor
    image: Image
    deleted_requested: bool = False
    project_id: str = ""
    user_id: str = ""
    # Requests answered beside the task: an NMI (trigger_crash_dump), and the console log's tail
    # for the request made at this time (the API's own string, echoed back when answering).
    crash_dump_requested: bool = False
    console_requested_at: str | None = None
    # Placement consumers of this instance's unfinished moves (a resize holds the old flavor
    # under its migration uuid): heal keeps their allocations.
    migration_uuids: tuple[str, ...] = ()
    live_migration: LiveMigrationSpec | None = None
    incoming_migration: IncomingMigration | None = None
    # The contract's objects as they came: the network driver plugs nics, the config drive
    # and metadata read the rest (filemem.common.agent_contract.answers.AgentInstance).
    nics: tuple[NicView, ...] = ()
    config_drive: bool = False
    hostname: str | None = None
    user_data: str | None = None
    key_name: str | None = None
    public_keys: Mapping[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    launch_index: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    snapshot_image_id: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DesiredInstance:
        """The agent view as the API sent it (JSON), validated against the contract."""
        return cls.from_contract(AgentInstance.model_validate(data))

    @classmethod
    def from_contract(cls, view: AgentInstance) -> DesiredInstance:
        flavor, image = view.flavor, view.image
        return cls(
            uuid=view.uuid,
            name=view.name,
            vm_state=view.vm_state,
            task_state=view.task_state,
            flavor=Flavor(
                name=flavor.name,
                vcpus=flavor.vcpus,
                memory_mb=flavor.memory_mb,
                disk_gb=flavor.root_gb or 0,
                extra_specs=dict(flavor.extra_specs or {}),
            ),
            image=Image(
                # No kind: the image is not in the catalogue. It goes the disk way, where
                # check_image refuses it (no disk file) before a guest is defined.
                kind=image.kind or "disk",
                kernel=_path(image.kernel_path),
                initrd=_path(image.initrd_path),
                cmdline=image.cmdline or "",
                disk=_path(image.disk_path),
                disk_format=image.disk_format or "qcow2",
                name=image.name or "",
                mem_page_size=image.mem_page_size,
                source=image.source or "path",
                image_id=image.id,
                size=image.size,
                os_hash_algo=image.os_hash_algo,
                os_hash_value=image.os_hash_value,
            ),
            deleted_requested=view.deleted_requested,
            project_id=view.project_id or "",
            user_id=view.user_id or "",
            crash_dump_requested=view.crash_dump_requested,
            console_requested_at=view.console_requested_at or None,
            migration_uuids=tuple(view.migration_uuids),
            live_migration=LiveMigrationSpec.from_contract(view.live_migration),
            incoming_migration=IncomingMigration.from_contract(view.incoming_migration),
            nics=tuple(view.nics),
            config_drive=view.config_drive,
            hostname=view.hostname,
            user_data=view.user_data,
            key_name=view.key_name,
            public_keys=dict(view.public_keys),
            availability_zone=view.availability_zone,
            launch_index=view.launch_index,
            metadata=dict(view.metadata),
            snapshot_image_id=view.snapshot_image_id,
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


MigrationStepKind = Literal[
    "live_migrate", "migration_control", "migration_event", "prepare_incoming"
]
# Every kind has one case in the executor's dispatch (mypy checks it: assert_never).
StepKind = Literal[
    "spawn",
    "stop",
    "start",
    "reboot",
    "reboot_hard",
    "destroy",
    "report",
    "gone",
    "pause",
    "unpause",
    "suspend",
    "resume",
    "rebuild",
    "resize",
    "crash_dump",
    "console",
    "snapshot",
    MigrationStepKind,
]

# nova's instance-action event names (the compute manager methods nova wraps), by task.
BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"
CRASH_DUMP_EVENT = "compute_trigger_crash_dump"
TASK_EVENTS: dict[str | None, str] = {
    POWERING_OFF: "compute_stop_instance",
    POWERING_ON: "compute_start_instance",
    REBOOTING: "compute_reboot_instance",
    REBOOTING_HARD: "compute_reboot_instance",
    PAUSING: "compute_pause_instance",
    UNPAUSING: "compute_unpause_instance",
    SUSPENDING: "compute_suspend_instance",
    RESUMING: "compute_resume_instance",
    REBUILDING: "compute_rebuild_instance",
    RESIZE_MIGRATING: "compute_finish_resize",
    RESIZE_REVERTING: "compute_finish_revert_resize",
    IMAGE_SNAPSHOT: "compute_snapshot_instance",
}


@dataclass(frozen=True)
class Step:
    """One thing to do. `report` is sent to the API after `kind` succeeded, then `event` (nova's
    event name) is recorded on the instance's newest action, Success or Error."""

    kind: StepKind
    uuid: str
    instance: DesiredInstance | None = None
    report: dict[str, Any] = field(default_factory=dict)
    event: str | None = None
    run: bool = True  # resize, rebuild: whether the guest runs afterwards
    # live migration steps: the migration, and the event posted to it (migration_event)
    migration_uuid: str | None = None
    migration_body: dict[str, Any] = field(default_factory=dict)


def _state(vm_state: str, power: PowerState, task_state: str | None = None) -> dict[str, Any]:
    return {"vm_state": vm_state, "power_state": int(power), "task_state": task_state}


def plan_instance(
    want: DesiredInstance, have: GuestInfo | None, facts: MigrationFacts | None = None
) -> list[Step]:
    """The steps that bring one instance to what the API asks: the console request first (it
    only reads), then the state, then an NMI."""
    if want.incoming_migration is not None:
        # Never spawned nor destroyed here: the guest arrives through libvirt.
        return plan_incoming(want, want.incoming_migration, have, facts or MigrationFacts())
    if want.deleted_requested or want.task_state == DELETING:
        gone = Step("gone", want.uuid)
        return [Step("destroy", want.uuid, event=TERMINATE_EVENT), gone] if have else [gone]
    steps = []
    if want.console_requested_at:
        steps.append(Step("console", want.uuid, want))
    if want.live_migration is not None:
        return steps + plan_outgoing(want, want.live_migration, have, facts or MigrationFacts())
    steps += _plan_state(want, have)
    if want.crash_dump_requested:
        answered = {"crash_dump_requested": False}
        if have is not None and have.power_state == PowerState.RUNNING:
            steps.append(Step("crash_dump", want.uuid, report=answered, event=CRASH_DUMP_EVENT))
        else:  # no longer running: nothing to send it to, the request is answered all the same
            steps.append(Step("report", want.uuid, report=answered))
    return steps


def _plan_state(want: DesiredInstance, have: GuestInfo | None) -> list[Step]:
    if want.task_state == REBUILDING:
        # Whatever the guest is now (even none, or an instance in ERROR): spawned again from the
        # desired image, back to the state it had (ERROR -> ACTIVE, as nova does).
        run = want.vm_state != STOPPED
        report = _state(ACTIVE, PowerState.RUNNING) if run else _state(STOPPED, PowerState.SHUTDOWN)
        return [Step("rebuild", want.uuid, want, report, TASK_EVENTS[REBUILDING], run)]
    if want.vm_state == ERROR:
        return []
    if want.vm_state == BUILDING:
        if have is None:
            return [Step("spawn", want.uuid, want, _state(ACTIVE, PowerState.RUNNING), BUILD_EVENT)]
        return [Step("report", want.uuid, report=observed_state(have), event=BUILD_EVENT)]
    if have is None:
        return [
            Step(
                "report",
                want.uuid,
                report={
                    **_state(ERROR, PowerState.NOSTATE),
                    "fault_message": "the guest is no longer defined on its host",
                    "fault_code": 500,
                },
            )
        ]
    return _plan_existing(want, have)


def _plan_existing(want: DesiredInstance, have: GuestInfo) -> list[Step]:
    task = want.task_state
    power = have.power_state
    running = power == PowerState.RUNNING
    alive = power in (PowerState.RUNNING, PowerState.PAUSED)  # QEMU runs, memory file exists
    event = TASK_EVENTS.get(task)

    def act(kind: StepKind, report: dict[str, Any]) -> list[Step]:
        return [Step(kind, want.uuid, want, report, event)]

    def done(report: dict[str, Any]) -> list[Step]:
        """Nothing left to do for the task (done before a restart, or impossible now)."""
        return [Step("report", want.uuid, report=report, event=event)]

    if task == POWERING_OFF:
        stopped = _state(STOPPED, PowerState.SHUTDOWN)
        return act("stop", stopped) if alive else done(stopped)
    if task == POWERING_ON:
        if alive:
            return done(observed_state(have))
        return act("start", _state(ACTIVE, PowerState.RUNNING))
    if task in (REBOOTING, REBOOTING_HARD):
        kind: StepKind = "reboot_hard" if task == REBOOTING_HARD else "reboot"
        return act(kind, _state(ACTIVE, PowerState.RUNNING))
    if task == PAUSING:
        if running:
            return act("pause", _state(PAUSED, PowerState.PAUSED))
        return done(observed_state(have))
    if task == UNPAUSING:
        if power == PowerState.PAUSED:
            return act("unpause", _state(ACTIVE, PowerState.RUNNING))
        return done(observed_state(have))
    if task == SUSPENDING:
        if alive:
            return act("suspend", _state(SUSPENDED, PowerState.SHUTDOWN))
        return done(observed_state(have))
    if task == RESUMING:
        if alive:
            return done(observed_state(have))
        return act("resume", _state(ACTIVE, PowerState.RUNNING))
    if task == IMAGE_SNAPSHOT:
        # Paused, stopped or suspended (its disk is not written then) or running (paused for
        # the copy): the guest stays as it is; the report only ends the task.
        if want.snapshot_image_id is None:
            return done(observed_state(have))
        return act("snapshot", observed_state(have))
    if task == RESIZE_MIGRATING:
        # nova's finish_resize: the guest runs afterwards unless it was stopped before.
        run = want.vm_state != STOPPED
        if not _has_flavor(have, want.flavor):
            power_after = PowerState.RUNNING if run else PowerState.SHUTDOWN
            return [Step("resize", want.uuid, want, _state(RESIZED, power_after), event, run)]
        if run and not alive:  # redefined, then the agent stopped before starting it
            return act("start", _state(RESIZED, PowerState.RUNNING))
        return done(_state(RESIZED, power))
    if task == RESIZE_REVERTING:
        # The old flavor is back in the desired state; the guest keeps running if it ran.
        after = (
            _state(ACTIVE, PowerState.RUNNING) if alive else _state(STOPPED, PowerState.SHUTDOWN)
        )
        if not _has_flavor(have, want.flavor):
            return [Step("resize", want.uuid, want, after, event, alive)]
        return done(after if alive else _state(STOPPED, power))
    observed = observed_state(have)
    if task is not None:
        return [Step("report", want.uuid, report=observed)]
    if want.vm_state == RESIZED and observed["vm_state"] in (ACTIVE, STOPPED):
        return []  # waiting for confirm or revert, running or not
    # The guest changed on its own (powered itself off, crashed, was resumed behind our back):
    # tell the API, change nothing.
    if observed["vm_state"] != want.vm_state:
        return [Step("report", want.uuid, report=observed)]
    return []


def _has_flavor(have: GuestInfo, flavor: Flavor) -> bool:
    return have.memory_mb == flavor.memory_mb and have.vcpus == flavor.vcpus


def observed_state(have: GuestInfo) -> dict[str, Any]:
    """The vm_state and power_state (task_state null) a guest's libvirt state stands for."""
    if have.power_state == PowerState.RUNNING:
        return _state(ACTIVE, PowerState.RUNNING)
    if have.power_state == PowerState.PAUSED:
        return _state(PAUSED, PowerState.PAUSED)
    if have.power_state == PowerState.CRASHED:
        return {
            **_state(ERROR, PowerState.CRASHED),
            "fault_message": "the guest crashed",
            "fault_code": 500,
        }
    if have.managed_save:  # shut off with its memory saved: nova's suspended, power SHUTDOWN
        return _state(SUSPENDED, PowerState.SHUTDOWN)
    return _state(STOPPED, have.power_state)


def plan(
    desired: list[DesiredInstance],
    observed: list[GuestInfo],
    migrations: Mapping[str, MigrationFacts] | None = None,
) -> list[Step]:
    """Every step for this host: desired instances first, then guests nobody wants (orphans).
    `migrations` holds the facts of instances being live-migrated, by uuid."""
    by_uuid = {g.uuid: g for g in observed}
    facts = migrations or {}
    steps = [
        step
        for want in desired
        for step in plan_instance(want, by_uuid.get(want.uuid), facts.get(want.uuid))
    ]
    wanted = {want.uuid for want in desired}
    # A guest in a migration job (arriving or leaving) is never reaped as an orphan mid-way.
    steps += [
        Step("destroy", g.uuid)
        for g in observed
        if g.owner == OWNER
        and g.uuid not in wanted
        and not facts.get(g.uuid, MigrationFacts()).job_active
    ]
    return steps


# -- live migration (docs: the live migration contract) -----------------------------------

LIVE_MIGRATION_EVENT = "compute_live_migration"
PRE_LIVE_MIGRATION_EVENT = "compute_pre_live_migration"
POST_LIVE_MIGRATION_EVENT = "compute_post_live_migration_at_destination"
INTERRUPTED = "migration interrupted: the source agent restarted"


def _migration_event(
    want: DesiredInstance, migration_uuid: str, body: dict[str, Any], event: str | None
) -> Step:
    return Step(
        "migration_event",
        want.uuid,
        want,
        event=event,
        migration_uuid=migration_uuid,
        migration_body=body,
    )


def plan_outgoing(
    want: DesiredInstance, lm: LiveMigrationSpec, have: GuestInfo | None, facts: MigrationFacts
) -> list[Step]:
    """The source: start once the destination is prepared, pass force/abort requests to the
    running migration, and after a restart fail the one that was interrupted."""
    if have is None or facts.finished_here:
        return []  # it left (UNDEFINE_SOURCE): the destination or the API decides
    if facts.running_here:
        if lm.force_complete or lm.abort:
            return [Step("migration_control", want.uuid, want, migration_uuid=lm.migration_uuid)]
        return []
    if facts.job_active:
        return []  # a job from before a restart still runs in libvirtd: its end decides
    if facts.started_marker:
        body = {"event": "failed", "reason": INTERRUPTED}
        return [_migration_event(want, lm.migration_uuid, body, LIVE_MIGRATION_EVENT)]
    if lm.abort:
        body = {"event": "cancelled", "reason": "aborted before the migration started"}
        return [_migration_event(want, lm.migration_uuid, body, None)]
    if not lm.dest_prepared:
        return []
    return [Step("live_migrate", want.uuid, want, migration_uuid=lm.migration_uuid)]


def plan_incoming(
    want: DesiredInstance,
    incoming: IncomingMigration,
    have: GuestInfo | None,
    facts: MigrationFacts,
) -> list[Step]:
    """The destination: prepare (once reported, the marker says so), then report `completed`
    when the guest runs here persistently with no job (its source agent may be gone)."""
    mid = incoming.migration_uuid
    if have is None:
        if facts.prepared_marker:
            return []
        return [
            Step(
                "prepare_incoming",
                want.uuid,
                want,
                event=PRE_LIVE_MIGRATION_EVENT,
                migration_uuid=mid,
                migration_body={"event": "prepared"},
            )
        ]
    if facts.job_active or not facts.persistent or have.power_state != PowerState.RUNNING:
        return []
    return [_migration_event(want, mid, {"event": "completed"}, POST_LIVE_MIGRATION_EVENT)]
