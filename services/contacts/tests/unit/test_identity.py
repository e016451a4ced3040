"""Identities: e-mail, phone and social handles reach one normal form and one lookup key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import domains

from crm_contacts.domain import (
    IdentityInput,
    IdentityKey,
    IdentityKind,
    InvalidValueError,
    SocialNetwork,
    check_phone_region,
    lookup_key,
    normalise_domain_name,
    normalise_email,
    normalise_phone,
    normalise_social_handle,
    parse_identity,
)
from crm_platform.errors import InvalidArgument

# --- e-mail ---------------------------------------------------------------------------------------


def test_email_domain_is_lowercased_and_local_part_kept() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "Jane.Doe@example.com"


def test_email_lookup_key_ignores_case_of_whole_address() -> None:
    assert lookup_key(IdentityKind.EMAIL, "Jane.Doe@Example.COM") == lookup_key(
        IdentityKind.EMAIL, "jane.doe@example.com"
    )
    assert lookup_key(IdentityKind.EMAIL, "Jane@Example.com").value == "jane@example.com"


def test_internationalised_email_domain_is_kept_in_unicode_form() -> None:
    assert normalise_email("jane@Bücher.DE") == "jane@bücher.de"
    assert normalise_email("jane@xn--bcher-kva.de") == "jane@bücher.de"


@pytest.mark.parametrize(
    "address", ["", "   ", "jane", "jane@", "@example.com", "jane doe@example.com", "a@localhost"]
)
def test_invalid_email_is_refused(address: str) -> None:
    with pytest.raises(InvalidValueError):
        normalise_email(address)


def test_email_is_not_checked_for_deliverability() -> None:
    # No DNS look-up: a syntactically valid address on an unregistered domain is accepted.
    assert normalise_email("x@no-such-domain-for-crm-tests.example") == (
        "x@no-such-domain-for-crm-tests.example"
    )


# --- phone ----------------------------------------------------------------------------------------


def test_phone_is_normalised_to_e164() -> None:
    assert normalise_phone("(415) 555-2671", "US") == "+14155552671"
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("020 7946 0958", "GB") == "+442079460958"


def test_phone_in_international_format_ignores_default_region() -> None:
    assert normalise_phone("+33 6 12 34 56 78", "US") == "+33612345678"


def test_national_phone_without_default_region_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="international format"):
        normalise_phone("(415) 555-2671")


@pytest.mark.parametrize("number", ["12", "+1 555 000 0000", "not a number", "+999 1234"])
def test_invalid_phone_is_refused(number: str) -> None:
    with pytest.raises(InvalidValueError):
        normalise_phone(number, "US")


def test_phone_with_extension_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="extension"):
        normalise_phone("+1 415 555 2671 ext. 12")


def test_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown phone region"):
        check_phone_region("XX")
    assert check_phone_region("fr") == "FR"


# --- social handles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "raw", "normalised"),
    [
        (SocialNetwork.X, "@Jack", "jack"),
        (SocialNetwork.INSTAGRAM, "@Nat.Geo", "nat.geo"),
        (SocialNetwork.TIKTOK, "@Some_One.2", "some_one.2"),
        (SocialNetwork.FACEBOOK, "Zuck.Page", "zuck.page"),
        (SocialNetwork.LINKEDIN, "in/Jane-Doe-123", "jane-doe-123"),
        (SocialNetwork.YOUTUBE, "@MrBeast", "mrbeast"),
        (SocialNetwork.REDDIT, "u/Spez", "spez"),
        (SocialNetwork.REDDIT, "/u/spez", "spez"),
        (SocialNetwork.MASTODON, "@Gargron@Mastodon.Social", "gargron@mastodon.social"),
        (SocialNetwork.OTHER, "@CaseKept.bsky.social", "CaseKept.bsky.social"),
    ],
)
def test_social_handle_is_normalised_per_network(
    network: SocialNetwork, raw: str, normalised: str
) -> None:
    assert normalise_social_handle(network, raw) == normalised


@pytest.mark.parametrize(
    ("network", "raw"),
    [
        (SocialNetwork.X, "a" * 16),
        (SocialNetwork.X, "jack-dorsey"),
        (SocialNetwork.INSTAGRAM, "nat..geo"),
        (SocialNetwork.INSTAGRAM, ".natgeo"),
        (SocialNetwork.TIKTOK, "a"),
        (SocialNetwork.TIKTOK, "ends.with."),
        (SocialNetwork.FACEBOOK, "zuck"),
        (SocialNetwork.LINKEDIN, "-jane"),
        (SocialNetwork.REDDIT, "ab"),
        (SocialNetwork.MASTODON, "gargron"),
        (SocialNetwork.MASTODON, "gargron@localhost"),
        (SocialNetwork.OTHER, "has space"),
        (SocialNetwork.X, ""),
    ],
)
def test_invalid_social_handle_is_refused(network: SocialNetwork, raw: str) -> None:
    with pytest.raises(InvalidValueError):
        normalise_social_handle(network, raw)


@pytest.mark.parametrize(
    ("network", "url", "handle"),
    [
        (SocialNetwork.X, "https://x.com/Jack", "jack"),
        (SocialNetwork.X, "twitter.com/jack/", "jack"),
        (SocialNetwork.INSTAGRAM, "https://www.instagram.com/NatGeo/?hl=en", "natgeo"),
        (SocialNetwork.TIKTOK, "https://www.tiktok.com/@Some.One", "some.one"),
        (SocialNetwork.FACEBOOK, "https://m.facebook.com/profile.php?id=1000123", "1000123"),
        (SocialNetwork.LINKEDIN, "https://www.linkedin.com/in/jane-doe-123/", "jane-doe-123"),
        (SocialNetwork.YOUTUBE, "youtube.com/@MrBeast", "mrbeast"),
        (SocialNetwork.REDDIT, "https://old.reddit.com/user/Spez/", "spez"),
        (SocialNetwork.MASTODON, "https://Mastodon.Social/@Gargron", "gargron@mastodon.social"),
        (SocialNetwork.OTHER, "https://bsky.app/profile/Jay", "https://bsky.app/profile/Jay"),
    ],
)
def test_profile_url_is_reduced_to_the_handle(
    network: SocialNetwork, url: str, handle: str
) -> None:
    assert normalise_social_handle(network, url) == handle


@pytest.mark.parametrize(
    ("network", "url"),
    [
        (SocialNetwork.X, "https://example.com/jack"),
        (SocialNetwork.X, "https://x.com/jack/status/1"),
        (SocialNetwork.X, "ftp://x.com/jack"),
        (SocialNetwork.INSTAGRAM, "https://instagram.com/p/Cx1/"),
        (SocialNetwork.FACEBOOK, "https://facebook.com/profile.php?id=abc"),
        (SocialNetwork.MASTODON, "https://mastodon.social/about"),
        (SocialNetwork.X, "http://[::1"),
    ],
)
def test_url_that_is_not_a_profile_of_the_network_is_refused(
    network: SocialNetwork, url: str
) -> None:
    with pytest.raises(InvalidValueError, match="profile URL or handle"):
        normalise_social_handle(network, url)


def test_lookup_key_distinguishes_networks() -> None:
    on_x = lookup_key(IdentityKind.SOCIAL, "@jack", SocialNetwork.X)
    on_reddit = lookup_key(IdentityKind.SOCIAL, "jack", SocialNetwork.REDDIT)
    assert on_x == IdentityKey(IdentityKind.SOCIAL, SocialNetwork.X, "jack")
    assert on_x != on_reddit
    assert on_x.encode() == "SOCIAL:X:jack"
    assert lookup_key(IdentityKind.PHONE, "+14155552671").encode() == "PHONE::+14155552671"


# --- parse_identity -------------------------------------------------------------------------------


def test_social_identity_needs_a_network() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_identity(IdentityInput(IdentityKind.SOCIAL, "@jack"), field="c.identities[0]")
    assert [v.field for v in caught.value.violations] == ["c.identities[0].network"]


def test_network_is_forbidden_outside_social_identities() -> None:
    raw = IdentityInput(IdentityKind.EMAIL, "not-an-email", SocialNetwork.X)
    with pytest.raises(InvalidArgument) as caught:
        parse_identity(raw, field="c.identities[1]")
    assert {v.field for v in caught.value.violations} == {
        "c.identities[1].network",
        "c.identities[1].value",
    }


def test_identity_without_kind_reports_kind_and_blank_value() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_identity(IdentityInput(None, " "), field="identity")
    assert {v.field for v in caught.value.violations} == {"identity.kind", "identity.value"}


def test_parsed_identity_keeps_flags_and_normalises_value() -> None:
    identity = parse_identity(
        IdentityInput(IdentityKind.PHONE, "415-555-2671", primary=True, verified=True),
        field="identity",
        default_region="US",
    )
    assert (identity.value, identity.primary, identity.verified) == ("+14155552671", True, True)
    assert identity.network is None


# --- domain names ---------------------------------------------------------------------------------


def test_domain_name_is_lowercased_without_root_dot() -> None:
    assert normalise_domain_name(" Example.COM. ") == "example.com"
    assert normalise_domain_name("xn--bcher-kva.de") == "bücher.de"


@pytest.mark.parametrize(
    "name", ["com", "localhost", "1.2.3.4", "https://example.com", "a_b.com", "-a.com", "a..b"]
)
def test_invalid_domain_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidValueError):
        normalise_domain_name(name)


# --- properties: normalising twice changes nothing ------------------------------------------------


def _idempotent(normalise: object, value: str) -> None:
    assert callable(normalise)
    try:
        once = normalise(value)
    except InvalidValueError:
        return
    assert normalise(once) == once


@given(st.emails())
def test_email_normalisation_is_idempotent(address: str) -> None:
    _idempotent(normalise_email, address)


@given(st.text(max_size=80))
def test_email_normalisation_of_any_text_is_idempotent_or_refused(text: str) -> None:
    _idempotent(normalise_email, text)


_PHONE_TEXT = st.text(alphabet="+0123456789 ()-.x", min_size=1, max_size=25)


@given(st.one_of(_PHONE_TEXT, st.text(max_size=30)), st.sampled_from(["US", "GB", "DE", "IN"]))
def test_phone_normalisation_is_idempotent(number: str, region: str) -> None:
    try:
        once = normalise_phone(number, region)
    except InvalidValueError:
        return
    assert normalise_phone(once, region) == once
    assert normalise_phone(once) == once  # E.164 needs no region


@given(st.sampled_from(list(SocialNetwork)), st.text(max_size=40))
def test_social_handle_normalisation_is_idempotent(network: SocialNetwork, handle: str) -> None:
    try:
        once = normalise_social_handle(network, handle)
    except InvalidValueError:
        return
    assert normalise_social_handle(network, once) == once


@given(
    st.sampled_from(list(SocialNetwork)),
    st.one_of(
        st.from_regex(
            r"@?[A-Za-z0-9_.\-]{1,20}(@[A-Za-z0-9]{1,10}\.[A-Za-z]{2,5})?", fullmatch=True
        ),
        st.from_regex(
            r"(https?://)?(www\.|m\.)?(x|twitter|instagram|tiktok|facebook|linkedin|youtube|reddit"
            r"|mastodon)\.(com|social)/(@|in/|u/|user/)?[A-Za-z0-9_.\-]{1,20}/?",
            fullmatch=True,
        ),
    ),
)
def test_plausible_social_handle_normalisation_is_idempotent(
    network: SocialNetwork, handle: str
) -> None:
    try:
        once = normalise_social_handle(network, handle)
    except InvalidValueError:
        return
    assert normalise_social_handle(network, once) == once


@given(st.one_of(domains(), st.text(max_size=40)))
def test_domain_normalisation_is_idempotent(name: str) -> None:
    _idempotent(normalise_domain_name, name)


def test_overlong_identity_value_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidValueError, match="at most 512"):
        lookup_key(IdentityKind.EMAIL, "a" * 600 + "@example.com")
