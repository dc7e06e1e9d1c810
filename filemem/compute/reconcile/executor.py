"""Carries out the reconcile plan on this host: libvirt through the manager, state to the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from filemem.common.guests import PowerState
from filemem.common.states import ERROR
from filemem.compute.agent_api import AgentApi, ApiUnavailable
from filemem.compute.manager import ComputeManager
from filemem.compute.reconcile.plan import OWNER, DesiredInstance, Step, plan
from filemem.exceptions import FilememError, HypervisorUnavailable
from filemem.placement.client import PlacementUnavailable
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

# Worth a retry on the next pass rather than a fault on the instance.
_TRANSIENT = (ApiUnavailable, HypervisorUnavailable, PlacementUnavailable)


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
    ) -> None:
        self.host = host
        self.manager = manager
        self.driver = driver
        self.api = api
        self.shutdown_timeout = shutdown_timeout

    def run_pass(self, desired: list[DesiredInstance]) -> PassResult:
        result = PassResult()
        # Several agents may share one libvirtd (tests, multi-host on one machine): only guests
        # with an instance directory under our state_path are ours to reconcile or reap.
        observed = [g for g in self.driver.list_guests() if self.manager.owns(g)]
        skip: set[str] = set()
        for step in plan(desired, observed):
            if step.uuid in skip:
                continue
            try:
                self._execute(step)
            except _TRANSIENT:
                raise  # the whole pass is retried with backoff by the agent loop
            except FilememError as exc:
                skip.add(step.uuid)
                result.failed[step.uuid] = str(exc)
                self._fail(step, exc)
                continue
            result.done.append(step)
        return result

    def _execute(self, step: Step) -> None:
        driver = self.driver
        if step.kind == "spawn":
            assert step.instance is not None
            want = step.instance
            LOG.info("spawning %s (%s)", want.name, want.uuid)
            self.manager.spawn(
                _domain_name(want),
                want.uuid,
                want.flavor,
                want.image,
                owner=OWNER,
                project_id=want.project_id or None,
                user_id=want.user_id or None,
            )
        elif step.kind == "stop":
            driver.power_off(step.uuid, self.shutdown_timeout)
        elif step.kind == "start":
            driver.power_on(step.uuid)
        elif step.kind in ("reboot", "reboot_hard"):
            driver.reboot(step.uuid, hard=step.kind == "reboot_hard")
        elif step.kind == "destroy":
            LOG.info("destroying %s", step.uuid)
            self.manager.destroy(step.uuid)
        elif step.kind == "gone":
            self.api.gone(step.uuid)
        if step.report:
            self.api.report(
                step.uuid,
                {**step.report, "fault_message": None}
                if step.report.get("vm_state") != ERROR
                else step.report,
            )

    def _fail(self, step: Step, exc: FilememError) -> None:
        LOG.error("%s of %s failed: %s", step.kind, step.uuid, exc)
        if step.kind not in ("spawn", "stop", "start", "reboot", "reboot_hard"):
            return
        power = PowerState.NOSTATE if step.kind == "spawn" else PowerState.SHUTDOWN
        try:
            self.api.report(
                step.uuid,
                {
                    "vm_state": ERROR,
                    "task_state": None,
                    "power_state": int(power),
                    "fault_message": str(exc),
                    "fault_code": 500,
                },
            )
        except FilememError as report_exc:
            LOG.error("could not report the failure of %s: %s", step.uuid, report_exc)


def _domain_name(want: DesiredInstance) -> str:
    """libvirt names are unique per host and become paths: derive them from the uuid, as nova
    does with instance-%08x, not from the user's display name."""
    return f"instance-{want.uuid}"
