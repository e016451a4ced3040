"""gRPC handlers of ``crm.metrics.v1.MetricsService``: requests in, domain queries, responses out.

The tenant is always the caller's (``current_call``). Queries are answered from the namespace's
:class:`~crm_metrics.domain.cube.CubeView` (kept fresh by :class:`~crm_metrics.view.KpiViews`);
one ticket's clocks are derived on demand from its checkpointed facts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.metrics.v1 import metrics_pb2 as mpb
from crm.metrics.v1 import metrics_pb2_grpc
from crm_metrics.calendars import CalendarHub
from crm_metrics.checkpoint import LIVE, NAMESPACES, TICKETS, load_calendars
from crm_metrics.domain.aggregate import KpiResult
from crm_metrics.domain.catalog import CATALOG, DIMENSIONS, WAIT_BUCKETS, Definitions, Kind
from crm_metrics.domain.clocks import derive
from crm_metrics.domain.facts import TicketFacts
from crm_metrics.domain.query import KpiQuery, QueryResult, evaluate
from crm_metrics.settings import MetricsSettings
from crm_metrics.view import KpiViews
from crm_platform.context import current_call
from crm_platform.errors import NotFound
from crm_platform.mongo import MongoStore

Context = Any

_GRANULARITY = {
    mpb.GRANULARITY_UNSPECIFIED: "day",
    mpb.GRANULARITY_HOUR: "hour",
    mpb.GRANULARITY_DAY: "day",
    mpb.GRANULARITY_TOTAL: "total",
}
_KIND = {
    Kind.DISTRIBUTION: mpb.KPI_KIND_DISTRIBUTION,
    Kind.RATE: mpb.KPI_KIND_RATE,
    Kind.COUNT: mpb.KPI_KIND_COUNT,
    Kind.SCORE: mpb.KPI_KIND_SCORE,
    Kind.SENTIMENT: mpb.KPI_KIND_SENTIMENT,
    Kind.LEVEL: mpb.KPI_KIND_LEVEL,
}
GAP_CLOCKS = (
    "company_frt",
    "customer_wait",
    "perception_gap",
    "perceived_wait",
    "stated_gap",
    "silence",
)
GAP_RATES = ("green_inside_red_outside", "expectation_breach")
# Scanning tickets for the histogram and the worst tickets stops here (the KPIs do not).
MAX_GAP_SCAN = 200_000


def timestamp(at: datetime) -> Timestamp:
    """A protobuf timestamp."""
    out = Timestamp()
    out.FromDatetime(at)
    return out


def _time(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def kpi_value(result: KpiResult) -> mpb.KpiValue:
    """A domain result as a ``KpiValue`` (optional fields unset when there is no data)."""
    value = mpb.KpiValue(
        kpi=result.kpi,
        kind=_KIND[result.kind],
        count=result.count,
        sum=result.sum,
        numerator=result.numerator,
        denominator=result.denominator,
        unit=result.unit,
    )
    for name in ("value", "mean", "p50", "p90", "p99"):
        number = getattr(result, name)
        if number is not None and math.isfinite(number):
            setattr(value, name, number)
    return value


def query_response(result: QueryResult) -> mpb.GetKpisResponse:
    """A domain query result as a ``GetKpisResponse``."""
    response = mpb.GetKpisResponse(
        definitions=result.definitions, namespace=result.namespace, timezone=result.timezone
    )
    if result.watermark is not None:
        response.watermark_time.CopyFrom(timestamp(result.watermark))
    for group in result.groups:
        out = response.groups.add(value=group.value)
        for point in group.points:
            out.points.add(
                bucket_start=timestamp(point.bucket_start),
                values=[kpi_value(v) for v in point.values],
            )
        out.totals.extend(kpi_value(v) for v in group.totals)
    return response


class MetricsService(metrics_pb2_grpc.MetricsServiceServicer):
    """KPI queries over the views of every namespace."""

    def __init__(
        self, views: KpiViews, store: MongoStore, hub: CalendarHub, settings: MetricsSettings
    ) -> None:
        self.views = views
        self.store = store
        self.hub = hub
        self.settings = settings
        self.kpi_settings = settings.kpi_settings()
        self._definitions: dict[str, Definitions] = {}

    async def definitions(self, namespace: str) -> Definitions:
        """The definitions a namespace was computed under; NOT_FOUND for an unknown one."""
        known = self._definitions.get(namespace)
        if known is None:
            doc = await self.store.db[NAMESPACES].find_one({"_id": namespace})
            if doc is None:
                raise NotFound("namespace", namespace)
            known = self._definitions[namespace] = Definitions.parse(doc["definitions"])
        return known

    def use_definitions(self, namespace: str, definitions: Definitions) -> None:
        """Serve a namespace under known definitions without asking the database."""
        self._definitions[namespace] = definitions

    def _query(self, request: mpb.GetKpisRequest) -> KpiQuery:
        return KpiQuery(
            kpis=list(request.kpis),
            start=_time(request.start_time),
            end=_time(request.end_time),
            granularity=_GRANULARITY[request.granularity],
            filters=dict(request.filters),
            group_by=request.group_by or None,
            timezone=request.timezone,
            namespace=request.namespace or LIVE,
        )

    async def _evaluate(self, query: KpiQuery) -> QueryResult:
        definitions = await self.definitions(query.namespace)
        view = await self.views.view(query.namespace)
        return evaluate(view, current_call().tenant_id, query, definitions, datetime.now(UTC))

    async def GetKpis(self, request: mpb.GetKpisRequest, context: Context) -> mpb.GetKpisResponse:
        return query_response(await self._evaluate(self._query(request)))

    async def StreamKpis(
        self, request: mpb.StreamKpisRequest, context: Context
    ) -> AsyncIterator[mpb.StreamKpisResponse]:
        query = self._query(request.query)
        length = query.end - query.start
        interval = (
            request.min_interval.ToTimedelta().total_seconds()
            if request.HasField("min_interval")
            else 1.0
        )
        view = await self.views.view(query.namespace)
        last_version = -1
        while True:
            if request.follow:
                end = datetime.now(UTC)
                query = _slide(query, end - length, end)
            if view.version != last_version or request.follow:
                last_version = view.version
                yield mpb.StreamKpisResponse(result=query_response(await self._evaluate(query)))
            await asyncio.sleep(interval)
            await self.views.wait_for_change(timeout=max(0.0, 30.0 - interval))

    async def GetTicketClocks(
        self, request: mpb.GetTicketClocksRequest, context: Context
    ) -> mpb.GetTicketClocksResponse:
        namespace = request.namespace or LIVE
        definitions = await self.definitions(namespace)
        tenant = current_call().tenant_id
        docs = [
            doc
            async for doc in self.store.db[TICKETS].find(
                {"ns": namespace, "tenant": tenant, "ticket_id": request.ticket_id}
            )
        ]
        if not docs:
            raise NotFound("ticket", request.ticket_id)
        doc = max(docs, key=lambda d: len(d["facts"]["applied"]))
        facts = TicketFacts.from_doc(doc["facts"])
        calendar = None
        if facts.calendar is not None:
            calendar = self.hub.directory.get(tenant, *facts.calendar)
            if calendar is None:
                await load_calendars(self.store, self.hub)
                calendar = self.hub.directory.get(tenant, *facts.calendar)
        clocks = derive(facts, calendar, replace(self.kpi_settings, definitions=definitions))
        out = mpb.TicketClocks(
            ticket_id=facts.ticket_id,
            contact_id=facts.contact_id,
            dimensions={k: v for k, v in clocks.dims.items() if v},
            calendar_id=facts.calendar[0] if facts.calendar else "",
            calendar_version=facts.calendar[1] if facts.calendar else 0,
            flags=sorted(
                clocks.flags | ({"calendar_missing"} if clocks.calendar_missing else set())
            ),
            sla_outcomes=clocks.sla_outcomes,
            event_count=len(facts.applied),
        )
        if facts.last_event_ms:
            out.watermark_time.CopyFrom(timestamp(_ms(facts.last_event_ms)))
        for clock in clocks.clocks.values():
            item = out.clocks.add(
                name=clock.name,
                start_event_ids=list(clock.start_events),
                end_event_ids=list(clock.end_events),
                explanation=clock.explanation,
            )
            if clock.seconds is not None:
                item.seconds = clock.seconds
            if clock.start_ms is not None:
                item.start_time.CopyFrom(timestamp(_ms(clock.start_ms)))
            if clock.end_ms is not None:
                item.end_time.CopyFrom(timestamp(_ms(clock.end_ms)))
        return mpb.GetTicketClocksResponse(clocks=out)

    async def GetPerceptionGap(
        self, request: mpb.GetPerceptionGapRequest, context: Context
    ) -> mpb.GetPerceptionGapResponse:
        namespace = request.namespace or LIVE
        start, end = _time(request.start_time), _time(request.end_time)
        filters = dict(request.filters)
        base = KpiQuery(
            kpis=[*GAP_CLOCKS, *GAP_RATES],
            start=start,
            end=end,
            granularity="total",
            filters=filters,
            namespace=namespace,
        )
        overall = await self._evaluate(base)
        by_wait = await self._evaluate(
            KpiQuery(
                kpis=["csat", "nps", "customer_wait"],
                start=start,
                end=end,
                granularity="total",
                filters=filters,
                group_by="wait_bucket",
                namespace=namespace,
            )
        )
        response = mpb.GetPerceptionGapResponse(definitions=overall.definitions)
        totals = overall.groups[0].totals if overall.groups else []
        response.clocks.extend(kpi_value(t) for t in totals[: len(GAP_CLOCKS)])
        response.rates.extend(kpi_value(t) for t in totals[len(GAP_CLOCKS) :])
        groups = {group.value: group.totals for group in by_wait.groups}
        for label, _upper in WAIT_BUCKETS:
            values = groups.get(label)
            bucket = response.wait_buckets.add(label=label)
            if values:
                bucket.csat.CopyFrom(kpi_value(values[0]))
                bucket.nps.CopyFrom(kpi_value(values[1]))
                bucket.tickets = values[2].count
        histogram, worst = await self._scan_gaps(
            namespace, start, end, filters, request.worst_limit or 10
        )
        response.gap_histogram.extend(
            mpb.GapBin(lower_hours=lower, tickets=count)
            for lower, count in sorted(histogram.items())
        )
        response.worst_tickets.extend(worst)
        return response

    async def _scan_gaps(
        self, namespace: str, start: datetime, end: datetime, filters: dict[str, str], limit: int
    ) -> tuple[dict[int, int], list[mpb.TicketGap]]:
        query: dict[str, Any] = {
            "ns": namespace,
            "tenant": current_call().tenant_id,
            "gap.reply_ms": {"$gte": _to_ms(start), "$lt": _to_ms(end)},
        }
        for name, value in filters.items():
            query[f"dims.{name}"] = value
        histogram: dict[int, int] = {}
        rows: list[tuple[float, dict[str, Any]]] = []
        cursor = (
            self.store.db[TICKETS]
            .find(query, {"gap": 1, "ticket_id": 1, "contact_id": 1})
            .limit(MAX_GAP_SCAN)
        )
        async for doc in cursor:
            gap = doc["gap"]
            lower = math.floor(gap["gap_s"] / 3600)
            histogram[lower] = histogram.get(lower, 0) + 1
            rows.append((gap["gap_s"], doc))
        rows.sort(key=lambda row: (-row[0], row[1]["ticket_id"]))
        worst = []
        for _gap, doc in rows[:limit]:
            gap = doc["gap"]
            worst.append(
                mpb.TicketGap(
                    ticket_id=doc["ticket_id"],
                    contact_id=doc.get("contact_id", ""),
                    company_frt_seconds=gap.get("company_frt_s") or 0.0,
                    customer_wait_seconds=gap.get("wait_s") or 0.0,
                    perception_gap_seconds=gap["gap_s"],
                    first_touch_time=timestamp(_ms(gap["touch_ms"])),
                    first_response_time=timestamp(_ms(gap["reply_ms"])),
                )
            )
        return histogram, worst

    async def ListKpis(
        self, request: mpb.ListKpisRequest, context: Context
    ) -> mpb.ListKpisResponse:
        return mpb.ListKpisResponse(
            kpis=[
                mpb.KpiDefinition(
                    name=spec.name,
                    kind=_KIND[spec.kind],
                    unit=spec.unit,
                    version=spec.version,
                    versions=list(spec.versions),
                    description=spec.description,
                    dimensions=list(spec.dimensions),
                )
                for spec in CATALOG.values()
            ],
            dimensions=list(DIMENSIONS),
        )


def _slide(query: KpiQuery, start: datetime, end: datetime) -> KpiQuery:
    return KpiQuery(
        kpis=query.kpis,
        start=start,
        end=end,
        granularity=query.granularity,
        filters=query.filters,
        group_by=query.group_by,
        timezone=query.timezone,
        namespace=query.namespace,
    )


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
