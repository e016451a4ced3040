"""A contact's identities on every channel (e-mail, phone, social handles) and their normal form.

Two inputs naming the same mailbox, line or account must end up equal, because identities are
unique within a tenant and are how inbound messages, calls and social posts find their contact.
Each kind therefore has one normal form (:func:`normalise_identity_value`) and one lookup key
(:func:`lookup_key`):

* **EMAIL** — validated and normalised by ``email-validator`` (syntax only, no DNS look-up):
  Unicode NFC, domain lowercased and IDNA-normalised, local part kept as written. The stored
  ``value`` keeps the local part's case because that is what the person typed and what mail
  should be sent to (RFC 5321 leaves local-part case to the receiving server). The *lookup key*
  lowercases the whole address, since in practice no provider distinguishes ``Jane@`` from
  ``jane@`` and treating them as two people would create duplicates. Provider-specific
  aliasing (Gmail dots, ``+tags``) is *not* folded: it is not universal.
* **PHONE** — parsed by ``phonenumbers`` and stored in E.164 (``+14155550123``). Numbers
  without a ``+country code`` are read in the default region (from configuration); numbers that
  ``phonenumbers`` does not consider valid, and numbers with an extension (E.164 has no room
  for one), are refused.
* **SOCIAL** — a handle on one network: a leading ``@`` (and ``u/`` on Reddit, ``in/`` on
  LinkedIn) is dropped, the handle is lowercased on every named network (all of them treat
  handles case-insensitively) and checked against that network's documented character set and
  length. A profile URL (``https://x.com/jack``) is reduced to its handle. Mastodon handles
  must name their instance (``user@instance``, or ``https://instance/@user``), which is
  normalised like any domain. Values on ``OTHER`` networks (handles or URLs) are only trimmed
  of spaces and leading ``@``: their case rules are unknown.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_contacts.domain._validation import (
    InvalidValueError,
    Violations,
    has_control_characters,
    join_path,
)
from crm_contacts.domain.domain_names import normalise_domain_name

MAX_IDENTITY_VALUE_LENGTH = 512


class IdentityKind(StrEnum):
    """The channel an identity belongs to (same member names as the API enum)."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    SOCIAL = "SOCIAL"


class SocialNetwork(StrEnum):
    """The network of a SOCIAL identity (same member names as the API enum)."""

    X = "X"
    FACEBOOK = "FACEBOOK"
    INSTAGRAM = "INSTAGRAM"
    LINKEDIN = "LINKEDIN"
    TIKTOK = "TIKTOK"
    YOUTUBE = "YOUTUBE"
    REDDIT = "REDDIT"
    MASTODON = "MASTODON"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class IdentityInput:
    """An identity as a caller supplied it: not yet validated, ``kind`` possibly missing."""

    kind: IdentityKind | None
    value: str
    network: SocialNetwork | None = None
    primary: bool = False
    verified: bool = False


class IdentityKey(NamedTuple):
    """What makes an identity unique within a tenant: ``(kind, network, normalised value)``."""

    kind: IdentityKind
    network: SocialNetwork | None
    value: str

    def encode(self) -> str:
        """One string for a unique index, e.g. ``EMAIL::jane@example.com``, ``SOCIAL:X:jack``."""
        return f"{self.kind.value}:{self.network.value if self.network else ''}:{self.value}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A validated identity in normal form; build it with :func:`parse_identity`.

    ``network`` is set exactly when ``kind`` is SOCIAL. Constructing it directly is for
    rehydrating already-normalised values (from storage), not for caller input.
    """

    kind: IdentityKind
    value: str
    network: SocialNetwork | None = None
    primary: bool = False
    verified: bool = False

    @property
    def lookup_key(self) -> IdentityKey:
        """The tenant-wide unique key of this identity (see :func:`lookup_key`)."""
        return _key_of_normalised(self.kind, self.network, self.value)

    def as_input(self) -> IdentityInput:
        """This identity as input again (to re-submit it, e.g. in an update)."""
        return IdentityInput(self.kind, self.value, self.network, self.primary, self.verified)


# --- e-mail -------------------------------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Validate an e-mail address (syntax only) and return its normal form; see module doc."""
    text = value.strip()
    if not text:
        raise InvalidValueError("is required")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValueError(f"is not a valid email address: {error}") from None
    return result.normalized


# --- phone --------------------------------------------------------------------------------------

_PARSE_PROBLEMS: dict[int, str] = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "has a missing or unknown country code; use the international format +<country code>"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


def check_phone_region(region: str | None) -> str | None:
    """Return ``region`` upper-cased if ``phonenumbers`` knows it; ``ValueError`` otherwise.

    A bad default region is a configuration error, not a caller error, hence ``ValueError``.
    """
    if region is None:
        return None
    upper = region.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}; expected an ISO 3166-1 alpha-2 code")
    return upper


def normalise_phone(value: str, default_region: str | None = None) -> str:
    """Validate a phone number and return it in E.164; see module doc.

    ``default_region`` (ISO 3166-1 alpha-2, e.g. ``"US"``) is how numbers written without a
    ``+country code`` are read; without it, such numbers are refused.
    """
    region = check_phone_region(default_region)
    text = value.strip()
    if not text:
        raise InvalidValueError("is required")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        problem = _PARSE_PROBLEMS.get(error.error_type, "is not a phone number")
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and (
            region is None
        ):
            problem = "must be in international format +<country code>… (no default region)"
        raise InvalidValueError(problem) from None
    if number.extension:
        raise InvalidValueError("must not have an extension (E.164 numbers cannot carry one)")
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region or "any region"
        raise InvalidValueError(f"is not a valid phone number for {where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- social handles -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HandleRule:
    """A network's handle syntax: allowed form, prefixes people paste, case sensitivity."""

    pattern: re.Pattern[str]
    allowed: str
    prefixes: tuple[str, ...] = ("@",)
    case_insensitive: bool = True


# Limits follow each network's help pages on usernames, loosened where real handles break them:
# X still has legacy handles under 4 characters, and TikTok handles longer than its documented 24
# are reported. Refusing a real customer's handle costs more than accepting a slightly odd one.
_HANDLE_RULES: dict[SocialNetwork, _HandleRule] = {
    SocialNetwork.X: _HandleRule(
        re.compile(r"[a-z0-9_]{1,15}"), "1-15 letters, digits or underscores"
    ),
    SocialNetwork.INSTAGRAM: _HandleRule(
        re.compile(r"(?!\.)(?!.*\.\.)[a-z0-9._]{1,30}(?<!\.)"),
        "1-30 letters, digits, periods or underscores, no period first, last or twice in a row",
    ),
    SocialNetwork.TIKTOK: _HandleRule(
        re.compile(r"[a-z0-9._]{2,30}(?<!\.)"),
        "2-30 letters, digits, underscores or periods, not ending with a period",
    ),
    SocialNetwork.FACEBOOK: _HandleRule(
        re.compile(r"[a-z0-9.]{5,50}"),
        "5-50 letters, digits or periods (or a numeric profile id)",
    ),
    SocialNetwork.LINKEDIN: _HandleRule(
        re.compile(r"(?!-)(?:[^\W_]|-){3,100}(?<!-)"),
        "3-100 letters, digits or hyphens (the part after linkedin.com/in/)",
        prefixes=("@", "/in/", "in/"),
    ),
    SocialNetwork.YOUTUBE: _HandleRule(
        re.compile(r"[\w.\-\u00b7]{3,30}"),
        "3-30 letters, digits, underscores, hyphens, periods or middle dots",
    ),
    SocialNetwork.REDDIT: _HandleRule(
        re.compile(r"[a-z0-9_-]{3,20}"),
        "3-20 letters, digits, underscores or hyphens",
        prefixes=("/u/", "u/", "@"),
    ),
    SocialNetwork.OTHER: _HandleRule(
        re.compile(r"\S{1,256}"), "1-256 characters without spaces", case_insensitive=False
    ),
}
# Mastodon's own USERNAME_RE (app/models/account.rb). Its local limit is 30 characters; remote
# fediverse servers allow more, so the cap here is looser.
_MASTODON_USER = re.compile(r"[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*")
MAX_MASTODON_USER_LENGTH = 64


def _fold_case(text: str) -> str:
    """NFC + lowercase, repeated until stable so normalising twice never changes the result.

    (Lowercasing can denormalise a few characters; one extra round settles them.)
    """
    for _ in range(4):
        folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())
        if folded == text:
            break
        text = folded
    return text


def _strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if text.lower().startswith(prefix):
            return text[len(prefix) :]
    return text


# Profile URLs people paste instead of handles: each network's hosts and where the handle sits
# in the path. What is extracted is then checked like a typed handle.
_PROFILE_URLS: dict[SocialNetwork, tuple[frozenset[str], re.Pattern[str]]] = {
    SocialNetwork.X: (frozenset({"x.com", "twitter.com"}), re.compile(r"/@?([^/]+)/?")),
    SocialNetwork.INSTAGRAM: (frozenset({"instagram.com"}), re.compile(r"/([^/]+)/?")),
    SocialNetwork.TIKTOK: (frozenset({"tiktok.com"}), re.compile(r"/@([^/]+)/?")),
    SocialNetwork.FACEBOOK: (frozenset({"facebook.com", "fb.com"}), re.compile(r"/([^/]+)/?")),
    SocialNetwork.LINKEDIN: (frozenset({"linkedin.com"}), re.compile(r"/in/([^/]+)/?")),
    SocialNetwork.YOUTUBE: (frozenset({"youtube.com"}), re.compile(r"/@([^/]+)/?")),
    SocialNetwork.REDDIT: (frozenset({"reddit.com"}), re.compile(r"/(?:u|user)/([^/]+)/?")),
}
_MASTODON_PROFILE_PATH = re.compile(r"/@([^/@]+)/?")
_HOST_PREFIXES = ("www.", "m.", "mobile.", "old.", "new.")
_BARE_URL = re.compile(r"[^/@\s.]+(?:\.[^/@\s.]+)+/.*")  # "x.com/jack": dotted host, then path


def _looks_like_url(text: str) -> bool:
    return "://" in text or _BARE_URL.fullmatch(text) is not None


def _handle_from_profile_url(network: SocialNetwork, text: str) -> str:
    """The handle in a profile URL such as ``https://x.com/jack`` (``jack@host`` on Mastodon)."""
    url = text if "://" in text else f"https://{text}"
    not_a_profile = InvalidValueError(f"is not a {network.value} profile URL or handle")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise not_a_profile from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise not_a_profile
    path = unquote(parts.path)
    if network is SocialNetwork.MASTODON:
        match = _MASTODON_PROFILE_PATH.fullmatch(path)
        if match is None:
            raise not_a_profile
        return f"{match.group(1)}@{host}"
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix):
            host = host[len(prefix) :]
            break
    hosts, path_pattern = _PROFILE_URLS[network]
    if host not in hosts:
        raise not_a_profile
    if network is SocialNetwork.FACEBOOK and path == "/profile.php":
        profile_id = parse_qs(parts.query).get("id", [""])[0]
        if profile_id.isascii() and profile_id.isdigit():
            return profile_id
        raise not_a_profile
    match = path_pattern.fullmatch(path)
    if match is None:
        raise not_a_profile
    return match.group(1)


def normalise_social_handle(network: SocialNetwork, value: str) -> str:
    """Validate a handle on ``network`` and return its normal form; see module doc.

    A profile URL (``https://www.instagram.com/natgeo/``, ``x.com/jack``,
    ``https://mastodon.social/@Gargron``) is accepted in place of the handle and reduced to
    it; on ``OTHER`` networks a URL is kept whole, as the only identifier there is.
    """
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise InvalidValueError("is required")
    if has_control_characters(text):
        raise InvalidValueError("must not contain control characters")
    if network is not SocialNetwork.OTHER and _looks_like_url(text):
        text = _handle_from_profile_url(network, text)
    if network is SocialNetwork.MASTODON:
        return _normalise_mastodon_handle(text)
    rule = _HANDLE_RULES[network]
    if network is SocialNetwork.OTHER:
        # Any character may follow on an unknown network, so drop every leading "@" at once
        # (dropping one would leave "@@x" changing again on a second normalisation).
        handle = text.lstrip("@")
    else:
        handle = _strip_prefix(text, rule.prefixes)
    if rule.case_insensitive:
        handle = _fold_case(handle)
    if not rule.pattern.fullmatch(handle):
        raise InvalidValueError(f"is not a valid {network.value} handle: expected {rule.allowed}")
    return handle


def _normalise_mastodon_handle(text: str) -> str:
    parts = _strip_prefix(text, ("@",)).split("@")
    if len(parts) != 2:
        raise InvalidValueError(
            "must be a Mastodon handle user@instance, e.g. gargron@mastodon.social"
        )
    user, instance = parts[0].lower(), parts[1]
    if len(user) > MAX_MASTODON_USER_LENGTH or not _MASTODON_USER.fullmatch(user):
        raise InvalidValueError(
            f"is not a valid Mastodon handle: the user part must be 1-{MAX_MASTODON_USER_LENGTH} "
            "letters, digits or underscores (periods and hyphens only between them)"
        )
    try:
        domain = normalise_domain_name(instance)
    except InvalidValueError as error:
        raise InvalidValueError(f"has an invalid Mastodon instance: {error.description}") from None
    return f"{user}@{domain}"


# --- identities ---------------------------------------------------------------------------------


def normalise_identity_value(
    kind: IdentityKind,
    value: str,
    network: SocialNetwork | None = None,
    *,
    default_region: str | None = None,
) -> str:
    """The normal form of ``value`` for ``kind`` (and ``network`` for SOCIAL identities).

    Raises :class:`InvalidValueError` when the value is not valid for its kind, and ``ValueError``
    when a SOCIAL identity has no network (a programming error here: :func:`parse_identity`
    reports it to callers as a field violation).
    """
    if len(value) > MAX_IDENTITY_VALUE_LENGTH:
        # Cheap guard before the parsers; no valid e-mail, phone or handle is this long.
        raise InvalidValueError(f"must be at most {MAX_IDENTITY_VALUE_LENGTH} characters")
    if kind is IdentityKind.EMAIL:
        return normalise_email(value)
    if kind is IdentityKind.PHONE:
        return normalise_phone(value, default_region)
    if network is None:
        raise ValueError("a SOCIAL identity needs a network")
    return normalise_social_handle(network, value)


def _key_of_normalised(
    kind: IdentityKind, network: SocialNetwork | None, normalised: str
) -> IdentityKey:
    # Only e-mail folds further than its stored form (see the module doc); phones and handles
    # are stored in their lookup form already.
    value = normalised.lower() if kind is IdentityKind.EMAIL else normalised
    return IdentityKey(kind, network if kind is IdentityKind.SOCIAL else None, value)


def lookup_key(
    kind: IdentityKind,
    value: str,
    network: SocialNetwork | None = None,
    *,
    default_region: str | None = None,
) -> IdentityKey:
    """The tenant-wide unique key for a raw identity value, e.g. to find a contact by e-mail.

    Raises :class:`InvalidValueError` when the value is not valid for its kind.
    """
    normalised = normalise_identity_value(kind, value, network, default_region=default_region)
    return _key_of_normalised(kind, network, normalised)


def parse_identity(
    raw: IdentityInput, *, field: str, default_region: str | None = None
) -> Identity:
    """Validate and normalise one identity; ``field`` is its path, e.g. ``contact.identities[2]``.

    Raises ``InvalidArgument`` with every violation of this identity (kind, network, value).
    """
    violations = Violations()
    value_field = join_path(field, "value")
    if raw.kind is None:
        violations.add(join_path(field, "kind"), "is required")
    elif raw.kind is IdentityKind.SOCIAL and raw.network is None:
        violations.add(join_path(field, "network"), "is required for a SOCIAL identity")
    elif raw.kind is not IdentityKind.SOCIAL and raw.network is not None:
        violations.add(join_path(field, "network"), "is only allowed for a SOCIAL identity")
    if raw.kind is None or (raw.kind is IdentityKind.SOCIAL and raw.network is None):
        # Without a kind (or a network) there is no rule to check the value against.
        if not raw.value.strip():
            violations.add(value_field, "is required")
        violations.raise_if_any()
        raise AssertionError("unreachable: a violation was recorded above")
    network = raw.network if raw.kind is IdentityKind.SOCIAL else None
    value = raw.value
    try:
        value = normalise_identity_value(
            raw.kind, raw.value, network, default_region=default_region
        )
    except InvalidValueError as error:
        violations.add(value_field, error.description)
    violations.raise_if_any()
    return Identity(raw.kind, value, network, raw.primary, raw.verified)
