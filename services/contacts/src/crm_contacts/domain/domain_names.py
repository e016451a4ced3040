"""DNS domain names (organisation websites, e-mail and Mastodon instances)."""

from __future__ import annotations

import re

import idna

from crm_contacts.domain._validation import InvalidValueError

MAX_DOMAIN_LENGTH = 253  # RFC 1035, in the ASCII (A-label) form
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalise_domain_name(value: str) -> str:
    """Return ``value`` as a canonical domain name, or raise :class:`InvalidValueError`.

    Rules: surrounding whitespace and one trailing root dot are dropped; internationalised
    names are mapped with UTS #46 / IDNA 2008 (the ``idna`` package, as e-mail validation uses)
    and returned in their lowercase Unicode form (``Bücher.DE`` → ``bücher.de``), the same form
    ``email-validator`` gives for an address's domain, so e-mail domains and organisation
    domains compare equal. At least two labels are required (no bare TLDs, no ``localhost``), the
    top-level label must not be numeric (no IP addresses), and URLs are refused with a hint.
    """
    text = value.strip()
    if not text:
        raise InvalidValueError("is required")
    if "://" in text or "/" in text:
        raise InvalidValueError("expected a bare domain name such as example.com, not a URL")
    if text.endswith("."):
        text = text[:-1]
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
        unicode_name = idna.decode(ascii_name)
    except UnicodeError as error:  # idna.IDNAError is a UnicodeError
        raise InvalidValueError(f"is not a valid domain name ({error})") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > MAX_DOMAIN_LENGTH:
        raise InvalidValueError(f"must be at most {MAX_DOMAIN_LENGTH} characters")
    if len(labels) < 2:
        raise InvalidValueError("must have at least two labels, such as example.com")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidValueError(
            "is not a valid domain name: each label must be 1-63 letters, digits or hyphens, "
            "not starting or ending with a hyphen"
        )
    if labels[-1].isdigit():
        raise InvalidValueError("must be a domain name, not an IP address")
    return unicode_name
