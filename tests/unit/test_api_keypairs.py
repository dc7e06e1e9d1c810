"""os-keypairs: import (nova's fingerprint), generate, list with 2.35 paging, show, delete,
and key_name on server create."""

from __future__ import annotations

import base64
import hashlib

import pytest

from filemem.common import keys
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app

# An ed25519 public key; its nova fingerprint is the md5 of the base64 blob, colon hex.
BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
PUBLIC_KEY = f"ssh-ed25519 {BLOB} someone@example"
FINGERPRINT = ":".join(
    hashlib.md5(base64.b64decode(BLOB), usedforsecurity=False).hexdigest()[i : i + 2]
    for i in range(0, 32, 2)
)


def test_import_show_list_delete_at_2_1(app: ServersApp) -> None:
    created = app.call(
        "POST", "/os-keypairs", json={"keypair": {"name": "mine", "public_key": PUBLIC_KEY}}
    )
    assert created.status_code == 200, created.text
    assert created.json()["keypair"] == {
        "name": "mine",
        "public_key": PUBLIC_KEY,
        "fingerprint": FINGERPRINT,
        "user_id": app.ctx.user_id,
    }
    shown = app.call("GET", "/os-keypairs/mine").json()["keypair"]
    assert set(shown) == {
        "name", "public_key", "fingerprint", "user_id", "created_at", "deleted",
        "deleted_at", "id", "updated_at",
    }  # fmt: skip
    listed = app.call("GET", "/os-keypairs").json()
    assert listed == {
        "keypairs": [
            {"keypair": {"name": "mine", "public_key": PUBLIC_KEY, "fingerprint": FINGERPRINT}}
        ]
    }
    assert app.call("DELETE", "/os-keypairs/mine").status_code == 202
    missing = app.call("GET", "/os-keypairs/mine")
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == (
        f"Keypair mine not found for user {app.ctx.user_id}"
    )


def test_type_and_codes_from_2_2(app: ServersApp) -> None:
    body = {"keypair": {"name": "typed", "public_key": PUBLIC_KEY, "type": "ssh"}}
    assert app.call("POST", "/os-keypairs", "2.1", json=body).status_code == 400
    created = app.call("POST", "/os-keypairs", "2.2", json=body)
    assert created.status_code == 201 and created.json()["keypair"]["type"] == "ssh"
    assert app.call("GET", "/os-keypairs", "2.2").json()["keypairs"][0]["keypair"]["type"] == "ssh"
    assert "type" not in app.call("GET", "/os-keypairs/typed", "2.1").json()["keypair"]
    assert app.call("DELETE", "/os-keypairs/typed", "2.2").status_code == 204


def test_generated_key_pair_returns_its_private_key(app: ServersApp) -> None:
    created = app.call("POST", "/os-keypairs", "2.2", json={"keypair": {"name": "gen"}})
    assert created.status_code == 201, created.text
    keypair = created.json()["keypair"]
    assert keypair["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert keypair["public_key"].startswith("ssh-rsa ")
    assert keypair["fingerprint"] == keys.ssh_fingerprint(keypair["public_key"])
    assert "private_key" not in app.call("GET", "/os-keypairs/gen").json()["keypair"]
    x509 = app.call("POST", "/os-keypairs", "2.2", json={"keypair": {"name": "w", "type": "x509"}})
    assert x509.status_code == 201, x509.text
    assert x509.json()["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(x509.json()["keypair"]["fingerprint"].split(":")) == 20


@pytest.mark.parametrize(
    ("keypair", "status", "message"),
    [
        ({"name": "bad", "public_key": "ssh-rsa not-base64"}, 400, "Keypair data is invalid"),
        ({"name": "bad", "public_key": ""}, 400, "failed to generate fingerprint"),
        ({"name": "bad/name", "public_key": PUBLIC_KEY}, 400, "keypair.name"),
        ({"name": "", "public_key": PUBLIC_KEY}, 400, "keypair.name"),
        ({"name": "x", "public_key": PUBLIC_KEY, "user_id": "u"}, 400, "keypair.user_id"),
        ({"name": "x", "public_key": PUBLIC_KEY, "type": "rsa"}, 400, "keypair.type"),
    ],
)
def test_bad_key_pairs_name_the_field(
    app: ServersApp, keypair: dict[str, str], status: int, message: str
) -> None:
    response = app.call("POST", "/os-keypairs", "2.2", json={"keypair": keypair})
    assert response.status_code == status, response.text
    assert message in response.json()["badRequest"]["message"]


def test_duplicate_name_is_409(app: ServersApp) -> None:
    body = {"keypair": {"name": "dup", "public_key": PUBLIC_KEY}}
    assert app.call("POST", "/os-keypairs", json=body).status_code == 200
    again = app.call("POST", "/os-keypairs", json=body)
    assert again.status_code == 409
    assert again.json()["conflictingRequest"]["message"] == "Key pair 'dup' already exists."


def test_user_id_from_2_10(app: ServersApp) -> None:
    body = {"keypair": {"name": "theirs", "public_key": PUBLIC_KEY, "user_id": "alice"}}
    created = app.call("POST", "/os-keypairs", "2.10", json=body)
    assert created.status_code == 201 and created.json()["keypair"]["user_id"] == "alice"
    assert app.call("GET", "/os-keypairs", "2.10").json()["keypairs"] == []
    mine = app.call("GET", "/os-keypairs", "2.10", params={"user_id": "alice"}).json()
    assert [k["keypair"]["name"] for k in mine["keypairs"]] == ["theirs"]
    # below 2.10 the parameter is ignored: the caller's own key pairs
    assert app.call("GET", "/os-keypairs", "2.9", params={"user_id": "alice"}).json() == {
        "keypairs": []
    }
    shown = app.call("GET", "/os-keypairs/theirs", "2.10", params={"user_id": "alice"})
    assert shown.status_code == 200
    deleted = app.call("DELETE", "/os-keypairs/theirs", "2.10", params={"user_id": "alice"})
    assert deleted.status_code == 204


def test_paging_from_2_35(app: ServersApp) -> None:
    for name in ("k3", "k1", "k2"):
        body = {"keypair": {"name": name, "public_key": PUBLIC_KEY}}
        assert app.call("POST", "/os-keypairs", json=body).is_success

    def names(version: str, **params: str) -> tuple[list[str], dict[str, object]]:
        body = app.call("GET", "/os-keypairs", version, params=params).json()
        return [k["keypair"]["name"] for k in body["keypairs"]], body

    first, page = names("2.35", limit="2")
    assert first == ["k1", "k2"]
    links = page["keypairs_links"]
    assert isinstance(links, list) and "marker=k2" in links[0]["href"]
    assert names("2.35", limit="2", marker="k2")[0] == ["k3"]
    assert names("2.34", limit="1")[0] == ["k1", "k2", "k3"]
    bad = app.call("GET", "/os-keypairs", "2.35", params={"marker": "nope"})
    assert bad.status_code == 400 and "Marker nope could not be found." in bad.text


def test_key_name_on_server_create(app: ServersApp) -> None:
    body = {"keypair": {"name": "boot-key", "public_key": PUBLIC_KEY}}
    assert app.call("POST", "/os-keypairs", json=body).is_success
    server_id = app.boot("keyed", key_name="boot-key")
    assert app.show(server_id)["key_name"] == "boot-key"
    server = {"name": "x", "flavorRef": app.flavor, "imageRef": app.image, "key_name": "nope"}
    refused = app.call("POST", "/servers", json={"server": server})
    assert refused.status_code == 400
    assert refused.json()["badRequest"]["message"] == "Invalid key_name provided."


def test_generation_without_cryptography_says_to_pass_a_public_key(
    app: ServersApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> tuple[str, str]:
        raise keys.CannotGenerate("No module named 'cryptography'")

    monkeypatch.setattr(keys, "generate_ssh", missing)
    response = app.call("POST", "/os-keypairs", json={"keypair": {"name": "gen"}})
    assert response.status_code == 400
    assert "pass public_key" in response.json()["badRequest"]["message"]
