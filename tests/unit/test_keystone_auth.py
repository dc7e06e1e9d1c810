"""auth_strategy = keystone without a Keystone: config refusals, the Caller from the identity
headers, the auth chain (401 challenge, 503) and keystonemiddleware facing no Keystone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from oslo_config import cfg

from filemem import conf as filemem_conf
from filemem.api.auth import TokenAuthMiddleware
from filemem.api.identity import Authenticator, Caller, IdentityUnavailable, get_caller
from filemem.api.keystone import KeystoneAuthenticator, caller_from_environ
from filemem.cmd.api import check_api_conf
from filemem.cmd.api import main as api_main
from filemem.cmd.keystone_client import KeystoneLoginError, keystone_api, wants_keystone
from filemem.exceptions import ConfigError

KEYSTONE = "http://127.0.0.1:5000/v3"
AUTHTOKEN = (
    f"[keystone_authtoken]\nwww_authenticate_uri = {KEYSTONE}\nauth_url = {KEYSTONE}\n"
    "auth_type = password\nusername = filemem\npassword = secret\nproject_name = service\n"
    "user_domain_name = Default\nproject_domain_name = Default\n"
)


def _load(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "filemem.conf"
    path.write_text(text)
    return filemem_conf.load(config_files=[str(path)])


@pytest.mark.parametrize(
    ("text", "option"),
    [
        (f"[api]\nauth_strategy = keystone\nadmin_token = t\n{AUTHTOKEN}", "[api] admin_token"),
        (
            "[api]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_type = password\n",
            "[keystone_authtoken] www_authenticate_uri",
        ),
        (
            f"[api]\nauth_strategy = keystone\n[keystone_authtoken]\n"
            f"www_authenticate_uri = {KEYSTONE}\n",
            "[keystone_authtoken] auth_type",
        ),
        ("[api]\nauth_strategy = token\n", "[api] admin_token"),
        # The metadata API trusts only requests its proxy signed.
        (
            "[api]\nadmin_token = t\n[metadata]\nenabled = true\n",
            "[neutron] metadata_proxy_shared_secret",
        ),
    ],
)
def test_ambiguous_or_incomplete_auth_config_is_refused(
    tmp_path: Path, text: str, option: str
) -> None:
    conf = _load(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        check_api_conf(conf)
    assert option in str(refused.value)


def test_filemem_api_refuses_to_start_with_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "filemem.conf"
    path.write_text(f"[api]\nauth_strategy = keystone\nadmin_token = t\n{AUTHTOKEN}")
    assert api_main(["--config-file", str(path)]) == 1
    assert "[api] admin_token: must be unset with [api] auth_strategy = keystone" in (
        capsys.readouterr().err
    )


def test_an_unknown_strategy_is_refused_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, "[api]\nauth_strategy = noauth2\n")
    assert "auth_strategy" in str(refused.value)


def test_a_complete_keystone_config_is_accepted(tmp_path: Path) -> None:
    conf = _load(tmp_path, f"[api]\nauth_strategy = keystone\n{AUTHTOKEN}")
    check_api_conf(conf)


def _identity(roles: str, project: str | None = "p1") -> dict[str, str]:
    environ = {"HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_USER_ID": "u1", "HTTP_X_ROLES": roles}
    if project is not None:
        environ["HTTP_X_PROJECT_ID"] = project
    return environ


def test_keystone_headers_become_a_caller() -> None:
    member = caller_from_environ(_identity("member,reader"))
    assert member == Caller("u1", "p1", frozenset({"member", "reader"}), False, None, "keystone")
    admin = caller_from_environ(_identity("Admin,member"))
    assert admin is not None and admin.is_admin and "admin" in admin.roles


def test_unconfirmed_or_unscoped_identities_prove_nothing() -> None:
    assert caller_from_environ({**_identity("member"), "HTTP_X_IDENTITY_STATUS": "Invalid"}) is None
    assert caller_from_environ(_identity("admin", project=None)) is None


def _app(*authenticators: Authenticator, keystone_uri: str = KEYSTONE) -> TestClient:
    app = FastAPI()

    @app.get("/who")
    def who(request: Request) -> dict[str, object]:
        caller = get_caller(request)
        return {"user": caller.user_id, "kind": caller.kind, "admin": caller.is_admin}

    app.add_middleware(
        TokenAuthMiddleware,
        token="",
        public_paths=frozenset(),
        authenticators=authenticators,
        www_authenticate=f'Keystone uri="{keystone_uri}"',
    )
    return TestClient(app)


def test_the_chain_proves_a_caller_or_challenges_with_keystone() -> None:
    known = Caller("u1", "p1", frozenset({"member"}), kind="keystone")

    def authenticator(token: str) -> Caller | None:
        return known if token == "good" else None

    client = _app(authenticator)
    ok = client.get("/who", headers={"X-Auth-Token": "good"})
    assert ok.json() == {"user": "u1", "kind": "keystone", "admin": False}
    # No static admin token: an empty one never matches.
    for headers in ({}, {"X-Auth-Token": "bad"}, {"X-Auth-Token": ""}):
        refused = client.get("/who", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == f'Keystone uri="{KEYSTONE}"'


def test_an_unreachable_identity_service_is_503() -> None:
    def authenticator(token: str) -> Caller | None:
        raise IdentityUnavailable("Keystone is down")

    refused = _app(authenticator).get("/who", headers={"X-Auth-Token": "any"})
    assert refused.status_code == 503
    assert refused.json()["serviceUnavailable"]["message"] == "Keystone is down"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_keystonemiddleware_facing_no_keystone_raises_unavailable(tmp_path: Path) -> None:
    """The real AuthProtocol, pointed at a loopback port nothing listens on."""
    nowhere = f"http://127.0.0.1:{_closed_port()}/v3"
    text = AUTHTOKEN.replace(KEYSTONE, nowhere)
    conf = _load(tmp_path, f"[api]\nauth_strategy = keystone\n{text}http_connect_timeout = 2\n")
    authenticator = KeystoneAuthenticator(conf)
    with pytest.raises(IdentityUnavailable):
        authenticator("gAAAAAB-some-token")


def test_the_cli_reads_filemem_ups_admin_token_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OS_CLOUD naming `filemem up`'s admin-token cloud: its endpoint overrides, its token."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  filemem:\n    auth_type: admin_token\n    auth:\n"
        "      endpoint: http://127.0.0.1:9/v2.1\n      token: tok\n"
        "    compute_endpoint_override: http://127.0.0.1:9/v2.1\n"
        "    image_endpoint_override: http://127.0.0.1:9/image\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("OS_CLOUD", "filemem")
    monkeypatch.delenv("FILEMEM_TOKEN", raising=False)
    assert wants_keystone(None)
    client = keystone_api(None)
    assert client.endpoint == "http://127.0.0.1:9/v2.1"
    assert client._image_url == "http://127.0.0.1:9/image"
    assert client._http.headers["X-Auth-Token"] == "tok"


def test_a_missing_cloud_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with pytest.raises(KeystoneLoginError) as failed:
        keystone_api("nosuch")
    assert "nosuch" in str(failed.value)
