"""`filemem host credential ...`: an admin issues, lists and revokes a compute host's credential."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from filemem.cmd.common import print_json, print_table
from filemem.cmd.server import add_api_args, api
from filemem.exceptions import InvalidInput

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def register(host_sub: Sub) -> None:
    credential = host_sub.add_parser(
        "credential",
        help="credentials of compute agents (admin)",
        description="A host credential lets filemem-compute on HOST act for HOST only: its "
        "service record and its instances. Give it to the agent with [DEFAULT] "
        "api_credential_file.",
    )
    csub = credential.add_subparsers(dest="credential_command", required=True)
    create = csub.add_parser("create", help="issue a credential (its secret is shown once)")
    create.add_argument("host")
    create.add_argument(
        "--output", type=Path, metavar="FILE", help="write the secret to FILE (mode 0600)"
    )
    create.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    create.set_defaults(func=cmd_create)
    lst = csub.add_parser("list", help="a host's credentials (no secrets)")
    lst.add_argument("host")
    lst.set_defaults(func=cmd_list)
    revoke = csub.add_parser("revoke", help="revoke a credential (effective within seconds)")
    revoke.add_argument("host")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_revoke)
    for parser in (create, lst, revoke):
        add_api_args(parser)


def _path(host: str, *rest: str) -> str:
    # quote(): a host name never changes the path it lands in.
    return "/".join(("/filemem/v1/hosts", quote(host, safe=""), "credentials", *rest))


def cmd_create(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    if output is not None and output.exists() and not args.force:
        raise InvalidInput(f"--output {output}: exists (pass --force to overwrite it)")
    client = api(args)
    created = client.call("POST", f"{client.endpoint}{_path(args.host)}")["credential"]
    secret = created.pop("secret")
    if output is not None:
        try:
            write_secret(output, secret, overwrite=args.force)
        except (OSError, InvalidInput) as exc:
            raise InvalidInput(
                f"{exc}; credential {created['id']} was issued without its secret saved: "
                f"revoke it (filemem host credential revoke {args.host} {created['id']})"
            ) from exc
        where = f"secret written to {output} (mode 0600)"
    else:
        print(secret)
        where = "the secret above is shown once: store it now (mode 0600)"
    if args.json:
        print_json(created)
    print(
        f"credential {created['id']} for host {created['host']}: {where}; set "
        "[DEFAULT] api_credential_file on that host to the file",
        file=sys.stderr,
    )
    return 0


def write_secret(path: Path, secret: str, overwrite: bool = False) -> None:
    """Atomically: a 0600 file (mkstemp's mode) in the same directory, renamed over `path`, or
    linked to it when `path` must not exist; the secret is never readable by others."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        if overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError as exc:
                raise InvalidInput(f"--output {path}: exists (pass --force to overwrite)") from exc
    finally:
        Path(temp).unlink(missing_ok=True)


def cmd_list(args: argparse.Namespace) -> int:
    client = api(args)
    found: list[dict[str, Any]] = client.call("GET", f"{client.endpoint}{_path(args.host)}")[
        "credentials"
    ]
    if args.json:
        print_json(found)
        return 0
    headers = ("ID", "Host", "Created", "Last used", "Revoked")
    keys = ("id", "host", "created_at", "last_used_at", "revoked_at")
    print_table(headers, [[c[k] or "" for k in keys] for c in found])
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    client = api(args)
    client.call("DELETE", f"{client.endpoint}{_path(args.host, str(args.id))}")
    print(f"credential {args.id} of host {args.host} revoked")
    return 0
