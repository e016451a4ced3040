"""Credentials: what the gateway accepts and what it refuses."""

from __future__ import annotations

import time

import pytest

from crm_gateway.auth import AuthenticationError, Authenticator
from crm_gateway.domain.roles import Role
from crm_platform.context import ActorType
from crm_platform.credentials import SigningKey, new_api_key

KEY = SigningKey.generate()


def authenticator(**api_key_entries: dict[str, str]) -> Authenticator:
    return Authenticator(
        issuer="crm-dev",
        audience="crm-gateway",
        jwks={"keys": [KEY.public_jwk()]},
        api_keys={"keys": list(api_key_entries.values())},
        leeway_seconds=0,
    )


def token(**overrides: object) -> str:
    options: dict[str, object] = {
        "issuer": "crm-dev",
        "audience": "crm-gateway",
        "tenant": "acme",
        "role": "agent",
        "subject": "alice",
    }
    options.update(overrides)
    return KEY.mint(**options)  # type: ignore[arg-type]


def test_a_valid_token_gives_tenant_actor_and_role() -> None:
    principal = authenticator().authenticate(f"Bearer {token()}", None)
    assert (principal.tenant_id, str(principal.actor), principal.role) == (
        "acme",
        "agent:alice",
        Role.AGENT,
    )
    assert principal.credential == "jwt"


@pytest.mark.parametrize(
    "overrides",
    [
        {"ttl_seconds": -1},
        {"issuer": "evil"},
        {"audience": "other"},
        {"tenant": "Not A Tenant"},
        {"role": "superuser"},
        {"subject": "has spaces"},
        {"now": time.time() - 7200},
    ],
)
def test_tokens_with_bad_claims_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(AuthenticationError):
        authenticator().authenticate(f"Bearer {token(**overrides)}", None)


def test_a_token_signed_by_another_key_is_refused_even_with_our_key_id() -> None:
    stranger = SigningKey(KEY.kid, SigningKey.generate().private_pem)
    forged = stranger.mint(
        issuer="crm-dev", audience="crm-gateway", tenant="acme", role="admin", subject="eve"
    )
    with pytest.raises(AuthenticationError):
        authenticator().authenticate(f"Bearer {forged}", None)


def test_an_unsigned_token_is_refused() -> None:
    import jwt

    unsigned = jwt.encode(
        {
            "iss": "crm-dev",
            "aud": "crm-gateway",
            "sub": "eve",
            "tenant_id": "acme",
            "role": "admin",
            "exp": int(time.time()) + 60,
        },
        None,  # type: ignore[arg-type]
        algorithm="none",
    )
    with pytest.raises(AuthenticationError):
        authenticator().authenticate(f"Bearer {unsigned}", None)


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", "token"])
def test_malformed_authorization_headers_are_refused(header: str) -> None:
    with pytest.raises(AuthenticationError):
        authenticator().authenticate(header, None)


def test_no_credential_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="no credential"):
        authenticator().authenticate(None, None)


def test_api_keys_match_by_hash_only() -> None:
    made = new_api_key(tenant="acme", role="integration", name="zapier", rate_limit="5/minute")
    assert made.key.split("_", 2)[2] not in str(made.entry)  # the secret is not stored
    auth = authenticator(zapier=made.entry)
    principal = auth.authenticate(None, made.key)
    assert principal.tenant_id == "acme"
    assert principal.actor.type is ActorType.INTEGRATION
    assert principal.rate_limit == "5/minute"
    for wrong in (made.key[:-1] + ("x" if made.key[-1] != "x" else "y"), "crm_nope_nope", "x"):
        with pytest.raises(AuthenticationError):
            auth.authenticate(None, wrong)
