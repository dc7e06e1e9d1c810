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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`functional` means "needs libvirtd", test by test, wherever the test lives.

    A test that asks for the `libvirtd` fixture (tests/functional/conftest.py), directly or
    through another fixture, is marked here; a test that reaches a libvirtd another way (the
    multi-host tests' namespaced hosts) carries pytest.mark.functional itself. Everything else,
    real Placement, PostgreSQL and Keystone included, runs in `pytest -m "not functional"`.
    """
    for item in items:
        if "libvirtd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.functional)
