"""Properties of the contact aggregate over random input: valid or InvalidArgument, nothing else."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crm_contacts.domain import (
    CONTACT_MASK,
    ConsentInput,
    Contact,
    ContactInput,
    IdentityInput,
    IdentityKind,
    LifecycleStage,
    SocialNetwork,
    Tier,
)
from crm_platform.errors import DomainError, FailedPrecondition, InvalidArgument

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")

_short_text = st.text(max_size=12)
_long_or_short = st.one_of(_short_text, st.text(min_size=195, max_size=210))
_identity_values = st.one_of(
    st.emails(),
    st.from_regex(r"\+?[0-9 ()\-]{3,18}", fullmatch=True),
    st.from_regex(r"@?[A-Za-z0-9_.]{1,18}(@[a-z]{1,8}\.[a-z]{2,4})?", fullmatch=True),
    st.sampled_from(["+14155552671", "(415) 555-2671", "ada@example.com", "@jack"]),
    st.text(max_size=30),
)
_identities = st.builds(
    IdentityInput,
    kind=st.none() | st.sampled_from(list(IdentityKind)),
    value=_identity_values,
    network=st.none() | st.sampled_from(list(SocialNetwork)),
    primary=st.booleans(),
    verified=st.booleans(),
)
_attribute_keys = st.one_of(st.from_regex(KEY, fullmatch=True), st.text(max_size=10))
_attribute_values = st.one_of(_short_text, st.just("v" * 1025))
_contact_inputs = st.builds(
    ContactInput,
    given_name=_long_or_short,
    family_name=_long_or_short,
    display_name=_short_text,
    organization_id=st.one_of(_short_text, st.just("o" * 65)),
    job_title=_long_or_short,
    lifecycle_stage=st.none() | st.sampled_from(list(LifecycleStage)),
    tier=st.none() | st.sampled_from(list(Tier)),
    segments=st.lists(st.one_of(_short_text, st.just("s" * 65)), max_size=55),
    owner_id=st.one_of(_short_text, st.just("o" * 65)),
    consent=st.builds(ConsentInput, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    custom_attributes=st.dictionaries(_attribute_keys, _attribute_values, max_size=102),
    identities=st.lists(_identities, max_size=52),
)
# Inputs that are mostly valid, so the success path is explored as well as the refusals.
_names = st.from_regex(r"[A-Za-zÀ-ÿ' -]{0,30}", fullmatch=True)
_plausible_identities = st.one_of(
    st.builds(IdentityInput, st.just(IdentityKind.EMAIL), st.emails(), primary=st.booleans()),
    st.builds(
        IdentityInput,
        st.just(IdentityKind.PHONE),
        st.sampled_from(["+14155552671", "(415) 555-2672", "+44 20 7946 0958", "212 555 0100"]),
        primary=st.booleans(),
    ),
    st.builds(
        IdentityInput,
        st.just(IdentityKind.SOCIAL),
        st.from_regex(r"@?[A-Za-z0-9_]{5,15}", fullmatch=True),
        st.sampled_from([n for n in SocialNetwork if n is not SocialNetwork.MASTODON]),
        primary=st.booleans(),
    ),
)
_plausible_inputs = st.builds(
    ContactInput,
    given_name=_names,
    family_name=_names,
    display_name=_names,
    organization_id=st.from_regex(r"[a-z0-9]{0,12}", fullmatch=True),
    job_title=_names,
    lifecycle_stage=st.none() | st.sampled_from(list(LifecycleStage)),
    tier=st.none() | st.sampled_from(list(Tier)),
    segments=st.lists(st.from_regex(r" ?[a-z]{1,8} ?", fullmatch=True), max_size=6),
    owner_id=st.from_regex(r"[a-z0-9]{0,12}", fullmatch=True),
    consent=st.builds(ConsentInput, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    custom_attributes=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), _short_text, max_size=5
    ),
    identities=st.lists(_plausible_identities, max_size=6),
)
_any_inputs = st.one_of(_contact_inputs, _plausible_inputs)
_mask_paths = st.lists(
    st.one_of(
        st.sampled_from([*CONTACT_MASK.updatable, "*", "consent.sms_marketing", "id"]),
        st.from_regex(r"custom_attributes\.[a-z]{1,6}", fullmatch=True),
        _short_text,
    ),
    max_size=5,
)


def assert_valid(contact: Contact) -> None:
    """The invariants every contact keeps, however it was made."""
    names = (contact.given_name, contact.family_name, contact.display_name)
    assert any(names)
    for text in (*names, contact.job_title):
        assert text == text.strip()
        assert len(text) <= 200
    assert len(contact.owner_id) <= 64
    assert len(contact.organization_id) <= 64
    assert len(contact.segments) <= 50
    assert len(set(contact.segments)) == len(contact.segments)
    assert all(1 <= len(s) <= 64 for s in contact.segments)
    assert len(contact.custom_attributes) <= 100
    assert all(KEY.fullmatch(k) for k in contact.custom_attributes)
    assert all(len(v) <= 1024 for v in contact.custom_attributes.values())
    assert len(contact.identities) <= 50
    keys = contact.identity_keys
    assert len(set(keys)) == len(keys)
    for kind in {i.kind for i in contact.identities}:
        assert sum(1 for i in contact.identities if i.kind is kind and i.primary) == 1
    for identity in contact.identities:
        assert (identity.network is not None) == (identity.kind is IdentityKind.SOCIAL)


def create(fields: ContactInput) -> Contact:
    return Contact.create(id="c1", tenant_id="t1", fields=fields, now=NOW, default_region="US")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_any_inputs)
def test_any_create_input_yields_a_valid_contact_or_invalid_argument(
    fields: ContactInput,
) -> None:
    try:
        contact = create(fields)
    except InvalidArgument as error:
        assert error.violations
        event("refused")
        return
    event("created")
    assert_valid(contact)
    assert contact.version == 1


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_any_inputs)
def test_recreating_a_contact_from_itself_changes_nothing(fields: ContactInput) -> None:
    try:
        contact = create(fields)
    except InvalidArgument:
        return
    assert create(contact.as_input()) == contact


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_any_inputs, _mask_paths, st.none() | st.integers(0, 2))
def test_any_update_yields_a_valid_contact_or_a_domain_error(
    changes: ContactInput, mask: list[str], expected_version: int | None
) -> None:
    before = create(ContactInput(given_name="Ada", custom_attributes={"a": "1"}))
    try:
        after, changed = before.apply_update(
            changes, mask, expected_version, NOW + timedelta(days=1), default_region="US"
        )
    except (InvalidArgument, FailedPrecondition) as error:  # incl. StaleVersion
        event(f"refused: {type(error).__name__}")
        return
    except DomainError as error:  # pragma: no cover - reported as a failure below
        raise AssertionError(f"unexpected {type(error).__name__}") from error
    event("updated" if changed else "unchanged")
    assert_valid(after)
    if changed:
        assert after.version == before.version + 1
        assert after.update_time > before.update_time
    else:
        assert after == before
    untouched = {f for f in CONTACT_MASK.updatable if f not in {p.split(".")[0] for p in mask}}
    if "*" not in mask:
        for name in untouched:
            assert getattr(after, name) == getattr(before, name)
