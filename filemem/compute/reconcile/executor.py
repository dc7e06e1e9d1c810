"""Carries out the reconcile plan on this host: libvirt through the manager, state to the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal, Never, NoReturn, assert_never

from filemem.common.guests import Nic, PowerState
from filemem.common.states import ERROR
from filemem.compute.agent_api import AgentApi, ApiUnavailable, ContractMismatch
from filemem.compute.config_drive import spawning, write_config_drive
from filemem.compute.console import console_tail
from filemem.compute.image_cache import ImageCache, ImageDownloadFailed
from filemem.compute.live_migration import MigrationRunner, source_marker
from filemem.compute.manager import ComputeManager
from filemem.compute.network.base import InstancePorts, NetworkDriver, NetworkError, NoNetwork
from filemem.compute.reconcile.plan import (
    OWNER,
    DesiredInstance,
    MigrationFacts,
    MigrationStepKind,
    Step,
    observed_state,
    plan,
)
from filemem.exceptions import FilememError, GuestNotFound, HypervisorUnavailable
from filemem.placement.client import PlacementUnavailable
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

# Worth a retry on the next pass rather than a fault on the instance.
_TRANSIENT = (ApiUnavailable, HypervisorUnavailable, PlacementUnavailable)
# The agent's, not the step's: an API of another contract version (the loop stops on it).
_NOT_THE_STEPS = (*_TRANSIENT, ContractMismatch)
# A failure of these leaves the instance in ERROR (nova: a failed build, power change, rebuild
# or resize); a failed pause, suspend (...) only ends the task, the guest as it is (nova's
# reverts_task_state).
_ERROR_ON_FAILURE = frozenset(
    {"spawn", "stop", "start", "reboot", "reboot_hard", "rebuild", "resize"}
)
_REVERT_ON_FAILURE = frozenset({"pause", "unpause", "suspend", "resume", "snapshot"})
SUCCESS = "Success"
FAILURE = "Error"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class PassResult:
    done: list[Step] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class PlanExecutor:
    """One pass = plan from (desired, observed) + execute; safe to run again at any time."""

    def __init__(
        self,
        host: str,
        manager: ComputeManager,
        driver: HypervisorDriver,
        api: AgentApi,
        shutdown_timeout: float | None = None,
        network: NetworkDriver | None = None,
        images: ImageCache | None = None,
    ) -> None:
        self.host = host
        self.manager = manager
        self.driver = driver
        self.api = api
        self.shutdown_timeout = shutdown_timeout
        self.network = network or NoNetwork()
        self.migrations = MigrationRunner(driver, api)
        # Where uploaded images are downloaded to; None: this agent boots path images only.
        self.images = images

    def _local(self, want: DesiredInstance) -> DesiredInstance:
        """`want` with its image's disk on this host (an upload downloaded into the cache)."""
        if want.image.source != "upload":
            return want
        if self.images is None:
            raise ImageDownloadFailed(
                f"image {want.image.image_id} was uploaded to the API, and this agent has no "
                "image cache to download it into"
            )
        return dataclasses.replace(want, image=self.images.local(want.image))

    def run_pass(self, desired: list[DesiredInstance]) -> PassResult:
        result = PassResult()
        self._sync_network(desired)
        # Several agents may share one libvirtd (tests, multi-host on one machine): only guests
        # with an instance directory under our state_path are ours to reconcile or reap.
        observed = [g for g in self.driver.list_guests() if self.manager.owns(g)]
        by_uuid = {g.uuid: g for g in observed}
        facts: dict[str, MigrationFacts] = {
            want.uuid: self.migrations.facts(want, by_uuid.get(want.uuid))
            for want in desired
            if want.live_migration is not None or want.incoming_migration is not None
        }
        wanted = {want.uuid for want in desired}
        for guest in observed:
            if guest.uuid not in wanted:  # an orphan, unless a migration job holds it
                facts[guest.uuid] = self.migrations.orphan_facts(guest.uuid)
        skip: set[str] = set()
        for step in plan(desired, observed, facts):
            if step.uuid in skip:
                continue
            started = _now()
            try:
                self._execute(step)
            except _NOT_THE_STEPS:
                raise  # the whole pass is retried with backoff, or the loop stops
            except FilememError as exc:
                skip.add(step.uuid)
                result.failed[step.uuid] = str(exc)
                trace = traceback.format_exc()
                self._fail(step, exc)
                self._record_event(step, started, FAILURE, trace)
                continue
            result.done.append(step)
            self._record_event(step, started, SUCCESS)
        return result

    def _execute(self, step: Step) -> None:
        self._perform(step)
        if step.report:
            report = step.report
            if "vm_state" in report and report["vm_state"] != ERROR:
                report = {**report, "fault_message": None}
            self.api.report(step.uuid, report)

    def _perform(self, step: Step) -> None:
        """The step's action; its report is sent after it. One case per StepKind: mypy refuses
        a kind without one (assert_never)."""
        driver, kind = self.driver, step.kind
        match kind:
            case "spawn" | "rebuild" | "resize":
                self._build(step, kind)
            case "stop":
                driver.power_off(step.uuid, self.shutdown_timeout)
            case "start":
                driver.power_on(step.uuid)
            case "reboot" | "reboot_hard":
                driver.reboot(step.uuid, hard=kind == "reboot_hard")
            case "destroy":
                LOG.info("destroying %s", step.uuid)
                self.manager.destroy(step.uuid)
                self.network.unplug(step.uuid)  # its taps went with the domain
            case "gone":
                self.api.gone(step.uuid)
            case "pause":
                driver.pause(step.uuid)
            case "unpause":
                driver.unpause(step.uuid)
            case "suspend":
                driver.suspend(step.uuid)
            case "resume":
                driver.resume(step.uuid)
            case "crash_dump":
                LOG.info("injecting an NMI into %s (trigger_crash_dump)", step.uuid)
                driver.inject_nmi(step.uuid)
            case "console":
                want = step.instance
                assert want is not None and want.console_requested_at is not None
                output = console_tail(driver.console_log(step.uuid))
                self.api.console(step.uuid, output, want.console_requested_at)
            case "snapshot":
                self._snapshot(step)
            case "report":
                pass  # nothing to do but the report
            case "live_migrate" | "migration_control" | "prepare_incoming" | "migration_event":
                self._execute_migration(step, kind)
            case _:
                unknown_step(kind)

    def _build(self, step: Step, kind: Literal["spawn", "rebuild", "resize"]) -> None:
        """A guest defined from the desired flavor and image: new, again, or resized."""
        assert step.instance is not None
        want = self._local(step.instance)
        nics = self._plug(want)
        match kind:
            case "spawn":
                LOG.info("spawning %s (%s)", want.name, want.uuid)
                with spawning(self.driver, want):
                    self.manager.spawn(
                        _domain_name(want),
                        want.uuid,
                        want.flavor,
                        want.image,
                        owner=OWNER,
                        nics=nics,
                    )
            case "resize":
                LOG.info("resizing %s to flavor %s", want.uuid, want.flavor.name)
                self.driver.resize(step.uuid, want.flavor, want.image, step.run, nics=nics)
            case "rebuild":
                LOG.info("rebuilding %s (%s)", want.name, want.uuid)
                write_config_drive(self.driver, want)
                self.manager.rebuild(
                    _domain_name(want),
                    want.uuid,
                    want.flavor,
                    want.image,
                    start=step.run,
                    owner=OWNER,
                    nics=nics,
                )
            case _:
                unknown_step(kind)

    def _snapshot(self, step: Step) -> None:
        """The guest's disk to its queued image: written next to the guest (the host's own
        disk, never the API's), uploaded through the image API, then removed."""
        want = step.instance
        assert want is not None and want.snapshot_image_id is not None
        image_id = want.snapshot_image_id
        path = self.driver.instance_dir(want.uuid) / f"snapshot-{image_id}.qcow2"
        LOG.info("writing the disk of %s to image %s", want.uuid, image_id)
        try:
            self.driver.snapshot_disk(want.uuid, path)
            self.api.upload_image(image_id, path)
        finally:
            path.unlink(missing_ok=True)

    def _execute_migration(self, step: Step, kind: MigrationStepKind) -> None:
        want, mid = step.instance, step.migration_uuid
        assert want is not None and mid is not None
        match kind:
            case "live_migrate":
                self.migrations.start(want)
            case "migration_control":
                assert want.live_migration is not None
                self.migrations.control(want.live_migration, want.uuid)
            case "prepare_incoming":
                # The domain XML names the bridge: it must exist here before the guest comes.
                local = self._local(want)
                self._plug(local)
                self.migrations.prepare_incoming(local, mid, step.migration_body)
            case "migration_event":
                LOG.info("live migration %s of %s: %s", mid, want.uuid, step.migration_body)
                self.api.migration_event(mid, step.migration_body)
                source_marker(self.driver.instance_dir(want.uuid), mid).unlink(missing_ok=True)
            case _:
                unknown_step(kind)

    def _plug(self, want: DesiredInstance) -> tuple[Nic, ...]:
        """The guest's NICs, plugged on this host's network (the same ports every time: a
        rebuild, resize or migration keeps the MACs and addresses)."""
        return self.network.plug(_ports(want))

    def _sync_network(self, desired: list[DesiredInstance]) -> None:
        """Serve the ports of the instances here (not of those being deleted), and revive the
        network (dnsmasq) when it died. A broken network fails the steps that plug ports, with
        the reason in their fault; it does not stop deletes and power actions."""
        try:
            self.network.sync(_ports(want) for want in desired if not want.deleted_requested)
        except NetworkError as exc:
            LOG.error("the host's network for guests is not ready: %s", exc)

    def _fail(self, step: Step, exc: FilememError) -> None:
        LOG.error("%s of %s failed: %s", step.kind, step.uuid, exc)
        report: dict[str, Any]
        if step.kind == "prepare_incoming" and step.migration_uuid is not None:
            # The destination cannot take the guest: the migration fails before it starts.
            try:
                body = {"event": "failed", "reason": f"destination {self.host}: {exc}"[:65536]}
                self.api.migration_event(step.migration_uuid, body)
            except FilememError as report_exc:
                LOG.error("could not fail migration %s: %s", step.migration_uuid, report_exc)
            return
        if step.kind in _ERROR_ON_FAILURE:
            power = PowerState.NOSTATE if step.kind == "spawn" else self._power(step.uuid)
            report = {
                "vm_state": ERROR,
                "task_state": None,
                "power_state": int(power),
                "fault_message": str(exc),
                "fault_code": 500,
            }
        elif step.kind in _REVERT_ON_FAILURE:
            try:
                report = observed_state(self.driver.get_guest(step.uuid))
            except FilememError:
                report = {"task_state": None}
        elif step.kind == "crash_dump":
            report = {"crash_dump_requested": False}  # answered: the event says it failed
        else:
            return
        try:
            self.api.report(step.uuid, report)
        except FilememError as report_exc:
            LOG.error("could not report the failure of %s: %s", step.uuid, report_exc)

    def _power(self, uuid: str) -> PowerState:
        """The guest's power state after a failed step (SHUTDOWN when it cannot be read)."""
        try:
            return self.driver.get_guest(uuid).power_state
        except GuestNotFound:
            return PowerState.NOSTATE
        except FilememError:
            return PowerState.SHUTDOWN

    def _record_event(
        self, step: Step, started: str, result: str, trace: str | None = None
    ) -> None:
        """nova's instance-action event for the step; a failure to record it is only logged."""
        if step.event is None:
            return
        body = {
            "event": step.event,
            "result": result,
            "start_time": started,
            "finish_time": _now(),
            "traceback": trace,
        }
        try:
            self.api.event(step.uuid, body)
        except Exception as exc:  # an event must never fail the step it records
            LOG.warning("could not record event %s of %s: %s", step.event, step.uuid, exc)


class UnknownStep(FilememError):
    """A step kind the executor has no case for. mypy refuses one at the dispatch; this is
    for a kind that came past the types at run time: its step fails, it is never done."""


def unknown_step(kind: Never) -> NoReturn:
    """typing.assert_never for the dispatch, raised as a FilememError so that run_pass fails
    the one step (an Error event) instead of the whole pass."""
    try:
        assert_never(kind)
    except AssertionError as exc:
        raise UnknownStep(f"no executor for step kind {kind!r}") from exc


def _ports(want: DesiredInstance) -> InstancePorts:
    return InstancePorts(want.uuid, want.hostname, want.nics)


def _domain_name(want: DesiredInstance) -> str:
    """libvirt names are unique per host and become paths: derive them from the uuid, as nova
    does with instance-%08x, not from the user's display name."""
    return f"instance-{want.uuid}"
