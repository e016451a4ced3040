"""Keyset pagination (AIP-158): page sizes and opaque page tokens.

A page token carries the sort-key values of the last item of the previous page (the query
continues *after* them, so pages stay stable while data changes) and a fingerprint of the
query's filters and order, so a token cannot be replayed against a different query. The token
is base64url of a small JSON document; it is opaque to clients but not secret or signed: a
forged token only moves the starting point inside the caller's own tenant-scoped query, so
callers must include the tenant in the fingerprint criteria and keep the query tenant-scoped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from crm_platform.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE_TOKEN_LENGTH = 1024  # the API's limit on page_token
_TOKEN_VERSION = 1
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

CursorValue = str | int | float | bool | datetime | None
"""A sort-key value a cursor can hold (datetimes keep their time zone, floats must be finite)."""


def resolve_page_size(requested: int, *, field: str = "page_size") -> int:
    """The page size to use: 0 (unset) means 50, more than 500 is capped at 500 (AIP-158).

    Raises ``InvalidArgument`` on ``field`` for a negative size.
    """
    if requested < 0:
        raise InvalidArgument.single(field, "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def filter_fingerprint(criteria: Mapping[str, object]) -> str:
    """A short stable digest of everything that defines a query except its page (size, token).

    ``criteria`` should hold the tenant, the filter and the order, e.g.
    ``{"tenant": "t1", "filter": "tier = GOLD", "order_by": "update_time desc"}``; values are
    rendered with ``str`` when JSON cannot hold them as they are.
    """
    canonical = json.dumps(criteria, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _encode_value(value: CursorValue) -> object:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def encode_page_token(after: Sequence[CursorValue], fingerprint: str) -> str:
    """The token for the page that starts after the item whose sort key is ``after``.

    Raises ``ValueError`` for values a token cannot carry (non-finite floats, other types,
    or sort keys so long that the token would exceed 1024 characters; about 700 bytes of
    UTF-8 fit): that is a bug in the caller's choice of sort key, not a bad request.
    """
    for value in after:
        if not isinstance(value, str | int | float | bool | datetime | None):
            raise ValueError(f"a page cursor cannot hold {type(value).__name__} values")
    payload = {"v": _TOKEN_VERSION, "k": [_encode_value(v) for v in after], "f": fingerprint}
    # ensure_ascii=False: raw UTF-8 is shorter than \uXXXX escapes for non-Latin names.
    document = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    token = base64.urlsafe_b64encode(document.encode("utf-8")).decode("ascii").rstrip("=")
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise ValueError(f"page token of {len(token)} characters; sort keys are too long")
    return token


class _BadTokenError(Exception):
    pass


def _decode_value(item: object) -> CursorValue:
    if isinstance(item, dict):
        if set(item) != {"t"} or not isinstance(item["t"], str):
            raise _BadTokenError
        try:
            return datetime.fromisoformat(item["t"])
        except ValueError:
            raise _BadTokenError from None
    if isinstance(item, float) and not math.isfinite(item):  # e.g. 1e999 in a hand-made token
        raise _BadTokenError
    if item is None or isinstance(item, str | int | float | bool):
        return item
    raise _BadTokenError


def _read(token: str) -> tuple[tuple[CursorValue, ...], str]:
    if len(token) > MAX_PAGE_TOKEN_LENGTH or not _BASE64URL.fullmatch(token):
        raise _BadTokenError
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (binascii.Error, ValueError):  # UnicodeDecodeError, JSONDecodeError are ValueErrors
        raise _BadTokenError from None
    if not isinstance(payload, dict) or set(payload) != {"v", "k", "f"}:
        raise _BadTokenError
    keys, fingerprint = payload["k"], payload["f"]
    if payload["v"] != _TOKEN_VERSION or not isinstance(keys, list):
        raise _BadTokenError
    if not isinstance(fingerprint, str):
        raise _BadTokenError
    return tuple(_decode_value(item) for item in keys), fingerprint


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed in a page token")


def decode_page_token(
    token: str, fingerprint: str, *, field: str = "page_token"
) -> tuple[CursorValue, ...] | None:
    """The sort-key values a page token continues after, or ``None`` for an empty token.

    Raises ``InvalidArgument`` on ``field`` when the token is malformed, or was issued for a
    query with a different fingerprint (other filters, order or tenant).
    """
    if not token:
        return None
    try:
        after, issued_for = _read(token)
    except _BadTokenError:
        raise InvalidArgument.single(field, "is not a valid page token") from None
    if issued_for != fingerprint:
        raise InvalidArgument.single(
            field,
            "was issued for a different filter or order; start again without a page token",
        )
    return after
