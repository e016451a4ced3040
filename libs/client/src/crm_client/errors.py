"""Errors of gateway calls, as one exception type: :class:`CrmError`.

The gateway answers a failed call with a gRPC status code and message, and with rich details
in the ``grpc-status-details-bin`` trailer (a serialised ``google.rpc.Status``):

* INVALID_ARGUMENT carries a ``google.rpc.BadRequest`` whose field violations name the request
  fields that are wrong (``contact.identities[0].value``);
* FAILED_PRECONDITION carries a ``google.rpc.PreconditionFailure`` (e.g. ``STALE_VERSION``);
* NOT_FOUND carries a ``google.rpc.ResourceInfo`` naming what is missing;
* RESOURCE_EXHAUSTED (the rate limit) carries a ``retry-after`` trailer (seconds to wait) and a
  ``google.rpc.RetryInfo``.

:meth:`CrmError.from_rpc_error` reads all of it; blocking calls made through
:class:`crm_client.CrmClient` and awaited unary calls of :class:`crm_client.AsyncCrmClient`
raise :class:`CrmError` directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer that carries the serialised ``google.rpc.Status`` of a failed call."""
RETRY_AFTER_KEY = "retry-after"
"""The trailer of a RESOURCE_EXHAUSTED answer: seconds to wait before trying again."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One wrong field of a request: its path (``contact.given_name``) and what is wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One failed precondition: its type (``STALE_VERSION``), subject and description."""

    type: str
    subject: str
    description: str

    def __str__(self) -> str:
        subject = f" ({self.subject})" if self.subject else ""
        return f"{self.type}{subject}: {self.description}"


@dataclass(slots=True)
class _Parsed:
    field_violations: list[FieldViolation] = field(default_factory=list)
    preconditions: list[PreconditionViolation] = field(default_factory=list)
    resource_type: str = ""
    resource_name: str = ""
    reason: str = ""
    error_metadata: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None


class CrmError(grpc.RpcError):
    """A gateway call that failed: status code, message and the details the gateway sent.

    It is a :class:`grpc.RpcError` with the same ``code()`` and ``details()`` methods as the
    errors gRPC raises, so code written for those keeps working.

    Attributes:
        message: the status message, in words (what ``details()`` returns).
        field_violations: the wrong request fields (INVALID_ARGUMENT), in the gateway's order.
        preconditions: the failed preconditions (FAILED_PRECONDITION), e.g. a stale version.
        retry_after: seconds to wait before retrying (RESOURCE_EXHAUSTED), if the gateway said.
        resource_type, resource_name: what was not found (NOT_FOUND), if the gateway said.
        reason: the ``google.rpc.ErrorInfo`` reason (``INVALID_ARGUMENT``, ``STALE_VERSION``...).
        error_metadata: the ``google.rpc.ErrorInfo`` metadata.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str = "",
        *,
        field_violations: Sequence[FieldViolation] = (),
        preconditions: Sequence[PreconditionViolation] = (),
        retry_after: float | None = None,
        resource_type: str = "",
        resource_name: str = "",
        reason: str = "",
        error_metadata: dict[str, str] | None = None,
    ) -> None:
        self._code = code
        self.message = message
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        self.preconditions: tuple[PreconditionViolation, ...] = tuple(preconditions)
        self.retry_after = retry_after
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.reason = reason
        self.error_metadata: dict[str, str] = dict(error_metadata or {})
        super().__init__(str(self))

    def code(self) -> grpc.StatusCode:
        """The gRPC status code (``grpc.StatusCode.INVALID_ARGUMENT``...)."""
        return self._code

    def details(self) -> str:
        """The status message (gRPC's name for it)."""
        return self.message

    @property
    def code_name(self) -> str:
        """The status code's name, e.g. ``"INVALID_ARGUMENT"``."""
        return str(self._code.name)

    def __str__(self) -> str:
        text = f"{self.code_name}: {self.message}" if self.message else self.code_name
        if self.field_violations:
            text += " [" + "; ".join(str(v) for v in self.field_violations) + "]"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        return text

    def __repr__(self) -> str:
        return f"CrmError({self.code_name}, {self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready dict (what ``crm --json`` prints on stderr)."""
        out: dict[str, Any] = {"code": self.code_name, "message": self.message}
        if self.field_violations:
            out["fieldViolations"] = [
                {"field": v.field, "description": v.description} for v in self.field_violations
            ]
        if self.preconditions:
            out["preconditionViolations"] = [
                {"type": v.type, "subject": v.subject, "description": v.description}
                for v in self.preconditions
            ]
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        if self.resource_type or self.resource_name:
            out["resource"] = {"type": self.resource_type, "name": self.resource_name}
        if self.reason:
            out["reason"] = self.reason
        if self.error_metadata:
            out["metadata"] = dict(self.error_metadata)
        return out

    @classmethod
    def from_status(
        cls,
        code: grpc.StatusCode,
        message: str,
        trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
    ) -> CrmError:
        """The error of a call that ended with ``code``/``message`` and these trailers."""
        parsed = _Parsed()
        retry_after: float | None = None
        for key, value in trailing_metadata or ():
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                parsed = _parse_status_details(value)
            elif key == RETRY_AFTER_KEY:
                retry_after = _parse_seconds(value)
        return cls(
            code,
            message,
            field_violations=parsed.field_violations,
            preconditions=parsed.preconditions,
            retry_after=retry_after if retry_after is not None else parsed.retry_delay,
            resource_type=parsed.resource_type,
            resource_name=parsed.resource_name,
            reason=parsed.reason,
            error_metadata=parsed.error_metadata,
        )

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> CrmError:
        """The :class:`CrmError` of a failed call's ``grpc.RpcError`` (sync or ``grpc.aio``).

        A ``CrmError`` is returned as it is. An error that is not a finished call (no status
        code) becomes UNKNOWN with the error's text.
        """
        if isinstance(error, CrmError):
            return error
        code_of = getattr(error, "code", None)
        code = code_of() if callable(code_of) else None
        if not isinstance(code, grpc.StatusCode):
            return cls(grpc.StatusCode.UNKNOWN, str(error))
        details_of = getattr(error, "details", None)
        message = details_of() if callable(details_of) else ""
        trailers_of = getattr(error, "trailing_metadata", None)
        trailers = trailers_of() if callable(trailers_of) else None
        return cls.from_status(code, str(message or ""), _pairs(trailers))


def _pairs(trailers: Any) -> list[tuple[str, str | bytes]]:
    """Trailing metadata as (key, value) pairs: sync calls give ``_Metadatum`` tuples,
    ``grpc.aio`` calls a ``Metadata`` object that iterates as pairs."""
    if trailers is None:
        return []
    pairs: list[tuple[str, str | bytes]] = []
    for item in trailers:
        key, value = item[0], item[1]
        pairs.append((str(key), value))
    return pairs


def _parse_seconds(value: str | bytes) -> float | None:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    try:
        seconds = float(text.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _parse_status_details(raw: bytes) -> _Parsed:
    """Read the ``google.rpc`` details of a serialised ``google.rpc.Status``."""
    parsed = _Parsed()
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError:
        return parsed
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            parsed.field_violations.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
            continue
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            parsed.preconditions.extend(
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            )
            continue
        resource = error_details_pb2.ResourceInfo()
        if detail.Unpack(resource):
            parsed.resource_type = resource.resource_type
            parsed.resource_name = resource.resource_name
            continue
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            parsed.reason = info.reason
            parsed.error_metadata.update(info.metadata)
            continue
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            delay = retry.retry_delay
            parsed.retry_delay = delay.seconds + delay.nanos / 1e9
    return parsed


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise any ``grpc.RpcError`` of the block as a :class:`CrmError`.

    For what does not raise ``CrmError`` by itself: futures, streaming calls, raw stubs::

        with translate_errors():
            for update in client.metrics.StreamKpis(request):
                ...
    """
    try:
        yield
    except CrmError:
        raise
    except grpc.RpcError as error:
        raise CrmError.from_rpc_error(error) from error
