"""Tables of the ``crm`` command (rich). One function per kind of answer.

Every value is put in a :class:`rich.text.Text`, so text from the API (a ticket subject such as
``[urgent] broken``) is shown as it is and never read as markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.table import Table
from rich.text import Text

from crm.contacts.v1 import contacts_pb2
from crm.gateway.v1 import gateway_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as sd
from crm_client.values import (
    enum_label,
    format_instant,
    format_number,
    format_seconds,
    format_time,
    kpi_name,
)

STATUS_STYLES = {
    "new": "cyan",
    "open": "yellow",
    "pending_customer": "magenta",
    "on_hold": "magenta",
    "resolved": "green",
    "closed": "dim",
}
SECTION_STYLES = {
    "ok": "green",
    "partial": "yellow",
    "timeout": "yellow",
    "unavailable": "red",
    "error": "red",
}
CLOCK_STATE_STYLES = {"running": "yellow", "paused": "magenta", "met": "green", "breached": "red"}


def _t(value: object, style: str = "") -> Text:
    return Text("" if value is None else str(value), style=style)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=Text(title, style="bold"), title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _key_values(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    """A two-column table of the rows whose value is not empty."""
    table = Table(title=Text(title, style="bold"), title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in rows:
        if isinstance(value, Text):
            if value.plain:
                table.add_row(_t(key), value)
        elif value not in (None, "", [], ()):
            table.add_row(_t(key), _t(value))
    return table


def _more(console: Console, next_page_token: str) -> None:
    if next_page_token:
        console.print(_t(f"more: --page-token {next_page_token}", "dim"))


# --- identity -------------------------------------------------------------------------------


def render_caller(console: Console, caller: gateway_pb2.GetCallerResponse, target: str) -> None:
    """``crm whoami``."""
    console.print(
        _key_values(
            "Caller",
            [
                ("Gateway", target),
                ("Tenant", caller.tenant_id),
                ("Actor", caller.actor),
                ("Role", caller.role),
                ("Credential", caller.credential),
            ],
        )
    )
    by_service: dict[str, list[str]] = {}
    for method in caller.permissions:
        service, _, name = method.strip("/").rpartition("/")
        by_service.setdefault(service.rsplit(".", 1)[-1] or service, []).append(name or method)
    if by_service:
        table = _table(f"Permissions ({len(caller.permissions)})", "Service", "Operations")
        for service, names in sorted(by_service.items()):
            table.add_row(_t(service), _t(", ".join(names)))
        console.print(table)


# --- contacts -------------------------------------------------------------------------------


def contact_name(contact: contacts_pb2.Contact) -> str:
    """The display name, else given and family names."""
    full = " ".join(part for part in (contact.given_name, contact.family_name) if part)
    return contact.display_name or full


def primary_identity(contact: contacts_pb2.Contact, kind: int) -> str:
    """The primary identity of a kind (else the first), as text."""
    of_kind = [i for i in contact.identities if i.kind == kind]
    chosen = next((i for i in of_kind if i.primary), of_kind[0] if of_kind else None)
    if chosen is None:
        return ""
    if chosen.kind == contacts_pb2.IDENTITY_KIND_SOCIAL:
        return f"{enum_label(contacts_pb2.SocialNetwork, chosen.network)}:{chosen.value}"
    return chosen.value


def render_contact(console: Console, contact: contacts_pb2.Contact, title: str = "Contact") -> None:
    """One contact with its identities."""
    consent = contact.consent
    consents = [
        name
        for name, given in (
            ("email marketing", consent.email_marketing),
            ("sms marketing", consent.sms_marketing),
            ("phone marketing", consent.phone_marketing),
            ("data processing", consent.data_processing),
        )
        if given
    ]
    console.print(
        _key_values(
            title,
            [
                ("ID", contact.id),
                ("Name", " ".join(p for p in (contact.given_name, contact.family_name) if p)),
                ("Display name", contact.display_name),
                ("Tier", enum_label(contacts_pb2.ValueTier, contact.tier)),
                ("Stage", enum_label(contacts_pb2.LifecycleStage, contact.lifecycle_stage)),
                ("Organization", contact.organization_id),
                ("Job title", contact.job_title),
                ("Owner", contact.owner_id),
                ("Segments", ", ".join(contact.segments)),
                ("Consent", ", ".join(consents)),
                *((f"attr {k}", v) for k, v in sorted(contact.custom_attributes.items())),
                ("Version", contact.version or ""),
                ("Created", format_time(contact, "create_time")),
                ("Updated", format_time(contact, "update_time")),
            ],
        )
    )
    if contact.identities:
        table = _table("Identities", "Kind", "Value", "Network", "Primary", "Verified")
        for identity in contact.identities:
            table.add_row(
                _t(enum_label(contacts_pb2.IdentityKind, identity.kind)),
                _t(identity.value),
                _t(enum_label(contacts_pb2.SocialNetwork, identity.network)),
                _t("yes" if identity.primary else ""),
                _t("yes" if identity.verified else ""),
            )
        console.print(table)


def render_contacts(
    console: Console,
    contacts: Sequence[contacts_pb2.Contact],
    next_page_token: str = "",
    title: str = "Contacts",
) -> None:
    """A page of contacts."""
    table = _table(
        f"{title} ({len(contacts)})", "ID", "Name", "Tier", "Stage", "Email", "Phone", "Updated"
    )
    for contact in contacts:
        table.add_row(
            _t(contact.id),
            _t(contact_name(contact)),
            _t(enum_label(contacts_pb2.ValueTier, contact.tier)),
            _t(enum_label(contacts_pb2.LifecycleStage, contact.lifecycle_stage)),
            _t(primary_identity(contact, contacts_pb2.IDENTITY_KIND_EMAIL)),
            _t(primary_identity(contact, contacts_pb2.IDENTITY_KIND_PHONE)),
            _t(format_time(contact, "update_time")),
        )
    console.print(table)
    _more(console, next_page_token)


# --- tickets --------------------------------------------------------------------------------


def status_text(status: int) -> Text:
    """A ticket status, coloured."""
    label = enum_label(sd.TicketStatus, status)
    return _t(label, STATUS_STYLES.get(label, ""))


def _duration(value: object) -> str:
    seconds = getattr(value, "seconds", 0) + getattr(value, "nanos", 0) / 1e9
    return format_seconds(seconds) if seconds else ""


def render_ticket(
    console: Console,
    ticket: sd.Ticket,
    messages: Sequence[sd.Message] | None = None,
    title: str = "Ticket",
) -> None:
    """One ticket: fields, SLA clocks, routing decisions and (optionally) its messages."""
    console.print(
        _key_values(
            title,
            [
                ("ID", ticket.id),
                ("Subject", ticket.subject),
                ("Status", status_text(ticket.status)),
                ("Type", enum_label(sd.TicketType, ticket.type)),
                ("Channel", enum_label(sd.Channel, ticket.channel)),
                ("Priority", enum_label(sd.Priority, ticket.priority)),
                ("Contact", ticket.contact_id),
                ("Customer tier", ticket.customer_tier),
                ("Assignee", ticket.assignee_id),
                ("Team", ticket.team_id),
                ("Tags", ", ".join(ticket.tags)),
                ("Category", ticket.category),
                ("Product", ticket.product),
                ("Description", ticket.description),
                ("Source mention", ticket.source_mention_id),
                ("First touch", format_time(ticket, "first_touch_time")),
                ("Created", format_time(ticket, "create_time")),
                ("First response", format_time(ticket, "first_response_time")),
                ("Resolved", format_time(ticket, "resolve_time")),
                ("Reopened", ticket.reopen_count or ""),
                ("Version", ticket.version or ""),
            ],
        )
    )
    if ticket.sla.clocks:
        sla = ticket.sla
        table = _table(
            f"SLA {sla.policy_id} v{sla.policy_version}",
            "Target",
            "Clock",
            "Target time",
            "State",
            "Due",
            "Stopped",
        )
        for clock in sla.clocks:
            state = enum_label(sd.SlaClockState, clock.state)
            table.add_row(
                _t(enum_label(sd.SlaTarget, clock.target)),
                _t(enum_label(sd.ClockKind, clock.clock)),
                _t(_duration(clock.target_duration)),
                _t(state, CLOCK_STATE_STYLES.get(state, "")),
                _t(format_time(clock, "due_time")),
                _t(format_time(clock, "stop_time")),
            )
        console.print(table)
    if ticket.routing_decisions:
        table = _table("Routing", "Rule", "Trigger", "Action", "Agent", "When")
        for decision in ticket.routing_decisions:
            table.add_row(
                _t(f"{decision.rule_id} v{decision.rule_version}"),
                _t(enum_label(sd.RuleTrigger, decision.trigger)),
                _t(enum_label(sd.RuleActionKind, decision.action.kind)),
                _t(decision.assigned_agent_id),
                _t(format_time(decision, "decide_time")),
            )
        console.print(table)
    if messages is not None:
        render_messages(console, messages)


def render_messages(console: Console, messages: Sequence[sd.Message]) -> None:
    """A ticket's conversation."""
    table = _table(f"Messages ({len(messages)})", "Sent", "Author", "Visibility", "Body")
    for message in messages:
        author = enum_label(sd.AuthorType, message.author_type)
        if message.author_id:
            author += f" {message.author_id}"
        table.add_row(
            _t(format_time(message, "send_time")),
            _t(author),
            _t(enum_label(sd.Visibility, message.visibility)),
            _t(message.body),
        )
    console.print(table)


def render_tickets(
    console: Console,
    tickets: Sequence[sd.Ticket],
    next_page_token: str = "",
    title: str = "Tickets",
) -> None:
    """A page of tickets."""
    table = _table(
        f"{title} ({len(tickets)})",
        "ID",
        "Status",
        "Priority",
        "Type",
        "Channel",
        "Subject",
        "Contact",
        "Assignee",
        "Created",
    )
    for ticket in tickets:
        table.add_row(
            _t(ticket.id),
            status_text(ticket.status),
            _t(enum_label(sd.Priority, ticket.priority)),
            _t(enum_label(sd.TicketType, ticket.type)),
            _t(enum_label(sd.Channel, ticket.channel)),
            _t(ticket.subject),
            _t(ticket.contact_id),
            _t(ticket.assignee_id),
            _t(format_time(ticket, "create_time")),
        )
    console.print(table)
    _more(console, next_page_token)


def render_message_added(console: Console, response: sd.AddMessageResponse) -> None:
    """``crm tickets reply``."""
    message, ticket = response.message, response.ticket
    visibility = enum_label(sd.Visibility, message.visibility) or "public"
    console.print(
        _t(f"Added {visibility} message {message.id} to ticket {ticket.id or message.ticket_id}")
    )
    console.print(
        _key_values(
            "Ticket",
            [
                ("Status", status_text(ticket.status)),
                ("First response", format_time(ticket, "first_response_time")),
                ("Version", ticket.version or ""),
            ],
        )
    )


def render_transition(console: Console, ticket: sd.Ticket) -> None:
    """``crm tickets resolve|reopen|pause...``."""
    line = Text(f"Ticket {ticket.id} is now ")
    line.append_text(status_text(ticket.status))
    line.append(f" (version {ticket.version})")
    console.print(line)


# --- metrics --------------------------------------------------------------------------------


def _optional(value: metrics_pb2.KpiValue, field: str) -> float | None:
    return float(getattr(value, field)) if value.HasField(field) else None  # type: ignore[arg-type]


def kpi_headline(value: metrics_pb2.KpiValue) -> str:
    """A KPI's headline number in its unit (``-`` without data)."""
    return format_number(_optional(value, "value"), value.unit)


def _mean(value: metrics_pb2.KpiValue) -> str:
    """The mean in its unit; a score's mean is on the survey's own scale (CSAT 1-5...)."""
    if value.kind == metrics_pb2.KPI_KIND_SCORE:
        return format_number(_optional(value, "mean"), "score")
    return format_number(_optional(value, "mean"), value.unit)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def render_kpis(
    console: Console,
    response: metrics_pb2.GetKpisResponse,
    request: metrics_pb2.GetKpisRequest,
) -> None:
    """``crm kpis``: totals as rows of KPIs; series as one table per group (bucket x KPI)."""
    start = format_instant(request.start_time.ToDatetime(tzinfo=UTC))
    end = format_instant(request.end_time.ToDatetime(tzinfo=UTC))
    granularity = enum_label(metrics_pb2.Granularity, request.granularity) or "day"
    header = f"{start} → {end}, {granularity}"
    if request.filters:
        header += ", " + ", ".join(f"{k}={v}" for k, v in sorted(request.filters.items()))
    if response.HasField("watermark_time"):
        header += f"; data up to {format_time(response, 'watermark_time')}"
    console.print(_t(header, "dim"))
    grouped = bool(request.group_by)
    if request.granularity == metrics_pb2.GRANULARITY_TOTAL:
        columns = ["KPI", "Value", "Count", "Mean", "p50", "p90", "p99"]
        if grouped:
            columns.insert(1, request.group_by)
        table = _table("KPIs", *columns)
        for column in table.columns[1 + grouped :]:
            column.justify = "right"
        for group in response.groups:
            for value in group.totals:
                row = [
                    _t(kpi_name(value.kpi)),
                    _t(kpi_headline(value), "bold"),
                    _t(f"{value.count:,}"),
                    _t(_mean(value)),
                    _t(format_number(_optional(value, "p50"), value.unit)),
                    _t(format_number(_optional(value, "p90"), value.unit)),
                    _t(format_number(_optional(value, "p99"), value.unit)),
                ]
                if grouped:
                    row.insert(1, _t(group.value or "(none)"))
                table.add_row(*row)
        console.print(table)
    else:
        zone = _zone(response.timezone) if granularity == "day" else None
        for group in response.groups:
            names = list(dict.fromkeys(kpi_name(v.kpi) for v in group.totals)) or [
                kpi_name(k) for k in request.kpis
            ]
            title = f"{request.group_by} = {group.value or '(none)'}" if grouped else "KPIs"
            table = _table(title, "Bucket", *names)
            for column in table.columns[1:]:
                column.justify = "right"
            for point in group.points:
                instant = point.bucket_start.ToDatetime(tzinfo=UTC)
                bucket = (
                    instant.astimezone(zone or UTC).strftime("%Y-%m-%d")
                    if granularity == "day"
                    else format_instant(instant)[:-4] + "Z"
                )
                by_name = {kpi_name(v.kpi): v for v in point.values}
                table.add_row(
                    _t(bucket),
                    *(_t(kpi_headline(by_name[n]) if n in by_name else "") for n in names),
                )
            totals = {kpi_name(v.kpi): v for v in group.totals}
            if totals:
                table.add_row(
                    _t("total", "bold"),
                    *(_t(kpi_headline(totals[n]) if n in totals else "", "bold") for n in names),
                )
            console.print(table)
    if response.definitions:
        console.print(_t("definitions: " + ", ".join(response.definitions), "dim"))


def render_catalog(console: Console, response: metrics_pb2.ListKpisResponse) -> None:
    """``crm kpis --catalog``."""
    table = _table(f"KPIs ({len(response.kpis)})", "Name", "Kind", "Unit", "Versions", "About")
    for kpi in response.kpis:
        table.add_row(
            _t(kpi.name, "bold"),
            _t(enum_label(metrics_pb2.KpiKind, kpi.kind)),
            _t(kpi.unit),
            _t(", ".join(str(v) for v in kpi.versions) or str(kpi.version)),
            _t(kpi.description),
        )
    console.print(table)
    if response.dimensions:
        console.print(_t("dimensions: " + ", ".join(response.dimensions), "dim"))


def render_gap(console: Console, response: metrics_pb2.GetPerceptionGapResponse) -> None:
    """``crm gap``: the two clocks, the rates, satisfaction by wait and the worst tickets."""
    table = _table("Clocks", "Clock", "Median", "Mean", "p90", "p99", "Tickets")
    for column in table.columns[1:]:
        column.justify = "right"
    for clock in response.clocks:
        table.add_row(
            _t(kpi_name(clock.kpi), "bold"),
            _t(kpi_headline(clock)),
            _t(_mean(clock)),
            _t(format_number(_optional(clock, "p90"), clock.unit)),
            _t(format_number(_optional(clock, "p99"), clock.unit)),
            _t(f"{clock.count:,}"),
        )
    console.print(table)
    if response.rates:
        table = _table("Rates", "Rate", "Value", "Of")
        for rate in response.rates:
            table.add_row(
                _t(kpi_name(rate.kpi), "bold"),
                _t(kpi_headline(rate)),
                _t(f"{rate.numerator:,} / {rate.denominator:,}"),
            )
        console.print(table)
    if response.wait_buckets:
        table = _table("Satisfaction by customer wait", "Wait", "Tickets", "CSAT", "NPS")
        for bucket in response.wait_buckets:
            table.add_row(
                _t(bucket.label, "bold"),
                _t(f"{bucket.tickets:,}"),
                _t(kpi_headline(bucket.csat) if bucket.HasField("csat") else "-"),
                _t(kpi_headline(bucket.nps) if bucket.HasField("nps") else "-"),
            )
        console.print(table)
    if response.gap_histogram:
        widest = max(b.tickets for b in response.gap_histogram) or 1
        table = _table("Perception gap (hours)", "Gap", "Tickets", "")
        for gap_bin in response.gap_histogram:
            bar = "█" * max(1 if gap_bin.tickets else 0, round(30 * gap_bin.tickets / widest))
            table.add_row(
                _t(f"{gap_bin.lower_hours}-{gap_bin.lower_hours + 1}h"),
                _t(f"{gap_bin.tickets:,}"),
                _t(bar, "cyan"),
            )
        console.print(table)
    if response.worst_tickets:
        table = _table(
            "Widest gaps", "Ticket", "Contact", "Company FRT", "Customer wait", "Gap", "First touch"
        )
        for worst in response.worst_tickets:
            table.add_row(
                _t(worst.ticket_id),
                _t(worst.contact_id),
                _t(format_seconds(worst.company_frt_seconds)),
                _t(format_seconds(worst.customer_wait_seconds)),
                _t(format_seconds(worst.perception_gap_seconds), "bold"),
                _t(format_time(worst, "first_touch_time")),
            )
        console.print(table)
    if response.definitions:
        console.print(_t("definitions: " + ", ".join(response.definitions), "dim"))


# --- customer 360 ---------------------------------------------------------------------------


def render_customer(
    console: Console, response: gateway_pb2.GetCustomer360Response, timeline_limit: int = 15
) -> None:
    """``crm customer``: profile, summary, tickets, timeline and how each section answered."""
    if response.HasField("contact"):
        render_contact(console, response.contact, title="Customer")
    summary = response.summary

    def opt(field: str) -> float | None:
        return float(getattr(summary, field)) if summary.HasField(field) else None  # type: ignore[arg-type]

    if response.HasField("summary"):
        console.print(
            _key_values(
                "Summary",
                [
                    ("Open tickets", str(summary.open_tickets)),
                    ("CSAT", format_number(opt("csat_percent"), "%")),
                    ("NPS", format_number(opt("nps"), "score")),
                    ("Company FRT (mean)", format_seconds(opt("mean_company_frt_seconds"))),
                    ("Customer wait (mean)", format_seconds(opt("mean_customer_wait_seconds"))),
                    ("Perception gap (mean)", format_seconds(opt("mean_perception_gap_seconds"))),
                    ("Green inside, red outside", str(summary.green_inside_red_outside)),
                ],
            )
        )
    if response.open_tickets:
        render_tickets(console, response.open_tickets, title="Open tickets")
    if response.recent_tickets:
        render_tickets(console, response.recent_tickets, title="Recent tickets")
    if response.surveys:
        table = _table(
            f"Surveys ({len(response.surveys)})", "ID", "Ticket", "Status", "CSAT", "NPS"
        )
        for survey in response.surveys:
            answer = survey.answer
            table.add_row(
                _t(survey.id),
                _t(survey.ticket_id),
                _t(enum_label(sd.SurveyStatus, survey.status)),
                _t(answer.csat if answer.HasField("csat") else ""),
                _t(answer.nps if answer.HasField("nps") else ""),
            )
        console.print(table)
    if response.mentions:
        table = _table(
            f"Mentions ({len(response.mentions)})", "Posted", "Network", "Sentiment", "Text"
        )
        for mention in response.mentions:
            table.add_row(
                _t(format_time(mention, "posted_time")),
                _t(mention.network),
                _t(f"{mention.sentiment:+.2f}"),
                _t(mention.text),
            )
        console.print(table)
    if response.timeline:
        shown = list(response.timeline)[:timeline_limit]
        table = _table(
            f"Timeline ({len(shown)} of {len(response.timeline)})", "When", "What", "ID", "Summary"
        )
        for entry in shown:
            table.add_row(
                _t(format_time(entry, "time")), _t(entry.kind), _t(entry.id), _t(entry.summary)
            )
        console.print(table)
    render_sections(console, response.sections)


def render_sections(console: Console, sections: Sequence[gateway_pb2.Section]) -> None:
    """How each backend answered the customer view."""
    table = _table("Sections", "Section", "Status", "Latency", "Detail")
    table.columns[2].justify = "right"
    for section in sections:
        status = enum_label(gateway_pb2.SectionStatus, section.status) or "unspecified"
        table.add_row(
            _t(section.name),
            _t(status, SECTION_STYLES.get(status, "")),
            _t(f"{section.latency_ms} ms"),
            _t(section.detail),
        )
    console.print(table)
