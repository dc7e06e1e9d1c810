"""Key material for os-keypairs: nova's fingerprints and generated key pairs (pure, no I/O)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib


class InvalidKey(ValueError):
    """The public key cannot be parsed; the message is nova's reason."""


class CannotGenerate(RuntimeError):
    """The `cryptography` package is missing, so no key pair can be generated here."""


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """md5 of the key blob in colon hex; the key must parse (with `cryptography` if present)."""
    try:
        try:
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            pass
        else:
            serialization.load_ssh_public_key(public_key.encode("utf-8"))
        blob = base64.b64decode(public_key.split(" ")[1], validate=True)
    except (ValueError, TypeError, IndexError, binascii.Error, UnicodeError) as exc:
        raise InvalidKey("failed to generate fingerprint") from exc
    if not blob:
        raise InvalidKey("failed to generate fingerprint")
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem: str) -> str:
    """sha1 of the certificate in colon hex, as nova computes it."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
    except ImportError as exc:
        raise InvalidKey("failed to generate X509 fingerprint: cryptography is missing") from exc
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidKey(f"failed to generate X509 fingerprint. Error message: {exc}") from exc
    return _colon_hex(cert.fingerprint(hashes.SHA1()).hex())  # noqa: S303 - nova's format


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)


def generate_ssh() -> tuple[str, str]:
    """(private key PEM, "ssh-rsa ... Generated-by-Nova"): a 2048-bit RSA key, as nova's."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as exc:
        raise CannotGenerate(str(exc)) from exc
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode('ascii')} Generated-by-Nova"


def generate_x509(user_id: str) -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM for CN=user_id, ten years)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError as exc:
        raise CannotGenerate(str(exc)) from exc
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    return private, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
