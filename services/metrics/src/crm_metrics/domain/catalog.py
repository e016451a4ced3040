"""The KPI catalogue: every KPI the service computes, its kind, unit, versions and dimensions.

KPIS.md is the contract; docs/kpis.md says how each definition is implemented and which
ambiguities were resolved how. A KPI is computed from *contributions* (see
:mod:`crm_metrics.domain.contributions`): every ticket, survey and mention is turned into a list
of ``Contribution(kpi, at, dims, value)``; aggregates add them up per hour and dimension cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """How contributions of a KPI are aggregated (mirrors ``crm.metrics.v1.KpiKind``)."""

    DISTRIBUTION = "distribution"  # value = one observation (seconds; may be negative for gaps)
    RATE = "rate"  # value = 1.0 (counts in the numerator) or 0.0; every one is in the denominator
    COUNT = "count"  # value = an amount to add (1 for a count, followers for reach)
    SCORE = "score"  # value = an integer survey score
    SENTIMENT = "sentiment"  # value = a polarity in [-1, 1]
    LEVEL = "level"  # value = +1 / -1, a change of a level (backlog)


# Dimensions a contribution can carry. A ticket's contributions carry its *current* values
# (a reassignment re-attributes the whole ticket).
TICKET_DIMENSIONS: tuple[str, ...] = (
    "channel",
    "type",
    "priority",
    "team",
    "agent",
    "tier",
    "wait_bucket",
)
ISSUE_DIMENSIONS: tuple[str, ...] = (*TICKET_DIMENSIONS, "category", "product")
MENTION_DIMENSIONS: tuple[str, ...] = ("network", "brand")
DIMENSIONS: tuple[str, ...] = (*ISSUE_DIMENSIONS, *MENTION_DIMENSIONS)

# Customer-wait buckets (KPIS.md "wait vs satisfaction"): upper bounds in seconds.
WAIT_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1h", 3600.0),
    ("1-4h", 4 * 3600.0),
    ("4-12h", 12 * 3600.0),
    ("12-24h", 24 * 3600.0),
    (">24h", float("inf")),
)


def wait_bucket(seconds: float) -> str:
    """The customer-wait bucket label of a wait."""
    for label, upper in WAIT_BUCKETS:
        if seconds < upper:
            return label
    return WAIT_BUCKETS[-1][0]  # pragma: no cover - inf bounds the last bucket


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """One KPI of the catalogue."""

    name: str
    kind: Kind
    unit: str
    description: str
    dimensions: tuple[str, ...] = TICKET_DIMENSIONS
    versions: tuple[int, ...] = (1,)
    # The aggregate another name reads (company_frt is frt_business seen from the gap).
    alias_of: str | None = None
    # The version computed unless the definitions name another; None: the first. A rule fixed
    # to follow the contract (KPIS.md) is a new version made current, and the older ones stay
    # selectable for a replay (frt@2, by contrast, is an alternative next to the contract's @1).
    current: int | None = None

    @property
    def version(self) -> int:
        """The default definition version: ``current``, else the first (the contract's)."""
        return self.versions[0] if self.current is None else self.current


_SPECS: tuple[KpiSpec, ...] = (
    # --- service desk, operational ---------------------------------------------------------
    KpiSpec(
        "tickets_created",
        Kind.COUNT,
        "1",
        "Tickets opened, at their creation time (issue frequency).",
        ISSUE_DIMENSIONS,
    ),
    KpiSpec(
        "frt_wall",
        Kind.DISTRIBUTION,
        "s",
        "Creation → first public human agent reply (v2: agent or bot), wall clock; at the reply.",
        versions=(1, 2),
    ),
    KpiSpec(
        "frt_business",
        Kind.DISTRIBUTION,
        "s",
        "First response time on the ticket's business calendar minus paused time; at the reply.",
        versions=(1, 2),
    ),
    KpiSpec(
        "awaiting_first_response",
        Kind.LEVEL,
        "1",
        "Tickets not yet answered (+1 at creation, -1 at the first response).",
    ),
    KpiSpec(
        "unanswered_age",
        Kind.COUNT,
        "s",
        "Age of the tickets still awaiting their first response, now (totals only).",
    ),
    KpiSpec(
        "nrt_wall",
        Kind.DISTRIBUTION,
        "s",
        "First unanswered customer message after the first response → next public human "
        "reply, per run (v2: a resolve ends a run unanswered); at the reply.",
        versions=(1, 2),
        current=2,
    ),
    KpiSpec(
        "nrt_business",
        Kind.DISTRIBUTION,
        "s",
        "NRT on the business clock (v2: a resolve ends a run unanswered).",
        versions=(1, 2),
        current=2,
    ),
    KpiSpec(
        "resolved_without_reply",
        Kind.COUNT,
        "1",
        "Runs of customer messages after the first response that a resolve ended with no "
        "public human reply; at the resolve.",
    ),
    KpiSpec(
        "resolution_wall",
        Kind.DISTRIBUTION,
        "s",
        "Creation → last transition into resolved (full resolution); at that transition.",
    ),
    KpiSpec(
        "first_resolution_wall",
        Kind.DISTRIBUTION,
        "s",
        "Creation → first transition into resolved; at that transition.",
    ),
    KpiSpec(
        "resolution_business",
        Kind.DISTRIBUTION,
        "s",
        "Business time in non-pausing, non-resolved states until the last resolve.",
    ),
    KpiSpec(
        "first_resolution_business",
        Kind.DISTRIBUTION,
        "s",
        "Business time in non-pausing states from creation to the first resolve; at that "
        "transition.",
    ),
    KpiSpec(
        "sla_first_response",
        Kind.RATE,
        "%",
        "First-response target met / (met + breached), at the target's due time.",
    ),
    KpiSpec(
        "sla_next_response",
        Kind.RATE,
        "%",
        "Next-response targets met / (met + breached), per cycle, at the due time.",
    ),
    KpiSpec(
        "sla_resolution",
        Kind.RATE,
        "%",
        "Resolution target met / (met + breached), at the due time.",
    ),
    KpiSpec(
        "backlog",
        Kind.LEVEL,
        "1",
        "Open tickets (+1 at creation and reopen, -1 at resolve or close).",
    ),
    KpiSpec(
        "backlog_age",
        Kind.COUNT,
        "s",
        "Age distribution of the tickets open now (totals only).",
    ),
    KpiSpec(
        "reopen_rate",
        Kind.RATE,
        "%",
        "Resolved tickets reopened at least once / resolved tickets; at the last resolve.",
    ),
    KpiSpec(
        "first_contact_resolution",
        Kind.RATE,
        "%",
        "Resolved with exactly one public agent reply and no reopen / resolved.",
    ),
    KpiSpec(
        "same_day_resolution",
        Kind.RATE,
        "%",
        "Resolved on the local calendar day they were opened / resolved.",
    ),
    KpiSpec(
        "chasers",
        Kind.COUNT,
        "1",
        "Customer follow-up messages before the first response; at the message.",
    ),
    KpiSpec(
        "tickets_handled",
        Kind.COUNT,
        "1",
        "Resolved tickets, by their assignee (agent scorecard); at the last resolve.",
    ),
    # --- perception --------------------------------------------------------------------------
    KpiSpec("csat", Kind.SCORE, "%", "CSAT % (4-5 of 1-5) and mean; at the answer."),
    KpiSpec("nps", Kind.SCORE, "score", "NPS = % promoters (9-10) - % detractors (0-6)."),
    KpiSpec("effort", Kind.SCORE, "%", "Customer effort 1-7: % easy (5-7) and mean."),
    KpiSpec("purchase_intent", Kind.SCORE, "%", "Purchase intent 0-10: top-2-box % and mean."),
    KpiSpec("loyalty", Kind.SCORE, "%", "Loyalty 0-10: top-2-box % and mean."),
    KpiSpec(
        "survey_response_rate",
        Kind.RATE,
        "%",
        "Surveys answered / surveys sent; at the send time.",
    ),
    KpiSpec(
        "comment_sentiment",
        Kind.SENTIMENT,
        "1",
        "Net sentiment of survey comments ((pos - neg) / all, thresholds ±0.05).",
    ),
    KpiSpec(
        "mention_sentiment",
        Kind.SENTIMENT,
        "1",
        "Net sentiment of social mentions; at the post time.",
        MENTION_DIMENSIONS,
    ),
    KpiSpec("mentions", Kind.COUNT, "1", "Social mentions, at the post time.", MENTION_DIMENSIONS),
    KpiSpec(
        "reach",
        Kind.COUNT,
        "1",
        "Σ followers of the mentions' authors, at the post time.",
        MENTION_DIMENSIONS,
    ),
    KpiSpec(
        "share_of_voice",
        Kind.RATE,
        "%",
        "Mentions of the company's own brands / all tracked mentions.",
        MENTION_DIMENSIONS,
    ),
    # --- the perception gap --------------------------------------------------------------------
    KpiSpec(
        "company_frt",
        Kind.DISTRIBUTION,
        "s",
        "FRT on the business clock from creation (what the company measures).",
        versions=(1, 2),
        alias_of="frt_business",
    ),
    KpiSpec(
        "customer_wait",
        Kind.DISTRIBUTION,
        "s",
        "First touch on any channel → first public human reply delivered (send time without "
        "a receipt), wall clock; at the reply.",
    ),
    KpiSpec(
        "perception_gap",
        Kind.DISTRIBUTION,
        "s",
        "customer_wait - company_frt (signed); at the reply.",
    ),
    KpiSpec(
        "perceived_wait",
        Kind.DISTRIBUTION,
        "s",
        "The wait the customer says it felt like (survey); at the answer.",
    ),
    KpiSpec(
        "stated_gap",
        Kind.DISTRIBUTION,
        "s",
        "perceived_wait - company_frt (signed); at the answer.",
    ),
    KpiSpec(
        "expectation_breach",
        Kind.RATE,
        "%",
        "Answered tickets whose customer_wait exceeded the expected wait; at the reply.",
    ),
    KpiSpec(
        "green_inside_red_outside",
        Kind.RATE,
        "%",
        "Tickets with every SLA target met and a bad customer experience / tickets with "
        "every SLA target met; at the ticket's creation.",
    ),
    KpiSpec(
        "silence",
        Kind.DISTRIBUTION,
        "s",
        "Longest wall-clock wait with no public update: a human reply, a pause or a resolve "
        "ends a wait, the customer's next message starts one (v1: any public company message, "
        "a bot's included, ends it); at the last resolve.",
        versions=(1, 2),
        current=2,
    ),
)

CATALOG: dict[str, KpiSpec] = {spec.name: spec for spec in _SPECS}


def aggregate_name(name: str) -> str:
    """The name of the aggregate a KPI reads (itself, or what it is an alias of)."""
    spec = CATALOG[name]
    return spec.alias_of or spec.name


@dataclass(frozen=True, slots=True)
class Definitions:
    """The definition version of every KPI a computation uses (default: each KPI's current)."""

    versions: dict[str, int] = field(default_factory=dict)

    def version(self, kpi: str) -> int:
        """The version of ``kpi`` in force."""
        return self.versions.get(kpi, CATALOG[kpi].version)

    def label(self, kpi: str) -> str:
        """``name@version``."""
        return f"{kpi}@{self.version(aggregate_name(kpi))}"

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...]) -> Definitions:
        """Definitions from ``["frt_wall@2", ...]``; raises ValueError on unknown names/versions."""
        versions: dict[str, int] = {}
        for item in items:
            name, _, raw = item.partition("@")
            spec = CATALOG.get(name)
            if spec is None:
                raise ValueError(f"unknown KPI {name!r}")
            try:
                version = int(raw)
            except ValueError:
                raise ValueError(f"{item!r}: the version must be a number") from None
            if version not in spec.versions:
                raise ValueError(f"{name} has no version {version} (has {list(spec.versions)})")
            versions[aggregate_name(name)] = version
        return cls(versions)

    def labels(self) -> list[str]:
        """Every non-alias KPI as ``name@version``, for responses and namespace metadata."""
        return [
            f"{name}@{self.version(name)}" for name, spec in CATALOG.items() if not spec.alias_of
        ]
