"""A real Keystone (the keystone package, fernet tokens, SQLite) under gunicorn on loopback."""

from __future__ import annotations

import getpass
import grp
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openstack
from openstack.connection import Connection

from devtools.services import ReadyLog, ServiceProcess, python_module
from tests.functional.placement_fixtures import REPO, free_port

BIN = Path(sys.executable).parent
DOMAIN = "Default"
REGION = "RegionOne"
ADMIN_PASSWORD = "keystone-admin-secret"  # a throwaway Keystone on loopback
SERVICE_PASSWORD = "filemem-service-secret"
USER_PASSWORD = "member-secret"
# gunicorn loading keystone's flask app: seconds, more on a busy 2-core machine.
READY_TIMEOUT_S = 120.0


def keystone_conf(state: Path, *, expiration: int = 3600) -> str:
    return (
        f"[database]\nconnection = sqlite:///{state / 'keystone.db'}\n"
        f"[token]\nprovider = fernet\nexpiration = {expiration}\n"
        f"[fernet_tokens]\nkey_repository = {state / 'fernet-keys'}\n"
        f"[fernet_receipts]\nkey_repository = {state / 'fernet-keys'}\n"
        f"[credential]\nkey_repository = {state / 'credential-keys'}\n"
        # bcrypt's fewest rounds: test passwords, and each login is then milliseconds.
        "[identity]\npassword_hash_rounds = 4\n"
    )


def gunicorn_conf(port: int, threads: int = 8) -> str:
    """gthread workers: keystonemiddleware validates tokens concurrently. threads = 0: one
    synchronous worker, for clients that write much (Tempest creating users), which SQLite
    otherwise answers with "database is locked"."""
    workers = f"worker_class = 'gthread'\nthreads = {threads}\n" if threads else ""
    return (
        f"bind = ['127.0.0.1:{port}']\n"
        f"workers = 1\n{workers}timeout = 120\n"
        "wsgi_app = 'keystone.wsgi.api:application'\n"
        # The control socket would live in $HOME, shared by every gunicorn of this user.
        "control_socket_disable = True\n"
    )


@dataclass
class User:
    """A Keystone user, its project and how a client logs in as it."""

    name: str
    project: str
    password: str
    user_id: str = ""
    project_id: str = ""

    def auth(self, auth_url: str) -> dict[str, str]:
        return {
            "auth_url": auth_url,
            "username": self.name,
            "password": self.password,
            "project_name": self.project,
            "user_domain_name": DOMAIN,
            "project_domain_name": DOMAIN,
        }


@dataclass
class KeystoneServer:
    """`keystone-manage` set-up of a state dir, then keystone's WSGI app under gunicorn."""

    state: Path
    port: int = 0
    expiration: int = 3600
    threads: int = 8  # of gunicorn's one worker; 0: a synchronous worker (gunicorn_conf)
    process: ServiceProcess | None = None
    users: dict[str, User] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per set-up step

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    def _env(self, conf_dir: Path) -> dict[str, str]:
        return {"OS_KEYSTONE_CONFIG_DIR": str(conf_dir)}

    def _manage(self, *steps: list[str]) -> None:
        """keystone-manage STEP... (one process for all: keystone's import is the slow part)."""
        argv = python_module("tests.functional.keystone_manage", str(self.state / "keystone.conf"))
        for step in steps:
            argv += [*step, "--"]
        began = time.monotonic()
        done = subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"keystone-manage {steps} failed:\n{done.stderr[-3000:]}"
        self.timings["keystone-manage"] = time.monotonic() - began

    def setup(self) -> None:
        """Database, fernet and credential keys, and the bootstrap admin with the identity
        endpoints, all under self.state."""
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "keystone.conf").write_text(keystone_conf(self.state))
        self.port = self.port or free_port()
        me = [
            "--keystone-user",
            getpass.getuser(),
            "--keystone-group",
            grp.getgrgid(os.getgid())[0],
        ]
        self._manage(
            ["db_sync"],
            ["fernet_setup", *me],
            ["credential_setup", *me],
            [
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-region-id",
                REGION,
                "--bootstrap-public-url",
                self.auth_url,
                "--bootstrap-internal-url",
                self.auth_url,
                "--bootstrap-admin-url",
                self.auth_url,
            ],
        )

    def serve(self, conf_dir: Path | None = None, port: int | None = None) -> ServiceProcess:
        """gunicorn on loopback serving keystone.wsgi.api; conf_dir holds the keystone.conf
        it reads."""
        port = self.port if port is None else port
        conf_dir = conf_dir or self.state
        # keystone's oslo.config parses sys.argv: gunicorn gets no arguments and reads
        # ./gunicorn.conf.py instead.
        (conf_dir / "gunicorn.conf.py").write_text(gunicorn_conf(port, self.threads))
        process = ServiceProcess(
            [str(BIN / "gunicorn")],
            cwd=conf_dir,
            log_path=conf_dir / "gunicorn.log",
            env=self._env(conf_dir),
            ready=ReadyLog(r"Booting worker"),
            name=f"keystone:{port}",
        )
        process.start(READY_TIMEOUT_S)
        _wait_http(f"http://127.0.0.1:{port}/v3", READY_TIMEOUT_S, process)
        return process

    def start(self) -> float:
        """Set up and serve; returns the seconds it took."""
        began = time.monotonic()
        self.setup()
        served = time.monotonic()
        self.process = self.serve()
        self.timings["serve"] = time.monotonic() - served
        return time.monotonic() - began

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    # -- the Keystone API as its admin ------------------------------------------------------

    def admin(self) -> Connection:
        auth = User("admin", "admin", ADMIN_PASSWORD).auth(self.auth_url)
        return openstack.connect(auth=auth, region_name=REGION, identity_interface="public")

    def populate(self) -> None:
        """Projects alpha and beta with a member each, an admin of alpha, and filemem's
        service user (role service in project service) for keystonemiddleware."""
        conn = self.admin()
        identity: Any = conn.identity
        domain = identity.find_domain("default")
        roles = {role.name: role for role in identity.roles()}
        for name in ("service",):
            if name not in roles:
                roles[name] = identity.create_role(name=name)
        wanted = {
            "alpha-member": ("alpha", "member", USER_PASSWORD),
            "beta-member": ("beta", "member", USER_PASSWORD),
            "alpha-admin": ("alpha", "admin", USER_PASSWORD),
            "filemem": ("service", "service", SERVICE_PASSWORD),
        }
        projects: dict[str, Any] = {}
        for user_name, (project_name, role, password) in wanted.items():
            if project_name not in projects:
                projects[project_name] = identity.create_project(
                    name=project_name, domain_id=domain.id
                )
            project = projects[project_name]
            user = identity.create_user(name=user_name, password=password, domain_id=domain.id)
            identity.assign_project_role_to_user(project, user, roles[role])
            self.users[user_name] = User(user_name, project_name, password, user.id, project.id)
        admin = identity.find_user("admin")
        admin_project = identity.find_project("admin")
        self.users["admin"] = User("admin", "admin", ADMIN_PASSWORD, admin.id, admin_project.id)
        conn.close()

    def register_filemem(self, api_url: str) -> None:
        """The compute service at filemem's /v2.1, the image service at its /image and the
        network service at its /network, so clients find filemem in the real catalog."""
        conn = self.admin()
        identity: Any = conn.identity
        services = (
            ("compute", "nova", "/v2.1"),
            ("image", "glance", "/image"),
            ("network", "neutron", "/network"),
        )
        for kind, name, path in services:
            service = identity.create_service(name=name, type=kind)
            for interface in ("public", "internal"):
                identity.create_endpoint(
                    service_id=service.id,
                    interface=interface,
                    url=f"{api_url}{path}",
                    region_id=REGION,
                )
        conn.close()

    def token(self, user: str, auth_url: str | None = None) -> str:
        """A project-scoped token of `user` (POST /v3/auth/tokens)."""
        who = self.users[user]
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": who.name,
                            "domain": {"name": DOMAIN},
                            "password": who.password,
                        }
                    },
                },
                "scope": {"project": {"name": who.project, "domain": {"name": DOMAIN}}},
            }
        }
        response = httpx.post(f"{auth_url or self.auth_url}/auth/tokens", json=body, timeout=60)
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"]

    def revoke(self, token: str) -> None:
        """DELETE /v3/auth/tokens: the token is revoked (its owner may revoke it)."""
        response = httpx.request(
            "DELETE",
            f"{self.auth_url}/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
            timeout=60,
        )
        assert response.status_code == 204, response.text

    def short_lived(self, expiration: int) -> ShortLivedIssuer:
        """A second keystone on the same database and keys whose tokens last `expiration` s."""
        return ShortLivedIssuer(self, expiration)

    def clouds_yaml(self, path: Path, users: list[str]) -> Path:
        """A clouds.yaml with a password-auth cloud per user (cloud name = user name)."""
        lines = ["clouds:"]
        for name in users:
            lines.append(f"  {name}:")
            lines.append("    auth:")
            lines += [
                f"      {key}: {value}"
                for key, value in self.users[name].auth(self.auth_url).items()
            ]
            lines += [
                f"    region_name: {REGION}",
                "    interface: public",
                "    identity_api_version: 3",
            ]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path


class ShortLivedIssuer:
    """keystone with [token] expiration = N on the main one's database and fernet keys: the
    main keystone validates its tokens, and finds them expired N s after issue."""

    def __init__(self, main: KeystoneServer, expiration: int) -> None:
        self.main = main
        self.dir = main.state / f"short-{expiration}"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "keystone.conf").write_text(keystone_conf(main.state, expiration=expiration))
        self.port = free_port()
        self.process: ServiceProcess | None = None

    def __enter__(self) -> ShortLivedIssuer:
        self.process = self.main.serve(self.dir, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.stop()

    def token(self, user: str) -> str:
        return self.main.token(user, f"http://127.0.0.1:{self.port}/v3")


def _wait_http(url: str, timeout: float, process: ServiceProcess) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=10)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    tail = process.log_path.read_text()[-3000:] if process.log_path.exists() else ""
    raise AssertionError(f"keystone at {url} not ready in {timeout} s ({last}):\n{tail}")
