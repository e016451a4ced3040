"""``python -m crm_gateway credentials init|token|api-key``: make keys, tokens and API keys.

The making itself is :mod:`crm_platform.credentials` (the local stack and the tests use it too);
this is the operators' command line over it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from crm_platform.credentials import (
    SigningKey,
    add_api_key,
    load_signing_key,
    new_api_key,
    save_signing_key,
    write_jwks,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crm_gateway credentials init|token|api-key``."""
    parser = argparse.ArgumentParser(prog="crm_gateway credentials")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="make a signing key and its JWKS file")
    init.add_argument("--dir", type=Path, required=True)
    token = sub.add_parser("token", help="mint a token with a key made by init")
    token.add_argument("--dir", type=Path, required=True)
    api = sub.add_parser("api-key", help="make an API key and add its hash to a keys file")
    api.add_argument("--file", type=Path, required=True)
    for command in (token, api):
        command.add_argument("--tenant", required=True)
        command.add_argument("--role", required=True)
    token.add_argument("--subject", required=True)
    token.add_argument("--issuer", default="crm-dev")
    token.add_argument("--audience", default="crm-gateway")
    token.add_argument("--ttl", type=float, default=3600)
    api.add_argument("--name", required=True)
    api.add_argument("--rate-limit")
    args = parser.parse_args(argv)
    if args.command == "init":
        key = SigningKey.generate()
        save_signing_key(args.dir / "signing-key.json", key)
        write_jwks(args.dir / "jwks.json", [key])
        print(args.dir / "jwks.json")
    elif args.command == "token":
        key = load_signing_key(args.dir / "signing-key.json")
        print(
            key.mint(
                issuer=args.issuer,
                audience=args.audience,
                tenant=args.tenant,
                role=args.role,
                subject=args.subject,
                ttl_seconds=args.ttl,
            )
        )
    else:
        made = new_api_key(
            tenant=args.tenant, role=args.role, name=args.name, rate_limit=args.rate_limit
        )
        add_api_key(args.file, made.entry)
        print(made.key)
    return 0
