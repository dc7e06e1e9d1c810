"""The fake driver's live migration: a job the test ends (progress, complete, fail)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from filemem.common.resources import MIB
from filemem.virt.driver import LiveMigration, MigrationTarget
from filemem.virt.migration import (
    MigrationOutcome,
    MigrationProgress,
    MigrationResult,
    ProgressCallback,
)

if TYPE_CHECKING:
    from filemem.virt.fake import FakeDriver


class FakeLiveMigration(LiveMigration):
    """A fake migration the test ends: `report` (progress), `complete`, `fail`."""

    def __init__(
        self,
        driver: FakeDriver,
        uuid: str,
        target: MigrationTarget,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.driver, self.uuid, self.target = driver, uuid, target
        self.on_progress = on_progress
        self.forced = False
        self.aborted = False
        self.result: MigrationResult | None = None
        self._done = threading.Event()

    def report(self, processed_bytes: int) -> None:
        total = self.driver._get(self.uuid).info.memory_mb * MIB
        if self.on_progress is not None:
            self.on_progress(
                MigrationProgress(1.0, total, processed_bytes, max(0, total - processed_bytes))
            )

    def complete(self) -> None:
        self.driver._migrate_out(self.uuid, self.target)
        self._end(MigrationResult(MigrationOutcome.COMPLETED))

    def fail(self, reason: str) -> None:
        self._end(MigrationResult(MigrationOutcome.FAILED, reason))

    def _end(self, result: MigrationResult) -> None:
        if self.result is None:
            self.driver.jobs.discard(self.uuid)
            self.result = result
            self._done.set()

    def force_complete(self) -> None:
        self.forced = True

    def abort(self) -> None:
        self.aborted = True
        self._end(
            MigrationResult(
                MigrationOutcome.CANCELLED,
                "operation aborted: migration out job: canceled by client",
            )
        )

    def wait(self, timeout: float | None = None) -> MigrationResult | None:
        return self.result if self._done.wait(timeout) else None
