"""filemem-api with [api] auth_strategy = keystone behind the real test Keystone, and clients."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.functional.api_fixtures import ApiEnv, ApiProcess, placement_client
from tests.functional.keystone_fixture import DOMAIN, SERVICE_PASSWORD, KeystoneServer
from tests.functional.placement_fixtures import StandalonePlacement

OPENSTACK = Path(sys.executable).parent / "openstack"
FILEMEM = Path(sys.executable).parent / "filemem"


def keystone_api_conf(state: Path, placement_url: str, keystone: KeystoneServer) -> str:
    """No admin token; keystonemiddleware with filemem's service user and no token cache, so a
    revoked token is refused at once."""
    return (
        f"[DEFAULT]\nstate_path = {state}\nhost = api-keystone\n"
        "[api]\nauth_strategy = keystone\nbind_host = 127.0.0.1\nbind_port = 0\n"
        # The host is registered once by the test acting as its agent, which sends no heartbeats.
        "service_down_time = 3600\n"
        f"image_dirs = {state.parent / 'files'}\n"
        f"[placement]\nendpoint = {placement_url}\ntoken = admin\n"
        "[keystone_authtoken]\n"
        f"www_authenticate_uri = {keystone.auth_url}\n"
        f"auth_url = {keystone.auth_url}\n"
        "auth_type = password\n"
        "username = filemem\n"
        f"password = {SERVICE_PASSWORD}\n"
        "project_name = service\n"
        f"user_domain_name = {DOMAIN}\nproject_domain_name = {DOMAIN}\n"
        "service_token_roles_required = true\n"
        "token_cache_time = -1\n"
    )


@dataclass
class KeystoneApiEnv:
    """The API behind Keystone: `admin` is an ApiEnv whose client carries a Keystone admin
    token (it acts as the operator and as the agents); clouds.yaml has a cloud per user."""

    keystone: KeystoneServer
    admin: ApiEnv
    clouds: Path

    @property
    def url(self) -> str:
        return self.admin.url

    def client(self, user: str) -> httpx.Client:
        token = self.keystone.token(user)
        return httpx.Client(base_url=self.url, timeout=60.0, headers={"X-Auth-Token": token})


@contextmanager
def keystone_api_env(state: Path, keystone: KeystoneServer) -> Iterator[KeystoneApiEnv]:
    """Standalone Placement + filemem-api (auth_strategy = keystone), registered in Keystone's
    catalog as compute and image; stopped at the end."""
    with StandalonePlacement(state / "placement") as placement_url:
        conf = keystone_api_conf(state / "api", placement_url, keystone)
        api = ApiProcess(state / "api", conf)
        api.start()
        try:
            keystone.register_filemem(api.url)
            clouds = keystone.clouds_yaml(
                state / "clouds.yaml", ["alpha-member", "beta-member", "alpha-admin", "admin"]
            )
            files = state / "files"
            files.mkdir(exist_ok=True)
            admin_token = keystone.token("admin")
            with httpx.Client(
                base_url=api.url, timeout=60.0, headers={"X-Auth-Token": admin_token}
            ) as http:
                env = ApiEnv(
                    api.url, placement_url, http, placement_client(placement_url), files, api
                )
                yield KeystoneApiEnv(keystone, env, clouds)
        finally:
            api.stop()


def client_environ(clouds: Path, cloud: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "FILEMEM_"))}
    environ.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD=cloud)
    return environ


def _run_openstack(
    env: KeystoneApiEnv, cloud: str, args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPENSTACK), *args],
        env=client_environ(env.clouds, cloud),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def openstack_cli(env: KeystoneApiEnv, cloud: str, *args: str) -> str:
    """The real `openstack` CLI with password auth as `cloud` (a user of clouds.yaml)."""
    result = _run_openstack(env, cloud, args)
    assert result.returncode == 0, (cloud, args, result.stdout, result.stderr)
    return result.stdout


def openstack_cli_refused(env: KeystoneApiEnv, cloud: str, *args: str) -> str:
    """The same, for a command that must fail: what the CLI printed on stderr."""
    result = _run_openstack(env, cloud, args)
    assert result.returncode != 0, (cloud, args, result.stdout)
    return result.stderr
