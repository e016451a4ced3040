"""The gateway's own operations: the single customer view, and who the caller is.

``GetCustomer360`` asks every backend at once under one deadline. Each section reports how its
backend answered; a slow or stopped backend empties its section and never fails the call. The
clocks section follows the tickets section (it needs the ticket ids), within the same deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.gateway.v1 import gateway_pb2 as gpb
from crm.metrics.v1 import metrics_pb2 as mpb
from crm.servicedesk.v1 import servicedesk_pb2 as spb
from crm_gateway.auth import Principal
from crm_gateway.dispatch import Dispatcher, GatewayError
from crm_gateway.domain.roles import GRANTS
from crm_gateway.routes import BY_PATH, ROUTES

SECTIONS = ("profile", "tickets", "mentions", "surveys", "clocks")
DEFAULT_TICKETS = 10
_OPEN = {
    spb.TICKET_STATUS_NEW,
    spb.TICKET_STATUS_OPEN,
    spb.TICKET_STATUS_PENDING_CUSTOMER,
    spb.TICKET_STATUS_ON_HOLD,
}
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


def _route(service: str, method: str) -> Any:
    return BY_PATH[f"/crm.gateway.v1.{service}/{method}"]


@dataclass
class _Outcome:
    status: gpb.SectionStatus.ValueType = gpb.SECTION_STATUS_OK
    detail: str = ""
    latency_ms: int = 0


class CustomerView:
    """Answers ``CustomerService`` and ``IdentityService``."""

    def __init__(self, dispatcher: Dispatcher, deadline_seconds: float) -> None:
        self.dispatcher = dispatcher
        self.deadline_seconds = deadline_seconds

    async def _call(
        self, principal: Principal, service: str, method: str, request: Message, timeout: float
    ) -> Any:
        return await self.dispatcher.call(_route(service, method), principal, request, timeout)

    async def get_customer_360(
        self, principal: Principal, request: gpb.GetCustomer360Request, timeout: float
    ) -> gpb.GetCustomer360Response:
        """The single customer view (see the module docstring)."""
        budget = min(timeout, self.deadline_seconds)
        started = time.monotonic()
        deadline = started + budget
        limit = request.ticket_limit or DEFAULT_TICKETS
        contact_id = request.contact_id
        reply = gpb.GetCustomer360Response()
        outcomes = {name: _Outcome() for name in SECTIONS}

        def left() -> float:
            return max(0.001, deadline - time.monotonic())

        async def profile() -> None:
            got = await self._call(
                principal,
                "ContactsService",
                "GetContact",
                cpb.GetContactRequest(id=contact_id),
                left(),
            )
            reply.contact.CopyFrom(got.contact)

        ticket_ids: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

        async def tickets() -> None:
            try:
                got = await self._call(
                    principal,
                    "TicketService",
                    "ListTickets",
                    spb.ListTicketsRequest(contact_id=contact_id, page_size=max(limit, 50)),
                    left(),
                )
            except BaseException:
                ticket_ids.cancel()
                raise
            ordered = sorted(got.tickets, key=lambda t: t.create_time.ToNanoseconds(), reverse=True)
            reply.open_tickets.extend(t for t in ordered if t.status in _OPEN)
            reply.recent_tickets.extend([t for t in ordered if t.status not in _OPEN][:limit])
            ticket_ids.set_result([t.id for t in ordered[:limit]])

        async def clocks() -> None:
            try:
                ids = await ticket_ids
            except asyncio.CancelledError:
                raise _NeedsTickets() from None
            results = await asyncio.gather(
                *(
                    self._call(
                        principal,
                        "MetricsService",
                        "GetTicketClocks",
                        mpb.GetTicketClocksRequest(ticket_id=ident),
                        left(),
                    )
                    for ident in ids
                ),
                return_exceptions=True,
            )
            missing = 0
            for result in results:
                if isinstance(result, GatewayError) and result.code == grpc.StatusCode.NOT_FOUND:
                    missing += 1
                elif isinstance(result, BaseException):
                    raise result
                else:
                    reply.ticket_clocks.append(result.clocks)
            if missing:
                outcome = outcomes["clocks"]
                outcome.status = gpb.SECTION_STATUS_PARTIAL
                outcome.detail = f"{missing} ticket(s) not yet seen by the metrics service"

        async def mentions() -> None:
            got = await self._call(
                principal,
                "SocialListeningService",
                "ListMentions",
                spb.ListMentionsRequest(author_contact_id=contact_id, page_size=50),
                left(),
            )
            reply.mentions.extend(got.mentions)

        async def surveys() -> None:
            got = await self._call(
                principal,
                "SurveyService",
                "ListSurveys",
                spb.ListSurveysRequest(contact_id=contact_id),
                left(),
            )
            reply.surveys.extend(got.surveys)

        work: dict[str, Callable[[], Awaitable[None]]] = {
            "profile": profile,
            "tickets": tickets,
            "mentions": mentions,
            "surveys": surveys,
            "clocks": clocks,
        }
        tasks = {
            name: asyncio.create_task(_timed(job, outcomes[name])) for name, job in work.items()
        }
        _, pending = await asyncio.wait(tasks.values(), timeout=budget)
        for task in pending:
            task.cancel()
        for name, task in tasks.items():
            outcome = outcomes[name]
            if task in pending:
                outcome.status = gpb.SECTION_STATUS_TIMEOUT
                outcome.detail = f"no answer within {budget:.2f} s"
                outcome.latency_ms = int(budget * 1000)
                continue
            error = task.exception()
            if error is None:
                continue
            if isinstance(error, _NeedsTickets):
                outcome.status = gpb.SECTION_STATUS_UNAVAILABLE
                outcome.detail = "needs the tickets section"
            elif isinstance(error, GatewayError):
                if name == "profile" and error.code == grpc.StatusCode.NOT_FOUND:
                    raise error  # the customer does not exist (in this tenant)
                _fail(outcome, error)
            else:
                raise error
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        reply.sections.extend(
            gpb.Section(name=name, status=o.status, detail=o.detail, latency_ms=o.latency_ms)
            for name, o in outcomes.items()
        )
        _summarize(reply)
        return reply

    async def get_caller(
        self, principal: Principal, request: gpb.GetCallerRequest, timeout: float
    ) -> gpb.GetCallerResponse:
        """The caller as the gateway sees it."""
        granted = GRANTS[principal.role]
        return gpb.GetCallerResponse(
            tenant_id=principal.tenant_id,
            actor=str(principal.actor),
            role=principal.role.value,
            permissions=[route.path for route in ROUTES if route.permission in granted],
            credential=principal.credential,
        )


class _NeedsTickets(Exception):
    """The clocks section cannot run: the tickets section failed."""


async def _timed(job: Callable[[], Awaitable[None]], outcome: _Outcome) -> None:
    began = time.monotonic()
    try:
        await job()
    finally:
        outcome.latency_ms = int((time.monotonic() - began) * 1000)


def _fail(outcome: _Outcome, error: BaseException) -> None:
    if isinstance(error, GatewayError):
        if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            outcome.status = gpb.SECTION_STATUS_TIMEOUT
        elif error.code in _UNAVAILABLE:
            outcome.status = gpb.SECTION_STATUS_UNAVAILABLE
        else:
            outcome.status = gpb.SECTION_STATUS_ERROR
        outcome.detail = f"{error.code.name}: {error.message}"
    else:
        outcome.status = gpb.SECTION_STATUS_TIMEOUT
        outcome.detail = "cancelled at the deadline"


def _csat_nps(surveys: Sequence[spb.Survey]) -> tuple[float | None, float | None]:
    csat = [s.answer.csat for s in surveys if s.answer.HasField("csat")]
    nps = [s.answer.nps for s in surveys if s.answer.HasField("nps")]
    csat_percent = 100.0 * sum(1 for v in csat if v >= 4) / len(csat) if csat else None
    nps_value = (
        100.0 * (sum(1 for v in nps if v >= 9) - sum(1 for v in nps if v <= 6)) / len(nps)
        if nps
        else None
    )
    return csat_percent, nps_value


def _mean_clock(clocks: Sequence[mpb.TicketClocks], name: str) -> float | None:
    values = [
        clock.seconds
        for ticket in clocks
        for clock in ticket.clocks
        if clock.name == name and clock.HasField("seconds")
    ]
    return sum(values) / len(values) if values else None


def _summarize(reply: gpb.GetCustomer360Response) -> None:
    summary = reply.summary
    summary.open_tickets = len(reply.open_tickets)
    csat, nps = _csat_nps(reply.surveys)
    if csat is not None:
        summary.csat_percent = csat
    if nps is not None:
        summary.nps = nps
    for field, clock in (
        ("mean_company_frt_seconds", "company_frt"),
        ("mean_customer_wait_seconds", "customer_wait"),
        ("mean_perception_gap_seconds", "perception_gap"),
    ):
        mean = _mean_clock(reply.ticket_clocks, clock)
        if mean is not None:
            setattr(summary, field, mean)
    summary.green_inside_red_outside = sum(
        1 for t in reply.ticket_clocks if "green_inside_red_outside" in t.flags
    )
    reply.timeline.extend(_timeline(reply))


def _timeline(reply: gpb.GetCustomer360Response) -> list[gpb.TimelineEntry]:
    entries: list[tuple[int, gpb.TimelineEntry]] = []

    def add(kind: str, at: Timestamp, ident: str, summary: str) -> None:
        if at.seconds or at.nanos:
            entry = gpb.TimelineEntry(kind=kind, id=ident, summary=summary)
            entry.time.CopyFrom(at)
            entries.append((at.ToNanoseconds(), entry))

    for ticket in (*reply.open_tickets, *reply.recent_tickets):
        add("ticket_opened", ticket.create_time, ticket.id, ticket.subject)
        if ticket.HasField("resolve_time"):
            add("ticket_resolved", ticket.resolve_time, ticket.id, ticket.subject)
    for mention in reply.mentions:
        add("mention", mention.posted_time, mention.id, mention.text[:140])
    for survey in reply.surveys:
        add("survey_sent", survey.send_time, survey.id, f"about ticket {survey.ticket_id}")
        if survey.status == spb.SURVEY_STATUS_ANSWERED:
            answer = survey.answer
            add(
                "survey_answered",
                answer.answer_time,
                survey.id,
                f"CSAT {answer.csat if answer.HasField('csat') else '-'}"
                f", NPS {answer.nps if answer.HasField('nps') else '-'}",
            )
    entries.sort(key=lambda item: item[0], reverse=True)
    return [entry for _, entry in entries]
