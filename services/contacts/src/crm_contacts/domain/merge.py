"""Dedupe and merge of contacts: which contacts look alike, and what two contacts become as one.

Duplicates. Exact identities are unique per tenant (the identity index), so two contacts can only
share *near*-equal identities: the same canonical e-mail address (:func:`canonical_email`), the
same national phone number under different country codes, the same handle on different social
networks. Each such near-identity is a *dedupe key* (:func:`dedupe_keys`); names are compared
with rapidfuzz, and only within one organisation (comparing every pair of a tenant is quadratic).

Merge (:func:`merge_contacts`). The survivor keeps its id; each scalar field comes from the
contact the caller chose (survivor by default; an empty survivor field takes the merged value);
identities, segments and custom attributes are united (the survivor's attribute wins on a key
both have unless ``custom_attributes.<key>`` chooses the merged one); consent: the more recently
recorded consent wins as a whole (it is the person's latest statement); when neither time is
known or both are equal, each flag is the stricter of the two (granted only if both granted).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import phonenumbers
from rapidfuzz import fuzz

from crm_contacts.domain.contact import MAX_IDENTITIES, MAX_SEGMENTS, Consent, Contact
from crm_contacts.domain.identity import Identity, IdentityKind
from crm_platform.errors import FieldViolation, InvalidArgument, StaleVersion

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
SCALAR_FIELDS = (
    "given_name",
    "family_name",
    "display_name",
    "organization_id",
    "job_title",
    "lifecycle_stage",
    "tier",
    "owner_id",
)
ATTRIBUTE_PREFIX = "custom_attributes."
NAME_SIMILARITY_THRESHOLD = 85
"""rapidfuzz ``token_sort_ratio`` (0-100) from which two names in one organisation count as
similar; below it common first names alone ("Jane Doe" / "Jane Roe") would match."""


class Source(StrEnum):
    """Which contact a field's value comes from."""

    SURVIVOR = "SURVIVOR"
    MERGED = "MERGED"


class Reason(StrEnum):
    """Why two contacts look like duplicates (same member names as the API enum)."""

    CANONICAL_EMAIL = "CANONICAL_EMAIL"
    PHONE_NATIONAL_NUMBER = "PHONE_NATIONAL_NUMBER"
    SOCIAL_HANDLE = "SOCIAL_HANDLE"
    SIMILAR_NAME = "SIMILAR_NAME"


REASON_SCORES: Mapping[Reason, int] = {
    Reason.CANONICAL_EMAIL: 90,
    Reason.PHONE_NATIONAL_NUMBER: 75,
    Reason.SOCIAL_HANDLE: 60,
}
"""The score one reason alone gives (a similar name scores its similarity, scaled)."""


# --- duplicates -------------------------------------------------------------------------------


def canonical_email(address: str) -> str:
    """The address as a mailbox is reached: lower case, "+tag" dropped; for Gmail also the
    dots of the local part dropped and googlemail.com read as gmail.com."""
    local, _, domain = address.strip().lower().rpartition("@")
    if not local:
        return address.strip().lower()
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def phone_national_number(e164: str) -> str | None:
    """The national significant number of a stored (E.164) phone number, or ``None``."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.national_significant_number(parsed)


def _hashed(reason: Reason, value: str) -> str:
    # Stored and queried as a hash: personal values are not queried in plain in the database.
    return f"{reason.value}:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def dedupe_key_reason(key: str) -> Reason:
    """The reason a dedupe key stands for."""
    return Reason(key.partition(":")[0])


def dedupe_keys(identities: Sequence[Identity]) -> list[str]:
    """The contact's near-identity keys: two contacts sharing one are duplicate candidates."""
    keys: set[str] = set()
    for identity in identities:
        if identity.kind is IdentityKind.EMAIL:
            keys.add(_hashed(Reason.CANONICAL_EMAIL, canonical_email(identity.value)))
        elif identity.kind is IdentityKind.PHONE:
            if (national := phone_national_number(identity.value)) is not None:
                keys.add(_hashed(Reason.PHONE_NATIONAL_NUMBER, national))
        else:
            keys.add(_hashed(Reason.SOCIAL_HANDLE, identity.value))
    return sorted(keys)


def full_name(contact: Contact) -> str:
    """The name compared for similarity: given + family, else the display name."""
    name = f"{contact.given_name} {contact.family_name}".strip()
    return (name or contact.display_name).casefold()


def name_similarity(left: Contact, right: Contact) -> int:
    """0-100: how alike the two names are (word order ignored)."""
    a, b = full_name(left), full_name(right)
    if not a or not b:
        return 0
    return round(fuzz.token_sort_ratio(a, b))


@dataclass(frozen=True, slots=True)
class Candidate:
    """Two contacts that may be one person (``contact_id`` < ``other_contact_id``)."""

    contact_id: str
    other_contact_id: str
    score: int
    reasons: tuple[Reason, ...]


def score_pair(left: Contact, right: Contact) -> Candidate | None:
    """The pair as a candidate, or ``None`` when nothing suggests they are one person.

    Score: the strongest reason's score, plus 5 for each further reason, at most 100; a similar
    name counts only within one organisation and scores 0.8 x its similarity.
    """
    shared = set(dedupe_keys(left.identities)) & set(dedupe_keys(right.identities))
    scored: dict[Reason, int] = {}
    for key in shared:
        reason = dedupe_key_reason(key)
        scored[reason] = REASON_SCORES[reason]
    if left.organization_id and left.organization_id == right.organization_id:
        similarity = name_similarity(left, right)
        if similarity >= NAME_SIMILARITY_THRESHOLD:
            scored[Reason.SIMILAR_NAME] = round(similarity * 0.8)
    if not scored:
        return None
    reasons = tuple(sorted(scored, key=lambda r: (-scored[r], r.value)))
    score = min(100, scored[reasons[0]] + 5 * (len(reasons) - 1))
    first, second = sorted((left.id, right.id))
    return Candidate(first, second, score, reasons)


# --- merge ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MergeAudit:
    """What a merge did: who, when, where each field of the survivor came from."""

    survivor_id: str
    merged_id: str
    merge_time: datetime
    actor: str
    field_sources: tuple[tuple[str, str], ...]
    """(field, contact id) for every scalar field, every custom attribute, and ``consent``."""
    identities_moved: int
    segments_added: tuple[str, ...]
    survivor_version: int


def check_choices(choices: Mapping[str, Source], field: str = "field_choices") -> None:
    """``InvalidArgument`` naming every choice that is not a mergeable field."""
    bad = [
        FieldViolation(f"{field}[{name!r}]", "is not a field a merge can choose")
        for name in sorted(choices)
        if name not in SCALAR_FIELDS
        and not (name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX))
    ]
    if bad:
        raise InvalidArgument(bad)


def merged_consent(survivor: Consent, merged: Consent) -> tuple[Consent, Source]:
    """The consent of the merged contact, and whose it is (see the module doc)."""
    if survivor.update_time is not None and merged.update_time is not None:
        if merged.update_time > survivor.update_time:
            return merged, Source.MERGED
        if survivor.update_time > merged.update_time:
            return survivor, Source.SURVIVOR
    elif survivor.update_time is not None:
        return survivor, Source.SURVIVOR
    elif merged.update_time is not None:
        return merged, Source.MERGED
    stricter = Consent(
        email_marketing=survivor.email_marketing and merged.email_marketing,
        sms_marketing=survivor.sms_marketing and merged.sms_marketing,
        phone_marketing=survivor.phone_marketing and merged.phone_marketing,
        data_processing=survivor.data_processing and merged.data_processing,
        update_time=survivor.update_time,
    )
    return stricter, Source.SURVIVOR


def _united_identities(survivor: Contact, merged: Contact) -> tuple[tuple[Identity, ...], int]:
    # The survivor keeps its primaries; a merged identity is primary only for a kind the
    # survivor has no primary of (one primary per kind).
    primary_kinds = {i.kind for i in survivor.identities if i.primary}
    known = {i.lookup_key for i in survivor.identities}
    moved: list[Identity] = []
    for identity in merged.identities:
        if identity.lookup_key in known:
            continue
        if identity.primary and identity.kind in primary_kinds:
            identity = dataclasses.replace(identity, primary=False)
        elif identity.primary:
            primary_kinds.add(identity.kind)
        moved.append(identity)
    return survivor.identities + tuple(moved), len(moved)


def merge_contacts(
    survivor: Contact,
    merged: Contact,
    choices: Mapping[str, Source],
    *,
    expected_survivor_version: int | None,
    expected_merged_version: int | None,
    now: datetime,
    actor: str,
) -> tuple[Contact, MergeAudit]:
    """The survivor after absorbing ``merged``, and the audit of it.

    Raises ``InvalidArgument`` for unknown field choices or when the union exceeds the limits
    of a contact (identities, segments), ``StaleVersion`` for a stale expected version.
    """
    check_choices(choices)
    if expected_survivor_version is not None and expected_survivor_version != survivor.version:
        raise StaleVersion(f"contacts/{survivor.id}", expected_survivor_version, survivor.version)
    if expected_merged_version is not None and expected_merged_version != merged.version:
        raise StaleVersion(f"contacts/{merged.id}", expected_merged_version, merged.version)
    sources: list[tuple[str, str]] = []
    values: dict[str, object] = {}
    for name in SCALAR_FIELDS:
        choice = choices.get(name)
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        # An empty survivor text field takes the merged value unless the caller chose otherwise.
        take_merged = choice is Source.MERGED or (choice is None and mine == "" and theirs != "")
        values[name] = theirs if take_merged else mine
        sources.append((name, merged.id if take_merged else survivor.id))
    attributes = dict(survivor.custom_attributes)
    attribute_source = {key: survivor.id for key in attributes}
    for key, value in merged.custom_attributes.items():
        if key not in attributes or choices.get(ATTRIBUTE_PREFIX + key) is Source.MERGED:
            attributes[key] = value
            attribute_source[key] = merged.id
    sources.extend((ATTRIBUTE_PREFIX + key, attribute_source[key]) for key in sorted(attributes))
    added = tuple(s for s in merged.segments if s not in survivor.segments)
    segments = survivor.segments + added
    identities, moved = _united_identities(survivor, merged)
    violations = []
    if len(identities) > MAX_IDENTITIES:
        violations.append(
            FieldViolation("merged_id", f"together they have more than {MAX_IDENTITIES} identities")
        )
    if len(segments) > MAX_SEGMENTS:
        violations.append(
            FieldViolation("merged_id", f"together they are in more than {MAX_SEGMENTS} segments")
        )
    if violations:
        raise InvalidArgument(violations)
    consent, consent_source = merged_consent(survivor.consent, merged.consent)
    sources.append(("consent", merged.id if consent_source is Source.MERGED else survivor.id))
    result = dataclasses.replace(
        survivor,
        **values,  # type: ignore[arg-type]
        custom_attributes=attributes,
        segments=segments,
        identities=identities,
        consent=consent,
        version=survivor.version + 1,
        update_time=now,
    )
    audit = MergeAudit(
        survivor_id=survivor.id,
        merged_id=merged.id,
        merge_time=now,
        actor=actor,
        field_sources=tuple(sources),
        identities_moved=moved,
        segments_added=added,
        survivor_version=result.version,
    )
    return result, audit
