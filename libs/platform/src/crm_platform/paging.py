"""Keyset pagination (AIP-158): page sizes and opaque page tokens.

A page token carries the sort-key values of the last item of the previous page (the query
continues *after* them, so pages stay stable while data changes) and a fingerprint of the
query's filters and order, so a token cannot be replayed against a different query. The token
is base64url of a small JSON document; it is opaque to clients but not secret or signed: a
forged token only moves the starting point inside the caller's own tenant-scoped query, so
callers must include the tenant in the fingerprint criteria and keep the query tenant-scoped.

A handler pages a keyset query (here in id order) with :class:`PageQuery`::

    query = PageQuery.of({"op": "ListContacts", "tenant": tenant, **filters},
                         request.page_size, request.page_token)
    after = str(query.after[0]) if query.after else None
    contacts = await repository.list(tenant, filters, after, query.limit)
    page, next_token = query.page(contacts, lambda contact: [contact.id])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from crm_platform.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE_TOKEN_LENGTH = 1024  # the API's limit on page_token
_TOKEN_VERSION = 1
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

CursorValue = str | int | float | bool | datetime | None
"""A sort-key value a cursor can hold (datetimes keep their time zone, floats must be finite)."""

T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a keyset query: where it starts, how many items it holds, and its query's
    fingerprint (to issue the next page's token).

    Fetch :attr:`limit` items (one more than the page) after :attr:`after`; :meth:`page` cuts
    them to the page and says whether another follows.
    """

    after: tuple[CursorValue, ...] | None
    size: int
    fingerprint: str

    @classmethod
    def of(cls, criteria: Mapping[str, object], page_size: int, page_token: str) -> PageQuery:
        """The page a request asks for; ``InvalidArgument`` for a negative size or a token
        that is malformed or was issued for other ``criteria`` (see :func:`filter_fingerprint`).
        """
        fingerprint = filter_fingerprint(criteria)
        after = decode_page_token(page_token, fingerprint)
        return cls(after, resolve_page_size(page_size), fingerprint)

    @property
    def limit(self) -> int:
        """How many items to fetch: one more than the page, to know whether more follow."""
        return self.size + 1

    def page(
        self, items: Sequence[T], sort_key: Callable[[T], Sequence[CursorValue]]
    ) -> tuple[list[T], str]:
        """The page's items and the next page's token (``""`` when this is the last page);
        ``sort_key`` gives an item's sort-key values, in the query's order."""
        if len(items) <= self.size:
            return list(items), ""
        page = list(items[: self.size])
        return page, encode_page_token(sort_key(page[-1]), self.fingerprint)
