"""OpenStack's conformance suite: Tempest's compute API tests against a real filemem cloud.

Every test outside tests/tempest/expected.yaml must pass; one that newly fails or skips, or a
known failure that now passes, fails this test (the list only shrinks: issue 20).
"""

from __future__ import annotations

import os
import uuid as uuidlib

import pytest

from devtools.test_image import TestImage
from tests.functional.conftest import SCRATCH
from tests.tempest.results import Expected
from tests.tempest.run import CONCURRENCY, run_tempest
from tests.tempest.stack import tempest_cloud

# The whole run: about an hour on a loaded 2-core machine (README, Tests); pytest's default
# timeout (600 s) is for one ordinary test.
TEMPEST_TIMEOUT_S = 5400


@pytest.mark.timeout(TEMPEST_TIMEOUT_S)
def test_tempest_compute_api(libvirtd: None, test_image: TestImage) -> None:
    expected = Expected.load()
    regex = os.environ.get("FILEMEM_TEMPEST_REGEX") or expected.regex()
    base = SCRATCH / f"tempest-{uuidlib.uuid4().hex[:8]}"
    with tempest_cloud(base, test_image) as cloud:
        report = run_tempest(cloud, regex, CONCURRENCY, expected)
        print(f"\ntempest: {report.summary()} in {report.seconds:.0f} s")
        tail = report.log.read_text()[-4000:] if report.problems else ""
        assert not report.problems, "\n".join(report.problems) + f"\n{tail}\n{cloud.logs()}"
