"""Headline KPIs as OpenTelemetry gauges, for dashboards that read metrics, not the API.

Every tenant of the live view gets, over the last 24 hours: FRT (business, p90), customer wait
(p90), perception gap (p50), SLA first-response attainment, green-inside-red-outside rate, CSAT %
and NPS, plus the current backlog. The gauges are computed from the in-memory view when the
metrics reader collects (no database access).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from crm_metrics.checkpoint import LIVE
from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.cube import CubeView
from crm_metrics.domain.query import KpiQuery, evaluate
from crm_metrics.view import KpiViews

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)

# (KPI, which number of its result, gauge name)
HEADLINES: tuple[tuple[str, str, str], ...] = (
    ("frt_business", "p90", "crm.kpi.frt_business.p90"),
    ("customer_wait", "p90", "crm.kpi.customer_wait.p90"),
    ("perception_gap", "p50", "crm.kpi.perception_gap.p50"),
    ("sla_first_response", "value", "crm.kpi.sla_first_response"),
    ("green_inside_red_outside", "value", "crm.kpi.green_inside_red_outside"),
    ("csat", "value", "crm.kpi.csat"),
    ("nps", "value", "crm.kpi.nps"),
    ("backlog", "value", "crm.kpi.backlog"),
)


def headline_observations(view: CubeView, now: datetime) -> list[tuple[str, str, float]]:
    """``(gauge name, tenant, value)`` for every tenant of the view with data."""
    out: list[tuple[str, str, float]] = []
    query = KpiQuery(
        kpis=[kpi for kpi, _, _ in HEADLINES],
        start=now - timedelta(hours=24),
        end=now,
        granularity="total",
        namespace=LIVE,
    )
    for tenant in sorted(view.tenants()):
        result = evaluate(view, tenant, query, Definitions(), now)
        if not result.groups:
            continue
        for (_kpi, field, name), total in zip(HEADLINES, result.groups[0].totals, strict=True):
            number = getattr(total, field)
            if number is not None:
                out.append((name, tenant, float(number)))
    return out


class KpiGauges:
    """Registers one observable gauge per headline KPI, reading the live view."""

    def __init__(self, views: KpiViews) -> None:
        self.views = views
        self._cache: tuple[int, list[tuple[str, str, float]]] = (-1, [])
        for _kpi, _field, name in HEADLINES:
            meter.create_observable_gauge(name, callbacks=[self._callback(name)])

    def _observations(self) -> list[tuple[str, str, float]]:
        view = self.views.peek(LIVE)
        if view is None:
            return []
        if self._cache[0] != view.version:
            try:
                self._cache = (view.version, headline_observations(view, datetime.now(UTC)))
            except Exception:  # a gauge must never break the metrics export
                log.exception("computing the KPI gauges failed")
                return []
        return self._cache[1]

    def _callback(self, gauge: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, {"tenant": tenant})
                for name, tenant, value in self._observations()
                if name == gauge
            ]

        return observe
