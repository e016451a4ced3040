"""The consent domain: current state derived from an append-only history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_contacts.domain.consent import (
    ConsentChannel,
    ConsentEntry,
    ConsentPurpose,
    ConsentStatus,
    current_states,
    flag_change,
    new_entry,
)
from crm_contacts.domain.contact import ConsentInput
from crm_platform.errors import InvalidArgument

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MARKETING_EMAIL = (ConsentPurpose.MARKETING, ConsentChannel.EMAIL)


def _entry(n: int, status: ConsentStatus, minutes: int) -> ConsentEntry:
    return new_entry(
        id=f"e{n:03d}",
        tenant_id="t",
        contact_id="c",
        purpose=ConsentPurpose.MARKETING,
        channel=ConsentChannel.EMAIL,
        status=status,
        time=NOW - timedelta(minutes=minutes),
        source="web-form",
        now=NOW,
    )


def test_an_older_entry_recorded_later_does_not_override_the_newer_one() -> None:
    withdrawn = _entry(1, ConsentStatus.WITHDRAWN, minutes=1)
    late_grant = _entry(2, ConsentStatus.GRANTED, minutes=60)
    assert not late_grant.supersedes(withdrawn)
    assert current_states([withdrawn, late_grant])[MARKETING_EMAIL] == withdrawn


def test_bad_input_lists_every_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_entry(
            id="e",
            tenant_id="t",
            contact_id="c",
            purpose=None,
            channel=None,
            status=None,
            time=NOW + timedelta(seconds=1),
            source="Web Form",
            now=NOW,
        )
    fields = {v.field for v in raised.value.violations}
    expected = {"purpose", "channel", "status", "source", "time"}
    assert fields == {f"entry.{name}" for name in expected}


def test_the_flags_mirror_their_pairs_only() -> None:
    grant = _entry(1, ConsentStatus.GRANTED, minutes=0)
    assert flag_change(grant, ConsentInput()) == ("email_marketing", True)
    assert flag_change(grant, ConsentInput(email_marketing=True)) is None
    post = new_entry(
        id="p",
        tenant_id="t",
        contact_id="c",
        purpose=ConsentPurpose.MARKETING,
        channel=ConsentChannel.POST,
        status=ConsentStatus.GRANTED,
        time=None,
        source="api",
        now=NOW,
    )
    assert post.time == NOW
    assert flag_change(post, ConsentInput()) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(list(ConsentStatus)), st.integers(0, 5)), min_size=1, max_size=8
    ),
    st.randoms(),
)
def test_the_state_does_not_depend_on_the_order_entries_are_read(
    specs: list[tuple[ConsentStatus, int]], rnd: object
) -> None:
    entries = [_entry(n, status, minutes) for n, (status, minutes) in enumerate(specs)]
    shuffled = list(entries)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    latest = max(entries, key=ConsentEntry.order_key)
    assert current_states(shuffled)[MARKETING_EMAIL] == latest
