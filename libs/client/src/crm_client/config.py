"""Where the gateway is and how to authenticate: arguments first, then the environment.

* ``CRM_GATEWAY``: the gateway's gRPC target (default ``127.0.0.1:50050``);
* ``CRM_TOKEN``: a signed JWT, sent as ``authorization: Bearer <token>``;
* ``CRM_API_KEY``: an API key, sent as ``x-api-key: <key>``;
* ``CRM_TIMEOUT``: the default deadline of a call in seconds (default 10; 0 means none).

A credential given as an argument replaces both credentials of the environment, so
``--api-key`` works in a shell that exports ``CRM_TOKEN``. Two credentials given at the same
level (two arguments, or two variables) are refused: which one the gateway should believe
would be a guess.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TARGET = "127.0.0.1:50050"
"""The gateway of the local stack (``make run``)."""
DEFAULT_TIMEOUT = 10.0
"""Default deadline of a call, in seconds."""

ENV_GATEWAY = "CRM_GATEWAY"
ENV_TOKEN = "CRM_TOKEN"
ENV_API_KEY = "CRM_API_KEY"
ENV_TIMEOUT = "CRM_TIMEOUT"

AUTHORIZATION_HEADER = "authorization"
API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The settled configuration of a client.

    Attributes:
        target: the gateway's gRPC target (``host:port``, ``dns:///host:port``...).
        token: the JWT (without ``Bearer``), or ``None``.
        api_key: the API key, or ``None``.
        timeout: the default deadline of a call in seconds; ``None`` for no deadline.
    """

    target: str = DEFAULT_TARGET
    token: str | None = None
    api_key: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT

    @classmethod
    def resolve(
        cls,
        target: str | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """The configuration from the arguments, completed from ``env`` (default
        ``os.environ``; pass ``{}`` to ignore the environment).

        ``timeout``: ``None`` takes ``CRM_TIMEOUT`` or the default; ``0`` (or less, or
        infinity) means no deadline. Raises :class:`ValueError` for two credentials at the
        same level or a timeout that is not a number.
        """
        environ = os.environ if env is None else env
        token = _blank_to_none(token)
        api_key = _blank_to_none(api_key)
        if token is not None and api_key is not None:
            raise ValueError("give either a token or an API key, not both")
        if token is None and api_key is None:
            token = _blank_to_none(environ.get(ENV_TOKEN))
            api_key = _blank_to_none(environ.get(ENV_API_KEY))
            if token is not None and api_key is not None:
                raise ValueError(
                    f"both {ENV_TOKEN} and {ENV_API_KEY} are set: unset one, or pass "
                    "--token/--api-key to choose"
                )
        if token is not None and token[:7].lower() == "bearer ":
            token = token[7:].strip()
        resolved_target = (
            _blank_to_none(target) or _blank_to_none(environ.get(ENV_GATEWAY)) or DEFAULT_TARGET
        )
        if timeout is None:
            raw = _blank_to_none(environ.get(ENV_TIMEOUT))
            try:
                timeout = DEFAULT_TIMEOUT if raw is None else float(raw)
            except ValueError:
                raise ValueError(f"{ENV_TIMEOUT} is not a number of seconds: {raw!r}") from None
        if math.isnan(timeout):
            raise ValueError("the timeout is not a number")
        settled = None if timeout <= 0 or math.isinf(timeout) else float(timeout)
        return cls(target=resolved_target, token=token, api_key=api_key, timeout=settled)

    def credential_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries: the credential, if any."""
        if self.token is not None:
            return ((AUTHORIZATION_HEADER, f"Bearer {self.token}"),)
        if self.api_key is not None:
            return ((API_KEY_HEADER, self.api_key),)
        return ()

    @property
    def credential_kind(self) -> str | None:
        """``"jwt"``, ``"api_key"`` or ``None``."""
        if self.token is not None:
            return "jwt"
        return "api_key" if self.api_key is not None else None


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
