"""Fixtures shared by unit and functional tests: one real embedded Placement per test process."""

from __future__ import annotations

import pytest

from filemem.placement.embedded import EmbeddedPlacement


@pytest.fixture(scope="session")
def embedded_placement(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedPlacement:
    """The real openstack-placement app in-process on SQLite (~1 s to build).

    Placement keeps its database engine process-wide, so every test shares this one; tests
    use fresh provider and consumer uuids so they never see each other's data.
    """
    return EmbeddedPlacement(tmp_path_factory.mktemp("placement-embedded"))
