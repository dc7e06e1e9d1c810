"""Tempest's results (subunit) against tests/tempest/expected.yaml: what may skip or still fail."""

from __future__ import annotations

import fnmatch
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import subunit
import testtools
import yaml

EXPECTED = Path(__file__).with_name("expected.yaml")
COMPUTE_API = r"^tempest\.api\.compute\."
UNSTABLE = "unstable:"
# Outcomes of one test; "not run": listed, but no result (its class's set-up failed).
PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"
_ATTRS = re.compile(r"\[.*\]$")
_CLASS_FIXTURE = re.compile(r"^(?:setUpClass|tearDownClass) \((\S+)\)$")


def test_name(test_id: str) -> str:
    """A Tempest id without its attributes: `a.b.C.test_x[id-...,smoke]` -> `a.b.C.test_x`."""
    return _ATTRS.sub("", test_id.strip())


@dataclass
class Outcome:
    status: str
    detail: str = ""  # the skip reason, or the start of the failure


@dataclass
class Expected:
    """expected.yaml: `skip` and `known_failures`, each {reason: [test name or fnmatch
    pattern, ...]}. A known failure whose reason starts with 'unstable:' may also pass."""

    skip: dict[str, list[str]] = field(default_factory=dict)
    known_failures: dict[str, list[str]] = field(default_factory=dict)
    run: list[str] = field(default_factory=list)  # test modules; empty: all of COMPUTE_API

    @classmethod
    def load(cls, path: Path = EXPECTED) -> Expected:
        data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        return cls(data.get("skip") or {}, data.get("known_failures") or {}, data.get("run") or [])

    def regex(self) -> str:
        """The tests to run: the listed modules, or every compute API test."""
        if not self.run:
            return COMPUTE_API
        return "^(?:" + "|".join(re.escape(module) for module in self.run) + r")\."

    @staticmethod
    def _reason(groups: Mapping[str, list[str]], name: str) -> str | None:
        for reason, patterns in groups.items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                return reason
        return None

    def skip_reason(self, name: str) -> str | None:
        return self._reason(self.skip, name)

    def failure_reason(self, name: str) -> str | None:
        return self._reason(self.known_failures, name)


def parse_subunit(stream: bytes) -> dict[str, Outcome]:
    """Each test's outcome by name; a failed class fixture is returned under the class name."""
    found: dict[str, Outcome] = {}

    def on_test(test: Any) -> None:  # testtools' TestDict
        name = test_name(test["id"])
        fixture = _CLASS_FIXTURE.match(name)
        if fixture:
            name = fixture.group(1)
        status = test["status"]
        details = test.get("details", {})
        if status == "skip":
            reason = details.get("reason")
            found[name] = Outcome(SKIPPED, reason.as_text() if reason else "")
        elif status in ("success", "xfail"):
            found.setdefault(name, Outcome(PASSED))
        elif status in ("fail", "uxsuccess"):
            text = "".join(d.as_text() for d in details.values() if d.content_type.type == "text")
            found[name] = Outcome(FAILED, text[-2000:])

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(io.BytesIO(stream), non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return found


def outcomes(listed: Iterable[str], found: Mapping[str, Outcome]) -> dict[str, Outcome]:
    """Every listed test's outcome. One without a result has its class's: skipped when the
    class skipped (Tempest skips whole classes in set-up), else 'not run' (its set-up failed,
    or the run ended first)."""
    every: dict[str, Outcome] = {}
    for name in listed:
        if name in found:
            every[name] = found[name]
            continue
        owner = found.get(name.rsplit(".", 1)[0])
        if owner is not None and owner.status == SKIPPED:
            every[name] = owner
        else:
            every[name] = Outcome(NOT_RUN, owner.detail if owner else "")
    return every


def problems(every: Mapping[str, Outcome], expected: Expected) -> list[str]:
    """What breaks the ratchet: a test outside the lists that skips or fails, a known
    failure that passes (unless unstable) or skips."""
    found = []
    for name, outcome in sorted(every.items()):
        known = expected.failure_reason(name)
        if outcome.status == SKIPPED and expected.skip_reason(name) is None:
            found.append(f"newly skipped: {name}: {outcome.detail[:300]}")
        elif outcome.status in (FAILED, NOT_RUN) and known is None:
            found.append(f"newly {outcome.status}: {name}: {outcome.detail[-600:]}")
        elif outcome.status == PASSED and known and not known.startswith(UNSTABLE):
            found.append(f"now passes (remove it from known_failures): {name}")
    return found


def counts(every: Mapping[str, Outcome]) -> dict[str, int]:
    totals = {PASSED: 0, FAILED: 0, NOT_RUN: 0, SKIPPED: 0}
    for outcome in every.values():
        totals[outcome.status] += 1
    return totals


def observed_yaml(every: Mapping[str, Outcome]) -> str:
    """The outcomes as expected.yaml would list them (skips by reason, failures by first
    line), for a person to judge before editing the real list."""
    skip: dict[str, list[str]] = {}
    failures: dict[str, list[str]] = {}
    for name, outcome in sorted(every.items()):
        if outcome.status == SKIPPED:
            skip.setdefault(outcome.detail.strip()[:200], []).append(name)
        elif outcome.status in (FAILED, NOT_RUN):
            lines = [line for line in outcome.detail.strip().splitlines() if line.strip()]
            key = f"{outcome.status}: {lines[-1][:200] if lines else '?'}"
            failures.setdefault(key, []).append(name)
    return str(yaml.safe_dump({"skip": skip, "known_failures": failures}, width=100))
