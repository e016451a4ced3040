"""Issuing credentials: signing keys with their JWKS, tokens, and hashed API keys.

In production an identity provider signs the tokens and the gateway only reads its JWKS; this
module is what the local stack (``crm_devstack``), the tests and operators (the gateway's
``credentials`` command) use to make keys, tokens and API keys, and what the gateway checks API
keys with (:func:`hash_secret`). It lives in the platform so that none of them depends on the
gateway service. API keys are shown once and stored only as SHA-256 hashes: a key is 256 random
bits, so a plain hash suffices (there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ALGORITHM = "ES256"
API_KEY_PREFIX = "crm"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key that signs tokens, with its key id."""

    kid: str
    private_pem: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid=uuid.uuid4().hex[:16], private_pem=pem)

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (what a JWKS file lists)."""
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def mint(
        self,
        *,
        issuer: str,
        audience: str,
        tenant: str,
        role: str,
        subject: str,
        ttl_seconds: float = 3600,
        now: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for ``subject`` (the actor) in ``tenant`` with ``role``."""
        issued = time.time() if now is None else now
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "tenant_id": tenant,
            "role": role,
            "iat": int(issued),
            "exp": int(issued + ttl_seconds),
            "jti": uuid.uuid4().hex,
            **(extra or {}),
        }
        return jwt.encode(claims, self.private_pem, algorithm=ALGORITHM, headers={"kid": self.kid})


def write_jwks(path: Path, keys: Sequence[SigningKey]) -> None:
    """Write the public keys of ``keys`` as a JWKS document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [key.public_jwk() for key in keys]}, indent=2))


def save_signing_key(path: Path, key: SigningKey) -> None:
    """Store a private key (mode 0600) with its key id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"kid": key.kid, "pem": key.private_pem.decode()}))
    path.chmod(0o600)


def load_signing_key(path: Path) -> SigningKey:
    """A key stored by :func:`save_signing_key`."""
    doc = json.loads(path.read_text())
    return SigningKey(kid=str(doc["kid"]), private_pem=str(doc["pem"]).encode())


def hash_secret(secret: str) -> str:
    """The stored form of an API key's secret."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly made API key: ``key`` is shown once; ``entry`` is what the gateway stores."""

    key: str
    entry: dict[str, Any]


def new_api_key(*, tenant: str, role: str, name: str, rate_limit: str | None = None) -> NewApiKey:
    """An API key ``crm_<id>_<secret>`` for the integration ``name`` in ``tenant``."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    entry: dict[str, Any] = {
        "id": key_id,
        "hash": hash_secret(secret),
        "tenant_id": tenant,
        "role": role,
        "name": name,
    }
    if rate_limit:
        entry["rate_limit"] = rate_limit
    return NewApiKey(key=f"{API_KEY_PREFIX}_{key_id}_{secret}", entry=entry)


def add_api_key(path: Path, entry: dict[str, Any]) -> None:
    """Append an entry to an API keys file (created if missing)."""
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"keys": []}
    doc["keys"].append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o600)
