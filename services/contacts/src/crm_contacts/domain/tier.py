"""Value/profitability tiers, shared by contacts and organisations."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """How valuable a customer is to the company (same member names as the API enum)."""

    STANDARD = "STANDARD"
    SILVER = "SILVER"
    GOLD = "GOLD"
    PLATINUM = "PLATINUM"
