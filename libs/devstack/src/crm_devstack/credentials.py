"""The local stack's credentials: a signing key whose JWKS the gateway trusts, and tokens.

Made once per ``$CRM_HOME`` and kept (``$CRM_HOME/credentials``), so tokens printed by one
``make run`` keep working in the next until they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crm_platform.credentials import (
    SigningKey,
    load_signing_key,
    save_signing_key,
    write_jwks,
)

ISSUER = "crm-dev"
AUDIENCE = "crm-gateway"


@dataclass(frozen=True)
class DevCredentials:
    """Where the local gateway's keys live, and how to mint tokens it accepts."""

    folder: Path
    key: SigningKey

    @property
    def jwks_file(self) -> Path:
        return self.folder / "jwks.json"

    @property
    def api_keys_file(self) -> Path:
        return self.folder / "api-keys.json"

    @classmethod
    def ensure(cls, folder: Path) -> DevCredentials:
        """Load the folder's signing key, or make one (with its JWKS and an empty keys file)."""
        key_file = folder / "signing-key.json"
        if key_file.exists():
            key = load_signing_key(key_file)
        else:
            key = SigningKey.generate()
            save_signing_key(key_file, key)
        made = cls(folder, key)
        write_jwks(made.jwks_file, [key])
        if not made.api_keys_file.exists():
            made.api_keys_file.write_text('{"keys": []}')
        return made

    def token(self, tenant: str, role: str, subject: str, ttl_seconds: float = 8 * 3600) -> str:
        """A token the local gateway accepts: ``subject`` acting in ``tenant`` as ``role``."""
        return self.key.mint(
            issuer=ISSUER,
            audience=AUDIENCE,
            tenant=tenant,
            role=role,
            subject=subject,
            ttl_seconds=ttl_seconds,
        )
