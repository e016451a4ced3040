"""Keyset pagination: page sizes, opaque query-bound page tokens, and cutting a page."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import InvalidArgument
from crm_platform.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CursorValue,
    PageQuery,
    decode_page_token,
    encode_page_token,
    filter_fingerprint,
    resolve_page_size,
)

QUERY = filter_fingerprint({"tenant": "t1", "filter": "tier = GOLD", "order_by": "update_time"})


def test_unset_page_size_means_default() -> None:
    assert resolve_page_size(0) == DEFAULT_PAGE_SIZE == 50


def test_page_size_above_maximum_is_capped() -> None:
    assert resolve_page_size(10_000) == MAX_PAGE_SIZE == 500
    assert resolve_page_size(7) == 7


def test_negative_page_size_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve_page_size(-1)
    assert caught.value.violations[0].field == "page_size"


def test_empty_token_means_first_page() -> None:
    assert decode_page_token("", QUERY) is None


def test_token_round_trips_sort_key() -> None:
    after = (datetime(2025, 3, 1, 9, 0, tzinfo=UTC), "c42")
    token = encode_page_token(after, QUERY)
    assert token.isascii()
    assert "=" not in token
    assert decode_page_token(token, QUERY) == after


def test_token_cannot_be_reused_with_other_filters() -> None:
    token = encode_page_token(["c42"], QUERY)
    other = filter_fingerprint(
        {"tenant": "t1", "filter": "tier = SILVER", "order_by": "update_time"}
    )
    with pytest.raises(InvalidArgument, match="different filter") as caught:
        decode_page_token(token, other)
    assert caught.value.violations[0].field == "page_token"


def test_fingerprint_ignores_criteria_order() -> None:
    assert filter_fingerprint({"a": 1, "b": "x"}) == filter_fingerprint({"b": "x", "a": 1})
    assert filter_fingerprint({"a": 1}) != filter_fingerprint({"a": 2})


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        "AAAA",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'{"v":2,"k":[],"f":"x"}').decode(),
        base64.urlsafe_b64encode(b'{"v":1,"k":[{"t":"yesterday"}],"f":"x"}').decode(),
        base64.urlsafe_b64encode(b'{"v":1,"k":[1e999],"f":"x"}').decode(),
        base64.urlsafe_b64encode(b'{"v":1,"k":[NaN],"f":"x"}').decode(),
        "A" * 1025,
    ],
)
def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument, match="not a valid page token"):
        decode_page_token(token, "x")


def test_token_fits_the_api_limit_or_is_refused_at_encoding() -> None:
    long_name = "名" * 200  # a 200-character name in a non-Latin script still fits
    assert len(encode_page_token([long_name, "c" * 36], QUERY)) <= 1024
    with pytest.raises(ValueError, match="too long"):
        encode_page_token(["x" * 1000], QUERY)


def test_non_finite_sort_key_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        encode_page_token([float("inf")], QUERY)


_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])
_CURSOR_VALUES: st.SearchStrategy[CursorValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),  # real sort keys are ids and names, far below the token limit
    st.datetimes(timezones=st.none() | _ZONES),
)


@given(st.lists(_CURSOR_VALUES, max_size=4), st.text(max_size=40))
def test_cursor_round_trips(after: list[CursorValue], fingerprint: str) -> None:
    decoded = decode_page_token(encode_page_token(after, fingerprint), fingerprint) or ()
    assert list(decoded) == after
    assert [type(v) for v in decoded] == [type(v) for v in after]


@given(st.text(max_size=200))
def test_any_token_is_decoded_or_refused_as_invalid_argument(token: str) -> None:
    with contextlib.suppress(InvalidArgument):
        decode_page_token(token, QUERY)


@given(st.binary(max_size=200))
def test_any_payload_is_decoded_or_refused_as_invalid_argument(payload: bytes) -> None:
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with contextlib.suppress(InvalidArgument):
        decode_page_token(token, QUERY)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_any_json_payload_is_decoded_or_refused(payload: object) -> None:
    document = json.dumps({"v": 1, "k": payload, "f": QUERY})
    token = base64.urlsafe_b64encode(document.encode()).decode()
    with contextlib.suppress(InvalidArgument):
        decode_page_token(token, QUERY)


def test_a_page_query_without_token_starts_at_the_beginning() -> None:
    query = PageQuery.of({"tenant": "t1"}, 0, "")
    assert query.after is None
    assert query.size == DEFAULT_PAGE_SIZE
    assert query.limit == DEFAULT_PAGE_SIZE + 1


def test_the_last_page_has_no_next_token() -> None:
    query = PageQuery.of({"tenant": "t1"}, 3, "")
    assert query.page(["a", "b", "c"], lambda item: [item]) == (["a", "b", "c"], "")


def test_a_full_page_with_more_behind_continues_after_its_last_item() -> None:
    criteria = {"tenant": "t1", "tier": "GOLD"}
    query = PageQuery.of(criteria, 2, "")
    page, token = query.page(["a", "b", "c"], lambda item: [item])
    assert page == ["a", "b"]
    following = PageQuery.of(criteria, 2, token)
    assert following.after == ("b",)
    assert token == encode_page_token(["b"], filter_fingerprint(criteria))


def test_a_page_token_of_another_query_is_refused() -> None:
    _, token = PageQuery.of({"tenant": "t1"}, 1, "").page(["a", "b"], lambda item: [item])
    with pytest.raises(InvalidArgument) as caught:
        PageQuery.of({"tenant": "t2"}, 1, token)
    assert caught.value.violations[0].field == "page_token"


def test_a_page_query_refuses_a_negative_size() -> None:
    with pytest.raises(InvalidArgument):
        PageQuery.of({"tenant": "t1"}, -1, "")
