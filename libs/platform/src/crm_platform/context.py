"""Who is calling: the tenant and the actor of the current request or event.

The tenant and actor come from request metadata (``x-tenant-id``, ``x-actor-id``): the gateway
authenticates the caller and forwards both; a call lacking either is refused. Kept in a context
variable so that storage and events pick it up without every function passing it along.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from crm_platform.errors import InvalidArgument, Unauthenticated

TENANT_HEADER = "x-tenant-id"
ACTOR_ID_HEADER = "x-actor-id"
ACTOR_TYPE_HEADER = "x-actor-type"

_TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ACTOR_ID_PATTERN = re.compile(r"^[\w.@:-]{1,128}$")


class ActorType(StrEnum):
    """Who caused a change: recorded on every event."""

    AGENT = "agent"
    CUSTOMER = "customer"
    RULE = "rule"
    SYSTEM = "system"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Actor:
    """The actor of a change, e.g. ``agent:alice`` or ``system:relay``."""

    type: ActorType
    id: str

    def __str__(self) -> str:
        return f"{self.type.value}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Parse ``type:id`` (as carried in the CloudEvents ``actor`` attribute)."""
        kind, _, ident = text.partition(":")
        if not ident:
            raise ValueError(f"actor {text!r} has no id")
        return cls(ActorType(kind), ident)


SYSTEM_ACTOR = Actor(ActorType.SYSTEM, "system")


@dataclass(frozen=True, slots=True)
class CallContext:
    """The tenant and actor a request or event is processed for."""

    tenant_id: str
    actor: Actor


_current: ContextVar[CallContext | None] = ContextVar("crm_call_context", default=None)
# Monotonic-clock time by which the current gRPC call must be answered (None: no deadline).
_deadline: ContextVar[float | None] = ContextVar("crm_call_deadline", default=None)


def current_call() -> CallContext:
    """The context of the request being served; raises if there is none (a programming error)."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("no call context: current_call() outside a request or event")
    return ctx


def current_call_or_none() -> CallContext | None:
    """The context of the request or event being processed, or ``None`` outside of one."""
    return _current.get()


def set_call(ctx: CallContext | None) -> object:
    """Set the call context; returns a token for :func:`reset_call`."""
    return _current.set(ctx)


def reset_call(token: object) -> None:
    """Restore the call context that was current before :func:`set_call`."""
    _current.reset(token)  # type: ignore[arg-type]


def set_deadline(time_remaining: float | None) -> object:
    """Start the current call's deadline ``time_remaining`` seconds from now (``None``: none).

    Returns a token for :func:`reset_deadline`. The server interceptor sets it from the caller's
    gRPC deadline, so that calls to other services (``crm_platform.clients``) inherit it.
    """
    deadline = None if time_remaining is None else time.monotonic() + time_remaining
    return _deadline.set(deadline)


def reset_deadline(token: object) -> None:
    """Restore the deadline that was current before :func:`set_deadline`."""
    _deadline.reset(token)  # type: ignore[arg-type]


def deadline_remaining() -> float | None:
    """Seconds left until the current call's deadline (``<= 0`` once it passed); ``None`` when
    there is no deadline (no call, or a caller that set none)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def call_from_metadata(metadata: dict[str, str]) -> CallContext:
    """Build the call context from request metadata; missing tenant or actor → Unauthenticated."""
    tenant = metadata.get(TENANT_HEADER, "").strip()
    if not tenant:
        raise Unauthenticated(f"missing tenant: the call must carry the {TENANT_HEADER!r} metadata")
    if not _TENANT_PATTERN.match(tenant):
        raise InvalidArgument.single(
            TENANT_HEADER, "must be 1-63 characters of a-z, 0-9, '-' or '_', starting alphanumeric"
        )
    actor_id = metadata.get(ACTOR_ID_HEADER, "").strip()
    if not actor_id:
        # Every change is attributed: the gateway forwards the authenticated actor.
        raise Unauthenticated(
            f"missing actor: the call must carry the {ACTOR_ID_HEADER!r} metadata"
        )
    if not _ACTOR_ID_PATTERN.match(actor_id):
        raise InvalidArgument.single(ACTOR_ID_HEADER, "must be 1-128 word characters")
    try:
        actor_type = ActorType(metadata.get(ACTOR_TYPE_HEADER, "agent").strip() or "agent")
    except ValueError:
        raise InvalidArgument.single(
            ACTOR_TYPE_HEADER, f"must be one of {', '.join(t.value for t in ActorType)}"
        ) from None
    return CallContext(tenant_id=tenant, actor=Actor(actor_type, actor_id))
