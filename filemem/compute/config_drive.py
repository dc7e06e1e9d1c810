"""The agent's side of the config drive: written from the desired instance before it boots."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from filemem.common.instance_metadata import InstanceFacts, config_drive_files, sanitize_hostname
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.exceptions import FilememError, GuestAlreadyExists, GuestNotFound
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

# nova's random_seed: 512 bytes from the host's entropy, new at every build.
RANDOM_SEED_BYTES = 512


def instance_facts(want: DesiredInstance) -> InstanceFacts:
    """The metadata's facts as the API sent them in the agent view."""
    return InstanceFacts(
        uuid=want.uuid,
        name=want.name,
        hostname=want.hostname or sanitize_hostname(want.name, f"Server-{want.uuid}"),
        project_id=want.project_id,
        availability_zone=want.availability_zone,
        launch_index=want.launch_index,
        key_name=want.key_name,
        public_keys=dict(want.public_keys),
        user_data=want.user_data,
        metadata=dict(want.metadata),
        nics=want.nics,
    )


def write_config_drive(driver: HypervisorDriver, want: DesiredInstance) -> None:
    """Before a spawn, a rebuild or an incoming live migration: the instance's config drive,
    made afresh from the facts (a rebuild's new image or metadata shows; a destination gets
    the same content the source had, but for the random seed). Nothing without config_drive."""
    if not want.config_drive:
        return
    files = config_drive_files(instance_facts(want), os.urandom(RANDOM_SEED_BYTES))
    path = driver.write_config_drive(want.uuid, files)
    LOG.info("config drive of %s written to %s (%d files)", want.uuid, path, len(files))


@contextmanager
def spawning(driver: HypervisorDriver, want: DesiredInstance) -> Iterator[None]:
    """The config drive written for a spawn, and taken away again with the instance directory
    it made when the spawn fails before the driver has a guest (a missing image, a refused
    flavor): a deleted instance that never had a guest gets no destroy step to remove it."""
    write_config_drive(driver, want)
    try:
        yield
    except GuestAlreadyExists:
        raise  # the directory is that guest's
    except FilememError:
        if want.config_drive:
            _remove_unless_defined(driver, want.uuid)
        raise


def _remove_unless_defined(driver: HypervisorDriver, uuid: str) -> None:
    try:
        driver.get_guest(uuid)
    except GuestNotFound:
        shutil.rmtree(driver.instance_dir(uuid), ignore_errors=True)
    except FilememError as exc:  # the hypervisor cannot say: leave the files
        LOG.warning("left the config drive of %s after its failed spawn: %s", uuid, exc)
