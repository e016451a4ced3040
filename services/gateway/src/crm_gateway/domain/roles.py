"""Roles and what they may do.

A permission is ``<area>.<read|write>`` (see :mod:`crm_gateway.routes`: every operation has
exactly one). Roles are fixed here rather than configured: they are part of the product's
contract with its users, and a test checks every role against every operation.

The sales areas: ``sales`` (opportunities, quotes and their PDF, lead conversion, territory
re-assignment), ``leads`` (creating, working, qualifying and disqualifying leads),
``sales_config`` (pipelines, products with their price books, territory rules, the base currency
and exchange rates, the follow-up rule), ``orders`` (orders, returns and costs from the ERP) and
``activities`` (calls, meetings, e-mails, tasks), ``appointments`` (free slots, bookings and
their .ics), ``campaigns`` (campaigns) and ``campaign_feed`` (campaign interactions and costs as
the marketing tools report them). The matrix is written down in docs/gateway.md and in
services/gateway/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Role(StrEnum):
    """Who a credential acts as."""

    ADMIN = "admin"  # everything, including the service desk's and sales' configuration
    AGENT = "agent"  # works tickets and customers; reads KPIs and sales; hands on leads
    SALES = "sales"  # works leads, opportunities and quotes, and contacts; reads tickets
    ANALYST = "analyst"  # reads everything, changes nothing
    INTEGRATION = "integration"  # other systems: feeds contacts, tickets, mentions, surveys, leads


_SERVICE_READS = ("contacts", "tickets", "config", "social", "surveys", "kpis", "customers")
_SALES_READS = (
    "sales",
    "leads",
    "sales_config",
    "orders",
    "activities",
    "appointments",
    "campaigns",
)  # (campaign_feed has writes only)
_READS = _SERVICE_READS + _SALES_READS

GRANTS: Mapping[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(
        {f"{area}.read" for area in _READS}
        | {
            f"{area}.write"
            for area in (
                "contacts",
                "tickets",
                "config",
                "social",
                "surveys",
                "sales",
                "leads",
                "sales_config",
                "orders",
                "activities",
                "appointments",
                "campaigns",
                "campaign_feed",
            )
        }
        | {"identity.read"}
    ),
    Role.AGENT: frozenset(
        {f"{area}.read" for area in _READS}
        | {"contacts.write", "tickets.write", "social.write", "surveys.write", "identity.read"}
        # An agent who sees buying interest (a mention, a ticket) passes it on as a lead, and
        # logs calls and follow-ups as activities.
        | {"leads.write", "activities.write", "appointments.write"}
    ),
    Role.SALES: frozenset(
        {"contacts.read", "contacts.write", "tickets.read", "customers.read", "identity.read"}
        # Reps watch social listening for buying interest (the lead's origin mention).
        | {"social.read"}
        | {f"{area}.read" for area in _SALES_READS}
        | {"sales.write", "leads.write", "activities.write", "appointments.write"}
        | {"campaigns.write", "campaign_feed.write"}
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
            # Web forms and other systems feed leads in; the ERP feeds orders, returns and costs;
            # a phone system logs calls; they read the catalogue and the currency settings.
            "leads.read",
            "leads.write",
            "orders.read",
            "orders.write",
            "activities.read",
            "activities.write",
            # The booking widget books appointments; marketing tools feed campaign interactions
            # and costs (and read the campaigns they report on).
            "appointments.read",
            "appointments.write",
            "campaigns.read",
            "campaign_feed.write",
            "sales_config.read",
        }
    ),
}
"""The permissions of each role."""


def allows(role: Role, permission: str) -> bool:
    """Whether ``role`` has ``permission``."""
    return permission in GRANTS[role]
