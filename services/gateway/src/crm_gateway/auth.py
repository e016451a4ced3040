"""Who is calling: signed JWTs and API keys, turned into a :class:`Principal`.

* A JWT must be signed by a key of the configured JWKS (asymmetric algorithms only, so a public
  key can never be used as an HMAC secret), and carry the configured issuer and audience, an
  expiry in the future, a subject (the actor), ``tenant_id`` and ``role``.
* An API key ``crm_<id>_<secret>`` is looked up by id and its secret compared, in constant time,
  with the stored SHA-256 hash. Keys name their tenant, role and integration.

The tenant always comes from the credential. Nothing in a request can change it.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from crm_gateway.domain.roles import Role
from crm_platform.context import Actor, ActorType
from crm_platform.credentials import API_KEY_PREFIX, hash_secret

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ACTOR = re.compile(r"^[\w.@:-]{1,128}$")
_ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]


class AuthenticationError(Exception):
    """The credential is missing, malformed, expired or not ours (→ UNAUTHENTICATED / 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    tenant_id: str
    actor: Actor
    role: Role
    credential: str  # "jwt" | "api_key"
    credential_id: str  # the key id, or the token's subject: what rate limits count
    rate_limit: str | None = None  # a per-credential override of the default limit


@dataclass(frozen=True, slots=True)
class _ApiKey:
    key_id: str
    digest: str
    tenant_id: str
    role: Role
    name: str
    rate_limit: str | None


def _checked(tenant: object, role: object, actor: object) -> tuple[str, Role, str]:
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise AuthenticationError("the credential names no valid tenant")
    try:
        parsed = Role(str(role))
    except ValueError:
        raise AuthenticationError(f"the credential's role {role!r} is unknown") from None
    if not isinstance(actor, str) or not _ACTOR.match(actor):
        raise AuthenticationError("the credential names no valid subject")
    return tenant, parsed, actor


class Authenticator:
    """Checks credentials against the configured keys (loaded once, at start-up)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: Mapping[str, Any] | None,
        api_keys: Mapping[str, Any] | None,
        leeway_seconds: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self._keys = jwt.PyJWKSet.from_dict(dict(jwks)) if jwks and jwks.get("keys") else None
        self._api_keys: dict[str, _ApiKey] = {}
        for entry in (api_keys or {}).get("keys", []):
            tenant, role, name = _checked(entry["tenant_id"], entry["role"], entry["name"])
            self._api_keys[str(entry["id"])] = _ApiKey(
                key_id=str(entry["id"]),
                digest=str(entry["hash"]),
                tenant_id=tenant,
                role=role,
                name=name,
                rate_limit=entry.get("rate_limit"),
            )

    @classmethod
    def from_files(
        cls,
        *,
        issuer: str,
        audience: str,
        jwks_file: Path | None,
        api_keys_file: Path | None,
        leeway_seconds: float = 30.0,
    ) -> Authenticator:
        """Load the JWKS and the API keys file (either may be absent)."""
        jwks = json.loads(jwks_file.read_text()) if jwks_file else None
        api_keys = json.loads(api_keys_file.read_text()) if api_keys_file else None
        return cls(
            issuer=issuer,
            audience=audience,
            jwks=jwks,
            api_keys=api_keys,
            leeway_seconds=leeway_seconds,
        )

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        """The principal of an ``Authorization`` header value or an API key."""
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("authorization must be 'Bearer <token>'")
            return self._token(token.strip())
        if api_key:
            return self._api_key(api_key.strip())
        raise AuthenticationError(
            "no credential: send 'authorization: Bearer <token>' or 'x-api-key: <key>'"
        )

    def _token(self, token: str) -> Principal:
        if self._keys is None:
            raise AuthenticationError("tokens are not accepted here (no signing keys configured)")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys[kid] if kid else next(iter(self._keys.keys))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except KeyError:
            raise AuthenticationError("the token is signed by an unknown key") from None
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from None
        tenant, role, subject = _checked(claims.get("tenant_id"), claims.get("role"), claims["sub"])
        kind = ActorType.INTEGRATION if role is Role.INTEGRATION else ActorType.AGENT
        return Principal(tenant, Actor(kind, subject), role, "jwt", f"jwt:{tenant}:{subject}")

    def _api_key(self, key: str) -> Principal:
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        stored = self._api_keys.get(key_id) if prefix == API_KEY_PREFIX else None
        # Hash even when the id is unknown, so timing does not tell which ids exist.
        digest = hash_secret(secret)
        if stored is None or not hmac.compare_digest(digest, stored.digest):
            raise AuthenticationError("unknown API key")
        return Principal(
            stored.tenant_id,
            Actor(ActorType.INTEGRATION, stored.name),
            stored.role,
            "api_key",
            f"key:{stored.key_id}",
            stored.rate_limit,
        )
