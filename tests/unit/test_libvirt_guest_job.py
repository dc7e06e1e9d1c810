"""LibvirtDriver.guest_job when libvirt refuses jobInfo: a stopped domain, an incoming one."""

from __future__ import annotations

import libvirt
import pytest

from filemem.exceptions import HypervisorError
from filemem.virt.libvirt.driver import LibvirtDriver


class _RefusingDomain:
    """A domain whose jobInfo libvirt refuses with `code`."""

    def __init__(self, code: int) -> None:
        self.code = code

    def isPersistent(self) -> int:
        return 1

    def jobInfo(self) -> list[int]:
        error = libvirt.libvirtError("Requested operation is not valid: domain is not running")
        error.err = (self.code, 0, "domain is not running", 2, "", None, None, 0, 0)
        raise error


def _driver(monkeypatch: pytest.MonkeyPatch, code: int) -> LibvirtDriver:
    driver = object.__new__(LibvirtDriver)
    monkeypatch.setattr(driver, "_lookup", lambda uuid: _RefusingDomain(code), raising=False)
    return driver


def test_a_guest_that_stopped_has_no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    job = _driver(monkeypatch, libvirt.VIR_ERR_OPERATION_INVALID).guest_job("u1")
    assert job.active is False and job.persistent is True


def test_an_incoming_guest_has_a_running_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirt gives migration statistics only on the source: on the destination the refusal
    means the incoming migration is still running, not an agent failure."""
    job = _driver(monkeypatch, libvirt.VIR_ERR_OPERATION_UNSUPPORTED).guest_job("u1")
    assert job.active is True


def test_other_errors_still_leave_as_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HypervisorError, match="reading the job of guest u1"):
        _driver(monkeypatch, libvirt.VIR_ERR_INTERNAL_ERROR).guest_job("u1")
