"""Findings: the result type of startup checks and backing-store inspection."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Severity(enum.IntEnum):
    OK = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True)
class Finding:
    """One observation: `option` names the config option at fault (e.g. "[libvirt] virt_type")."""

    severity: Severity
    code: str
    message: str
    option: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.name.lower(),
            "code": self.code,
            "message": self.message,
            "option": self.option,
        }


def ok(code: str, message: str, option: str | None = None) -> Finding:
    return Finding(Severity.OK, code, message, option)


def warning(code: str, message: str, option: str | None = None) -> Finding:
    return Finding(Severity.WARNING, code, message, option)


def error(code: str, message: str, option: str | None = None) -> Finding:
    return Finding(Severity.ERROR, code, message, option)


def worst(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), default=Severity.OK)
