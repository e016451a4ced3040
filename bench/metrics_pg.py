"""The helpdesk baseline for the metrics benchmark: the same KPIs computed on demand with SQL.

Common helpdesks keep one row per ticket (timestamps and a few numbers the application
precomputes, such as business-hours FRT) and compute a dashboard's KPIs when it is opened, with
SQL over that table. This module builds that side in PostgreSQL (Debian's server, started by
``scripts/postgres.sh`` under ``.crm/bench/pg`` on 127.0.0.1 and a free port), so that the
metrics service's ``GetKpis`` (pre-aggregated, mergeable state) can be compared with it in the
same run:

1. a ``tickets`` table as a helpdesk stores it, with the indexes a helpdesk has
   (``(tenant_id, created_at)``, ``(tenant_id, first_response_at)``, ``(tenant_id, resolved_at)``
   and the primary key ``(tenant_id, id)``);
2. N tickets over D days from a seeded generator (:func:`generate_tickets`), loaded with COPY,
   then indexed and ``VACUUM ANALYZE``\\d;
3. one dashboard = the KPI set ``GetKpis`` serves, for one tenant, by day and in total:
   **one SQL statement per dashboard panel**, each filtered on the panel's own event time (as
   docs/kpis.md buckets each KPI) and grouped with ``GROUPING SETS ((day), ())`` so that one
   statement returns the daily rows and the total row:

   =============== ============================ ===============================================
   panel           event time (day bucket)      KPIs
   =============== ============================ ===============================================
   volume          ``created_at``               tickets created
   first_response  ``first_response_at``        FRT wall and business p50/p90/p99/mean/count;
                                                customer_wait p50/p90; perception gap p50/p90
   resolution      ``resolved_at`` (last)       resolution wall p50/p90/p99; reopen rate;
                                                first-contact resolution
   sla             ``first_response_due_at``    SLA first-response attainment
   satisfaction    ``survey_answered_at``       CSAT % (and mean); NPS
   =============== ============================ ===============================================

   Percentiles are ``percentile_cont(...) WITHIN GROUP (ORDER BY ...)`` (exact, interpolated).
   The statements run one after the other on one connection, as a dashboard backend does;
   the latency of a dashboard is the time for all five (rows fetched).

Use from another benchmark (synchronous; from asyncio, wrap the calls in ``asyncio.to_thread``)::

    with metrics_pg.prepare(1_000_000, 90, seed=7) as pg:   # starts, loads; stops at the end
        latencies_ms = pg.query_latencies(30)              # after 3 warm-ups
        figures = pg.result(latencies_ms)                  # a dict of plain numbers

Standalone (prints the figures like the other benchmarks, stops the server, removes its data)::

    .venv/bin/python bench/metrics_pg.py [--tickets 1000000] [--days 90] [--seed 7]
                                         [--repeats 30] [--warmups 3] [--keep]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, LiteralString, NamedTuple, Self

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from crm_devstack.procs import free_ports, pid_alive

REPO = Path(__file__).resolve().parents[1]
POSTGRES_SH = REPO / "scripts" / "postgres.sh"
TENANT = "bench"
TIMEZONE = "UTC"
# The server's settings: what a helpdesk would give PostgreSQL on this machine (24 GiB, 2 cores,
# SSD), pgtune-like. fsync, full_page_writes and synchronous_commit keep their (safe) defaults.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "2GB",
    "effective_cache_size": "16GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "max_connections": "20",
}
STATEMENT_TIMEOUT_MS = 600_000  # no statement may hang the benchmark


def bench_root() -> Path:
    """``$CRM_HOME/bench/pg`` (``.crm/bench/pg`` in the repository by default)."""
    return Path(os.environ.get("CRM_HOME", REPO / ".crm")) / "bench" / "pg"


# --- the ticket generator ----------------------------------------------------------------------

CHANNELS = ("email", "web_form", "live_chat", "phone", "social", "mobile")
CHANNEL_WEIGHTS = (0.42, 0.18, 0.16, 0.10, 0.08, 0.06)
# Median FRT (seconds) per channel; lognormal around it (sigma FRT_SIGMA): minutes to days.
CHANNEL_FRT_MEDIAN = {
    "email": 3 * 3600.0,
    "web_form": 3 * 3600.0,
    "live_chat": 120.0,
    "phone": 600.0,
    "social": 45 * 60.0,
    "mobile": 3600.0,
}
FRT_SIGMA = 1.5
# The customer's expectation when the survey does not say (docs/kpis.md's channel defaults).
CHANNEL_EXPECTED_WAIT = {
    "email": 24 * 3600.0,
    "web_form": 24 * 3600.0,
    "live_chat": 300.0,
    "phone": 300.0,
    "social": 2 * 3600.0,
    "mobile": 4 * 3600.0,
}
TYPES = ("request", "complaint", "return", "information_request", "incident")
TYPE_WEIGHTS = (0.40, 0.15, 0.12, 0.23, 0.10)
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_WEIGHTS = (0.25, 0.55, 0.15, 0.05)
# Business-clock SLA targets per priority (seconds): first response, resolution.
FIRST_RESPONSE_TARGET = {"low": 24 * 3600, "normal": 8 * 3600, "high": 4 * 3600, "urgent": 3600}
RESOLUTION_TARGET = {"low": 80 * 3600, "normal": 40 * 3600, "high": 24 * 3600, "urgent": 8 * 3600}
TIERS = ("bronze", "silver", "gold", "platinum")
TIER_WEIGHTS = (0.50, 0.30, 0.15, 0.05)
TEAMS = tuple(f"team-{i:02d}" for i in range(8))
AGENTS_PER_TEAM = 25
CSAT_WEIGHTS = (0.07, 0.05, 0.10, 0.28, 0.50)  # scores 1..5, for a short wait
CSAT_WEIGHTS_LONG_WAIT = (0.18, 0.12, 0.20, 0.25, 0.25)  # customer_wait > 24 h
NPS_WEIGHTS = (0.03, 0.02, 0.02, 0.03, 0.03, 0.05, 0.07, 0.10, 0.15, 0.20, 0.30)  # scores 0..10
# Share of the day's tickets per UTC hour (office-hours peak) and per weekday (Mon..Sun).
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 8, 7, 8, 9, 9, 8, 6, 5, 4, 3, 2, 2, 1)
WEEKDAY_WEIGHTS = (1.15, 1.10, 1.05, 1.0, 0.95, 0.45, 0.35)

ANSWERED = 0.83  # tickets that get a first public human reply (before "now" cuts some off)
RESOLVED_IF_ANSWERED = 0.78  # of those, resolved (~60 % of all tickets end up resolved)
SURVEYED_IF_RESOLVED = 0.34  # surveys answered: ~20 % of all tickets
NO_SLA_POLICY = 0.10  # tickets without an SLA policy: no SLA outcome

# The business calendar the app uses to precompute business seconds: Mon-Fri 08:00-18:00 UTC.
DAY = 86_400
OPENS, CLOSES = 8 * 3600, 18 * 3600
BUSINESS_DAY = CLOSES - OPENS
BUSINESS_WEEK = 5 * BUSINESS_DAY
MONDAY = 4  # 1970-01-05, the first Monday after the epoch, as a day number


def business_clock(t: float) -> float:
    """Business seconds from Monday 1970-01-05 00:00 UTC to epoch time ``t`` (monotonic)."""
    day, second = divmod(t, DAY)
    week, weekday = divmod(int(day) - MONDAY, 7)
    into = min(max(second - OPENS, 0.0), BUSINESS_DAY) if weekday < 5 else 0.0
    return week * BUSINESS_WEEK + min(weekday, 5) * BUSINESS_DAY + into


def business_deadline(t: float, business_seconds: float) -> float:
    """The epoch time when ``business_seconds`` of business time have elapsed after ``t``."""
    week, rest = divmod(business_clock(t) + business_seconds, BUSINESS_WEEK)
    weekday, into = divmod(rest, BUSINESS_DAY)
    return (MONDAY + week * 7 + weekday) * DAY + OPENS + into


class Ticket(NamedTuple):
    """One ticket as a helpdesk stores it. Times are epoch seconds (UTC), ``None`` = NULL."""

    id: int
    created_at: float
    first_touch_at: float
    first_response_at: float | None
    first_response_delivered_at: float | None
    first_resolved_at: float | None
    resolved_at: float | None  # the last resolve (kept after a reopen, like helpdesks do)
    frt_business_seconds: float | None
    resolution_business_seconds: float | None
    first_response_due_at: float | None
    resolution_due_at: float | None
    channel: str
    type: str
    priority: str
    team: str
    agent: str
    tier: str
    status: str
    reopen_count: int
    agent_replies: int
    sla_first_response_met: bool | None
    sla_resolution_met: bool | None
    survey_answered_at: float | None
    csat: int | None
    nps: int | None
    perceived_wait_minutes: int | None
    expected_wait_minutes: int | None


COLUMNS: tuple[str, ...] = ("tenant_id", *Ticket._fields)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return [c / total for c in out]


def generate_tickets(n: int, days: int, seed: int, end: datetime) -> Iterator[Ticket]:
    """``n`` tickets created over the ``days`` days before ``end`` ("now"), reproducible from
    ``seed``. Nothing happens after ``end``: a reply, resolve or survey that would fall later is
    not there yet (so the last days have more open tickets, as in a live helpdesk)."""
    rng = random.Random(seed)
    rand, lognorm, expo = rng.random, rng.lognormvariate, rng.expovariate
    now = end.timestamp()
    start = now - days * DAY
    start_day = int(start // DAY)
    # Hours of the window weighted by hour of day and weekday; a ticket picks one, then a second.
    hour_cum = _cumulative(
        [
            WEEKDAY_WEIGHTS[(start_day + h // 24 - MONDAY) % 7] * HOUR_WEIGHTS[h % 24]
            for h in range(days * 24)
        ]
    )
    channel_cum, type_cum = _cumulative(CHANNEL_WEIGHTS), _cumulative(TYPE_WEIGHTS)
    priority_cum, tier_cum = _cumulative(PRIORITY_WEIGHTS), _cumulative(TIER_WEIGHTS)
    csat_cum, csat_long_cum = _cumulative(CSAT_WEIGHTS), _cumulative(CSAT_WEIGHTS_LONG_WAIT)
    nps_cum = _cumulative(NPS_WEIGHTS)
    frt_mu = {c: math.log(m) for c, m in CHANNEL_FRT_MEDIAN.items()}
    hours = len(hour_cum)
    for ticket_id in range(1, n + 1):
        created = start + min(bisect(hour_cum, rand()), hours - 1) * 3600 + rand() * 3600
        channel = CHANNELS[bisect(channel_cum, rand())]
        priority = PRIORITIES[bisect(priority_cum, rand())]
        team_index = int(rand() * len(TEAMS))
        agent = f"agent-{team_index * AGENTS_PER_TEAM + int(rand() * AGENTS_PER_TEAM):03d}"
        # The customer's first touch: a social post, a missed call... before the ticket.
        touch_share = 0.7 if channel == "social" else 0.1
        first_touch = created - lognorm(7.5, 1.2) if rand() < touch_share else created

        responded: float | None = None
        delivered: float | None = None
        frt_business: float | None = None
        replies = 0
        if rand() < ANSWERED:
            responded = created + max(5.0, lognorm(frt_mu[channel], FRT_SIGMA))
            if responded >= now:
                responded = None
        if responded is not None:
            frt_business = business_clock(responded) - business_clock(created)
            replies = 1
            while rand() < 0.5 and replies < 30:
                replies += 1
            if rand() < 0.7:  # a delivery receipt; some deliveries are held up for hours
                delivered = responded + (expo(1 / 20.0) if rand() < 0.97 else lognorm(8.5, 1.0))
                if delivered >= now:
                    delivered = None

        first_resolved: float | None = None
        resolved: float | None = None
        resolution_business: float | None = None
        reopens = 0
        is_resolved = False  # now resolved or closed (after at least one resolve)
        if responded is not None and rand() < RESOLVED_IF_ANSWERED:
            first_resolved = responded + lognorm(math.log(20 * 3600), 1.2)
            if first_resolved >= now:
                first_resolved = None
            else:
                resolved = first_resolved
                draw = rand()
                reopens = 2 if draw < 0.02 else 1 if draw < 0.09 else 0
                for _ in range(reopens):
                    resolved += lognorm(math.log(24 * 3600), 1.0)
                    replies += 1
                if resolved >= now:  # reopened, not solved again yet: keeps the previous one
                    resolved = first_resolved
                    reopens = 1
                else:
                    is_resolved = True
                    paused = rand() * 0.5 if rand() < 0.3 else 0.0  # pending customer, on hold
                    business = business_clock(resolved) - business_clock(created)
                    resolution_business = business * (1.0 - paused)

        if is_resolved:
            assert resolved is not None
            status = "closed" if now - resolved > 4 * DAY else "resolved"
        elif responded is None:
            status = "new" if rand() < 0.7 else "open"
        else:
            draw = rand()
            status = "open" if draw < 0.6 else "pending_customer" if draw < 0.9 else "on_hold"

        fr_due: float | None = None
        res_due: float | None = None
        fr_met: bool | None = None
        res_met: bool | None = None
        if rand() >= NO_SLA_POLICY:
            fr_target = FIRST_RESPONSE_TARGET[priority]
            fr_due = business_deadline(created, fr_target)
            if frt_business is not None and frt_business <= fr_target:
                fr_met = True
            elif fr_due < now:
                fr_met = False
            res_target = RESOLUTION_TARGET[priority]
            res_due = business_deadline(created, res_target)
            if is_resolved and resolution_business is not None:
                res_met = resolution_business <= res_target
            elif res_due < now:
                res_met = False

        answered_at: float | None = None
        csat: int | None = None
        nps: int | None = None
        perceived: int | None = None
        expected: int | None = None
        if is_resolved and rand() < SURVEYED_IF_RESOLVED:
            assert resolved is not None
            assert responded is not None
            answered_at = resolved + lognorm(math.log(6 * 3600), 1.0)
            if answered_at >= now:
                answered_at = None
            else:
                wait = (delivered or responded) - first_touch
                cum = csat_long_cum if wait > DAY else csat_cum
                csat = 1 + bisect(cum, rand())
                if rand() < 0.75:
                    nps = bisect(nps_cum, rand())
                if rand() < 0.6:  # people remember waits as longer than they were
                    perceived = max(1, round(wait / 60 * lognorm(0.3, 0.5)))
                if rand() < 0.5:
                    expected = max(1, round(CHANNEL_EXPECTED_WAIT[channel] / 60 * lognorm(0, 0.7)))

        yield Ticket(
            ticket_id,
            created,
            first_touch,
            responded,
            delivered,
            first_resolved,
            resolved,
            frt_business,
            resolution_business,
            fr_due,
            res_due,
            channel,
            TYPES[bisect(type_cum, rand())],
            priority,
            TEAMS[team_index],
            agent,
            TIERS[bisect(tier_cum, rand())],
            status,
            reopens,
            replies,
            fr_met,
            res_met,
            answered_at,
            csat,
            nps,
            perceived,
            expected,
        )


NULL = "\\N"  # COPY text's NULL


class _Timestamps:
    """Epoch seconds -> PostgreSQL text (``YYYY-MM-DD HH:MM:SS.mmm+00``), fast: the date and
    hour part is cached per hour."""

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def __call__(self, t: float) -> str:
        hour = int(t // 3600)
        prefix = self._hours.get(hour)
        if prefix is None:
            prefix = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%d %H:")
            self._hours[hour] = prefix
        minute, ms = divmod(int((t - hour * 3600) * 1000), 60_000)
        return f"{prefix}{minute:02d}:{ms // 1000:02d}.{ms % 1000:03d}+00"


def copy_text(tickets: Iterator[Ticket], tenant: str, chunk_rows: int = 20_000) -> Iterator[bytes]:
    """The tickets in COPY's text format, in chunks of ``chunk_rows`` lines."""
    ts = _Timestamps()
    lines: list[str] = []
    for t in tickets:
        bd = t.first_response_delivered_at
        fr = t.first_response_at
        r1 = t.first_resolved_at
        r = t.resolved_at
        fb = t.frt_business_seconds
        rb = t.resolution_business_seconds
        fd = t.first_response_due_at
        rd = t.resolution_due_at
        sm = t.sla_first_response_met
        rm = t.sla_resolution_met
        sa = t.survey_answered_at
        lines.append(
            f"{tenant}\t{t.id}\t{ts(t.created_at)}\t{ts(t.first_touch_at)}\t"
            f"{NULL if fr is None else ts(fr)}\t{NULL if bd is None else ts(bd)}\t"
            f"{NULL if r1 is None else ts(r1)}\t{NULL if r is None else ts(r)}\t"
            f"{NULL if fb is None else round(fb)}\t{NULL if rb is None else round(rb)}\t"
            f"{NULL if fd is None else ts(fd)}\t{NULL if rd is None else ts(rd)}\t"
            f"{t.channel}\t{t.type}\t{t.priority}\t{t.team}\t{t.agent}\t{t.tier}\t{t.status}\t"
            f"{t.reopen_count}\t{t.agent_replies}\t"
            f"{NULL if sm is None else 't' if sm else 'f'}\t"
            f"{NULL if rm is None else 't' if rm else 'f'}\t"
            f"{NULL if sa is None else ts(sa)}\t{_opt(t.csat)}\t{_opt(t.nps)}\t"
            f"{_opt(t.perceived_wait_minutes)}\t{_opt(t.expected_wait_minutes)}\n"
        )
        if len(lines) >= chunk_rows:
            yield "".join(lines).encode()
            lines.clear()
    if lines:
        yield "".join(lines).encode()


def _opt(value: int | None) -> str:
    return NULL if value is None else str(value)


# --- the schema and the dashboard -------------------------------------------------------------

SCHEMA = """
CREATE TABLE tickets (
    tenant_id                    text        NOT NULL,
    id                           bigint      NOT NULL,
    created_at                   timestamptz NOT NULL,
    first_touch_at               timestamptz NOT NULL,  -- earliest contact on any channel
    first_response_at            timestamptz,           -- first public human reply (sent)
    first_response_delivered_at  timestamptz,           -- its delivery receipt, if any
    first_resolved_at            timestamptz,
    resolved_at                  timestamptz,           -- the last resolve
    frt_business_seconds         integer,               -- precomputed by the app
    resolution_business_seconds  integer,               -- precomputed by the app
    first_response_due_at        timestamptz,           -- SLA due times (NULL: no policy)
    resolution_due_at            timestamptz,
    channel                      text        NOT NULL,
    type                         text        NOT NULL,
    priority                     text        NOT NULL,
    team                         text        NOT NULL,
    agent                        text        NOT NULL,
    tier                         text        NOT NULL,
    status                       text        NOT NULL,
    reopen_count                 integer     NOT NULL DEFAULT 0,
    agent_replies                integer     NOT NULL DEFAULT 0,
    sla_first_response_met       boolean,               -- NULL: not due yet / no policy
    sla_resolution_met           boolean,
    survey_answered_at           timestamptz,
    csat                         smallint,              -- 1..5
    nps                          smallint,              -- 0..10
    perceived_wait_minutes       integer,
    expected_wait_minutes        integer
)
"""
# Built after the load (as a bulk load does); a live helpdesk has had them all along.
INDEXES: tuple[LiteralString, ...] = (
    "ALTER TABLE tickets ADD PRIMARY KEY (tenant_id, id)",
    "CREATE INDEX tickets_tenant_created ON tickets (tenant_id, created_at)",
    "CREATE INDEX tickets_tenant_first_response ON tickets (tenant_id, first_response_at)",
    "CREATE INDEX tickets_tenant_resolved ON tickets (tenant_id, resolved_at)",
)

# One statement per panel. %(tenant)s, %(start)s, %(end)s (timestamptz) and %(tz)s are bound.
# Every statement returns one row per day and one total row (day IS NULL), GROUPING SETS.
PANELS: dict[str, LiteralString] = {
    "volume": """
SELECT day, count(*) AS tickets_created
FROM (SELECT (created_at AT TIME ZONE %(tz)s)::date AS day
      FROM tickets
      WHERE tenant_id = %(tenant)s AND created_at >= %(start)s AND created_at < %(end)s) t
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS LAST
""",
    "first_response": """
SELECT day,
       count(*) AS frt_count,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY frt_wall) AS frt_wall_p,
       avg(frt_wall) AS frt_wall_mean,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY frt_business)
           AS frt_business_p,
       avg(frt_business) AS frt_business_mean,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY customer_wait)
           AS customer_wait_p,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY customer_wait - frt_business)
           AS perception_gap_p
FROM (SELECT (first_response_at AT TIME ZONE %(tz)s)::date AS day,
             extract(epoch FROM first_response_at - created_at)::float8 AS frt_wall,
             frt_business_seconds::float8 AS frt_business,
             extract(epoch FROM coalesce(first_response_delivered_at, first_response_at)
                                - first_touch_at)::float8 AS customer_wait
      FROM tickets
      WHERE tenant_id = %(tenant)s
        AND first_response_at >= %(start)s AND first_response_at < %(end)s) t
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS LAST
""",
    "resolution": """
SELECT day,
       count(*) AS resolved,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY resolution_wall)
           AS resolution_wall_p,
       avg((reopen_count >= 1)::int)::float8 AS reopen_rate,
       avg((agent_replies = 1 AND reopen_count = 0)::int)::float8 AS first_contact_resolution
FROM (SELECT (resolved_at AT TIME ZONE %(tz)s)::date AS day,
             extract(epoch FROM resolved_at - created_at)::float8 AS resolution_wall,
             reopen_count, agent_replies
      FROM tickets
      WHERE tenant_id = %(tenant)s AND resolved_at >= %(start)s AND resolved_at < %(end)s
        AND status IN ('resolved', 'closed')) t
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS LAST
""",
    "sla": """
SELECT day,
       count(*) AS sla_first_response_outcomes,
       avg(met::int)::float8 AS sla_first_response_attainment
FROM (SELECT (first_response_due_at AT TIME ZONE %(tz)s)::date AS day,
             sla_first_response_met AS met
      FROM tickets
      WHERE tenant_id = %(tenant)s
        AND first_response_due_at >= %(start)s AND first_response_due_at < %(end)s
        AND sla_first_response_met IS NOT NULL) t
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS LAST
""",
    "satisfaction": """
SELECT day,
       count(csat) AS csat_responses,
       100.0 * avg((csat >= 4)::int)::float8 AS csat_percent,
       avg(csat)::float8 AS csat_mean,
       count(nps) AS nps_responses,
       100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6))
           / nullif(count(nps), 0)::float8 AS nps
FROM (SELECT (survey_answered_at AT TIME ZONE %(tz)s)::date AS day, csat, nps
      FROM tickets
      WHERE tenant_id = %(tenant)s
        AND survey_answered_at >= %(start)s AND survey_answered_at < %(end)s) t
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS LAST
""",
}


# --- the server and the benchmark ---------------------------------------------------------------


def _postgres_sh(*args: str) -> None:
    subprocess.run(["bash", str(POSTGRES_SH), *args], check=True, timeout=900)


def _clean_stale_runs(root: Path) -> None:
    """Stop the servers of runs whose process is gone (killed) and remove their data."""
    if not root.is_dir():
        return
    for run in sorted(root.glob("run-*")):
        with contextlib.suppress(ValueError):
            if pid_alive(int(run.name.split("-")[1])):
                continue
        _postgres_sh("stop", str(run))
        shutil.rmtree(run, ignore_errors=True)


def _percentile(sorted_ms: Sequence[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q))]


@dataclass(frozen=True)
class LoadFigures:
    """How long the load took and how big the table is."""

    rows: int
    generate_s: float  # the Python generator, into memory (not part of the load)
    copy_s: float  # COPY FROM STDIN of the generated text
    index_s: float  # primary key + 3 indexes
    vacuum_analyze_s: float
    table_bytes: int  # heap (+ TOAST, free space and visibility maps)
    index_bytes: int
    copy_bytes: int  # the COPY text sent

    @property
    def load_s(self) -> float:
        """COPY + indexes + VACUUM ANALYZE: the time until the table can serve the dashboard."""
        return self.copy_s + self.index_s + self.vacuum_analyze_s


@dataclass
class PgBench:
    """A loaded PostgreSQL ``tickets`` table on a server this object started; :meth:`close`
    (or leaving the ``with`` block) stops the server and removes its data unless ``keep``."""

    directory: Path
    port: int
    tenant: str
    n_tickets: int
    days: int
    seed: int
    start: datetime
    end: datetime
    keep: bool = False
    server_version: str = ""
    load: LoadFigures | None = None
    # Per panel, the latencies (ms) of the last query_latencies() run.
    panel_latencies: dict[str, list[float]] = field(default_factory=dict)
    _conn: psycopg.Connection[Any] | None = None
    _closed: bool = False
    _loadavg_before: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    _loadavg_after: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    @property
    def dsn(self) -> str:
        """Connect over TCP on loopback, as an application server would (not the socket)."""
        return (
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres "
            f"options='-c statement_timeout={STATEMENT_TIMEOUT_MS}'"
        )

    @property
    def params(self) -> dict[str, Any]:
        """The dashboard's parameters: the tenant, the window and the day's time zone."""
        return {"tenant": self.tenant, "start": self.start, "end": self.end, "tz": TIMEZONE}

    def connection(self) -> psycopg.Connection[Any]:
        """The dashboard backend's connection (opened once, autocommit)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def dashboard(self) -> dict[str, list[dict[str, Any]]]:
        """Run the five panel statements once; per panel its rows (the total row last)."""
        conn = self.connection()
        out: dict[str, list[dict[str, Any]]] = {}
        with conn.cursor(row_factory=dict_row) as cur:
            for name, statement in PANELS.items():
                cur.execute(statement, self.params)
                out[name] = cur.fetchall()
        return out

    def totals(self) -> dict[str, Any]:
        """The total row of every panel, merged into one dict of KPI values (for a check
        against GetKpis's totals). Percentile arrays are split into ``*_p50``... keys."""
        merged: dict[str, Any] = {}
        for rows in self.dashboard().values():
            for key, value in rows[-1].items():
                if key == "day":
                    continue
                if key.endswith("_p") and isinstance(value, list):  # frt_wall_p -> frt_wall_p50
                    merged.update(
                        {f"{key}{q}": v for q, v in zip(("50", "90", "99"), value, strict=False)}
                    )
                else:
                    merged[key] = value
        return merged

    def query_latencies(
        self, repeats: int = 30, warmups: int = 3, budget_s: float | None = None
    ) -> list[float]:
        """Latency (ms) of the whole dashboard (the five statements, rows fetched), ``repeats``
        times after ``warmups`` unmeasured runs; fewer if ``budget_s`` seconds have passed
        (at least one measured run). Per-panel latencies go to :attr:`panel_latencies`."""
        conn = self.connection()
        self.panel_latencies = {name: [] for name in PANELS}
        latencies: list[float] = []
        deadline = math.inf if budget_s is None else time.monotonic() + budget_s
        self._loadavg_before = os.getloadavg()
        with conn.cursor() as cur:
            for i in range(warmups + repeats):
                if i > warmups and time.monotonic() > deadline:
                    break
                started = time.perf_counter()
                for name, statement in PANELS.items():
                    began = time.perf_counter()
                    cur.execute(statement, self.params)
                    cur.fetchall()
                    if i >= warmups:
                        self.panel_latencies[name].append((time.perf_counter() - began) * 1000)
                if i >= warmups:
                    latencies.append((time.perf_counter() - started) * 1000)
        self._loadavg_after = os.getloadavg()
        return latencies

    def result(self, latencies_ms: Sequence[float]) -> dict[str, Any]:
        """Plain figures for a report: load, size, dashboard and panel latencies (ms)."""
        lat = sorted(latencies_ms)
        load = self.load
        assert load is not None
        figures: dict[str, Any] = {
            "system": f"PostgreSQL {self.server_version}",
            "tickets": self.n_tickets,
            "days": self.days,
            "seed": self.seed,
            "statements_per_dashboard": len(PANELS),
            **{f"load_{k}": v for k, v in asdict(load).items()},
            "load_s": load.load_s,
            "total_bytes": load.table_bytes + load.index_bytes,
            "repeats": len(lat),
            "p50_ms": statistics.median(lat) if lat else math.nan,
            "p99_ms": _percentile(lat, 0.99) if lat else math.nan,
            "mean_ms": statistics.fmean(lat) if lat else math.nan,
            "max_ms": lat[-1] if lat else math.nan,
            # The machine is shared: its 1-minute load average before and after the runs.
            "loadavg_before": self._loadavg_before[0],
            "loadavg_after": self._loadavg_after[0],
        }
        for name, values in self.panel_latencies.items():
            if values:
                figures[f"{name}_p50_ms"] = statistics.median(values)
                figures[f"{name}_p99_ms"] = _percentile(sorted(values), 0.99)
        return figures

    def close(self) -> None:
        """Close the connection, stop the server, remove its data (unless ``keep``)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        _postgres_sh("stop", str(self.directory))
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def prepare(
    n_tickets: int = 1_000_000,
    days: int = 90,
    seed: int = 7,
    *,
    end: datetime | None = None,
    tenant: str = TENANT,
    root: Path | None = None,
    keep: bool = False,
    log: Callable[[str], None] | None = lambda message: print(message, flush=True),
) -> PgBench:
    """Start a throwaway PostgreSQL (``<root>/run-<pid>-<port>``, 127.0.0.1, a free port),
    create the table and load ``n_tickets`` tickets created over ``days`` days before ``end``
    (default: today 00:00 UTC). The returned :class:`PgBench` is a context manager that stops
    the server and removes its data; an unclosed one is closed at exit."""

    def say(message: str) -> None:
        if log is not None:
            log(message)

    root = root or bench_root()
    _clean_stale_runs(root)
    (port,) = free_ports(1)
    directory = root / f"run-{os.getpid()}-{port}"
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    bench = PgBench(
        directory, port, tenant, n_tickets, days, seed, end - timedelta(days=days), end, keep
    )
    options = [arg for k, v in SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}")]
    say(f"starting PostgreSQL under {directory} on 127.0.0.1:{port} ...")
    atexit.register(bench.close)  # in case the caller never closes it
    try:
        _postgres_sh("start", str(directory), str(port), *options)
        bench.load = _load(bench, say)
    except BaseException:
        bench.close()
        raise
    return bench


def _load(bench: PgBench, say: Callable[[str], None]) -> LoadFigures:
    conn = bench.connection()
    version = conn.execute("SHOW server_version").fetchone()
    assert version is not None
    bench.server_version = str(version[0])
    conn.execute(SCHEMA)

    say(f"generating {bench.n_tickets:,} tickets over {bench.days} days (seed {bench.seed}) ...")
    began = time.perf_counter()
    tickets = generate_tickets(bench.n_tickets, bench.days, bench.seed, bench.end)
    chunks = list(copy_text(tickets, bench.tenant))
    generate_s = time.perf_counter() - began
    copy_bytes = sum(len(c) for c in chunks)

    say(f"COPY {copy_bytes / 2**20:,.0f} MiB of text ...")
    began = time.perf_counter()
    copy_sql = sql.SQL("COPY tickets ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for chunk in chunks:
            copy.write(chunk)
    copy_s = time.perf_counter() - began
    del chunks

    say("indexes ...")
    began = time.perf_counter()
    for statement in INDEXES:
        conn.execute(statement)
    index_s = time.perf_counter() - began

    say("VACUUM ANALYZE ...")
    began = time.perf_counter()
    conn.execute("VACUUM ANALYZE tickets")
    vacuum_analyze_s = time.perf_counter() - began

    row = conn.execute(
        "SELECT count(*), pg_table_size('tickets'), pg_indexes_size('tickets') FROM tickets"
    ).fetchone()
    assert row is not None
    return LoadFigures(
        int(row[0]), generate_s, copy_s, index_s, vacuum_analyze_s, int(row[1]), int(row[2]),
        copy_bytes,
    )  # fmt: skip


# --- standalone --------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(bench: PgBench, figures: dict[str, Any], totals: dict[str, Any]) -> list[str]:
    """The figures as the other benchmarks print them (markdown tables)."""
    load = bench.load
    assert load is not None
    lines = [
        f"PostgreSQL {bench.server_version}: {load.rows:,} tickets of tenant {bench.tenant!r} "
        f"created {bench.start:%Y-%m-%d} .. {bench.end:%Y-%m-%d} ({bench.days} days, seed "
        f"{bench.seed}); settings: " + ", ".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items()),
        "",
        "| load step | seconds |",
        "|---|---|",
        f"| generate (Python, not part of the load; {_mib(load.copy_bytes)} of COPY text) "
        f"| {load.generate_s:.1f} |",
        f"| COPY | {load.copy_s:.1f} |",
        f"| primary key + 3 indexes | {load.index_s:.1f} |",
        f"| VACUUM ANALYZE | {load.vacuum_analyze_s:.1f} |",
        f"| **load (COPY + indexes + VACUUM ANALYZE)** | **{load.load_s:.1f}** |",
        "",
        f"table size: heap {_mib(load.table_bytes)}, indexes {_mib(load.index_bytes)}, "
        f"total {_mib(load.table_bytes + load.index_bytes)}",
        "",
        "| query (one statement per panel, GROUPING SETS ((day), ())) | runs | p50 ms | p99 ms "
        "| mean ms |",
        "|---|---|---|---|---|",
    ]
    for name, values in bench.panel_latencies.items():
        lat = sorted(values)
        lines.append(
            f"| {name} | {len(lat)} | {statistics.median(lat):.0f} | "
            f"{_percentile(lat, 0.99):.0f} | {statistics.fmean(lat):.0f} |"
        )
    lines.append(
        f"| **dashboard: all {len(PANELS)} panels, 90 days by day + total** | {figures['repeats']}"
        f" | **{figures['p50_ms']:.0f}** | **{figures['p99_ms']:.0f}** | {figures['mean_ms']:.0f} |"
    )
    lines += [
        "",
        f"load average (1 min) {figures['loadavg_before']:.1f} before the runs, "
        f"{figures['loadavg_after']:.1f} after (the machine is shared)",
        "",
        "totals (the dashboard's total rows, to check against GetKpis; durations in seconds):",
    ]
    for key, value in totals.items():
        if key in ("reopen_rate", "first_contact_resolution", "sla_first_response_attainment"):
            shown = f"{100 * value:.1f} %"
        elif isinstance(value, float):
            shown = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
        else:
            shown = f"{value:,}"
        lines.append(f"  {key:32} {shown}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=300.0, help="stop the measured runs after S seconds"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder after the run")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through close(): the server is stopped

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    started = time.perf_counter()
    with prepare(args.tickets, args.days, args.seed, keep=args.keep) as bench:
        totals = bench.totals()
        print(f"dashboard: {args.warmups} warm-ups, then {args.repeats} runs ...", flush=True)
        latencies = bench.query_latencies(args.repeats, args.warmups, args.budget)
        figures = bench.result(latencies)
        print()
        print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print("\n".join(report(bench, figures, totals)))
    print(f"\ntotal run {time.perf_counter() - started:.0f} s (server stopped)")


if __name__ == "__main__":
    main()
