"""Configuration of the sales service (environment variables, validated at start-up)."""

from __future__ import annotations

from crm_platform.settings import ServiceSettings

TOPIC = "crm.sales.v1"


class SalesSettings(ServiceSettings):
    """Everything in :class:`ServiceSettings`; the sales service has no settings of its own yet."""

    service_name: str = "sales"
