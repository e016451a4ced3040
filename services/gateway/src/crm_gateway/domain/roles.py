"""Roles and what they may do.

A permission is ``<area>.<read|write>`` (see :mod:`crm_gateway.routes`: every operation has
exactly one). Roles are fixed here rather than configured: they are part of the product's
contract with its users, and a test checks every role against every operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Role(StrEnum):
    """Who a credential acts as."""

    ADMIN = "admin"  # everything, including the service desk's configuration
    AGENT = "agent"  # works tickets and customers; reads KPIs (scorecards)
    SALES = "sales"  # works contacts; reads tickets and the customer view
    ANALYST = "analyst"  # reads everything, changes nothing
    INTEGRATION = "integration"  # other systems: feeds contacts, tickets, mentions, surveys


_READS = ("contacts", "tickets", "config", "social", "surveys", "kpis", "customers")

GRANTS: Mapping[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(
        {f"{area}.read" for area in _READS}
        | {f"{area}.write" for area in ("contacts", "tickets", "config", "social", "surveys")}
        | {"identity.read"}
    ),
    Role.AGENT: frozenset(
        {f"{area}.read" for area in _READS}
        | {"contacts.write", "tickets.write", "social.write", "surveys.write", "identity.read"}
    ),
    Role.SALES: frozenset(
        {"contacts.read", "contacts.write", "tickets.read", "customers.read", "identity.read"}
    ),
    Role.ANALYST: frozenset({f"{area}.read" for area in _READS} | {"identity.read"}),
    Role.INTEGRATION: frozenset(
        {
            "contacts.read",
            "contacts.write",
            "tickets.read",
            "tickets.write",
            "social.read",
            "social.write",
            "surveys.read",
            "surveys.write",
            "identity.read",
        }
    ),
}
"""The permissions of each role."""


def allows(role: Role, permission: str) -> bool:
    """Whether ``role`` has ``permission``."""
    return permission in GRANTS[role]
