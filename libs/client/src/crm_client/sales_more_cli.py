"""The other sales commands of ``crm``: ``appointments``, ``campaigns``, ``orders`` (through
the gateway's ``AppointmentService``, ``CampaignService`` and ``OrderService``)::

    crm appointments calendar-set --rep rep-1 --tz Europe/Berlin --hours 1-5:09:00-17:00
    crm appointments slots --rep rep-1 --from 2026-03-02 --to 2026-03-06 --minutes 30 \
        --tz America/New_York
    crm appointments book --rep rep-1 --start 2026-03-02T10:00:00+01:00 --minutes 30 \
        --name "Ada Lovelace" --email ada@example.com --tz Europe/London
    crm appointments confirm|cancel|reschedule ID ...;  crm appointments ics ID [-o FILE]
    crm campaigns create --name Spring --channel email --budget 5000 --currency EUR
    crm campaigns activate|complete|cancel ID;  crm campaigns cost ID --amount 120.50 ...
    crm campaigns ingest interactions.jsonl [--campaign ID]
    crm orders record --external-id ERP-1 --contact C --currency EUR --line SEAT:3:300.00:120
    crm orders return ORDER_ID --external-id RET-1 --line 1:1:100.00:40
    crm orders base-currency [EUR];  crm orders rate USD 0.92 --from 2026-01-01
    crm orders convert 100.00 USD [--date 2026-03-01]

Amounts are typed and shown in major units of their currency, exactly (through
:mod:`crm_client.money`); they travel as integer minor units.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import field_mask_pb2
from rich.console import Console

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import campaigns_pb2 as cpb
from crm.sales.v1 import orders_pb2 as opb
from crm_client import sales_render
from crm_client.cli import Context, UsageError, _choices_help, _command, _enum_type, _paging
from crm_client.money import format_amount, parse_amount
from crm_client.render import _key_values, _more, _t, _table
from crm_client.values import enum_label, format_time, parse_enum, parse_instant, to_timestamp

# --- input helpers --------------------------------------------------------------------------


def _amount(text: str, currency: str, option: str) -> int:
    try:
        return parse_amount(text, currency)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _instant(text: str, option: str) -> Any:
    try:
        return parse_instant(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _minute_of_day(text: str, option: str) -> int:
    hours, sep, minutes = text.partition(":")
    try:
        value = int(hours) * 60 + (int(minutes) if sep else 0)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a time of day such as 09:30") from None
    if not 0 <= value <= 24 * 60:
        raise UsageError(f"{option}: {text!r} is not a time of day such as 09:30")
    return value


def _working_hours(text: str) -> list[apb.WorkingHours]:
    """``1-5:09:00-17:00`` (ISO weekdays 1 = Monday … 7) or ``6:10:00-14:00``."""
    days, sep, span = text.partition(":")
    start, dash, end = span.partition("-")
    if not sep or not dash:
        raise UsageError(f"--hours {text!r}: expected DAYS:HH:MM-HH:MM, e.g. 1-5:09:00-17:00")
    first, _, last = days.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise UsageError(f"--hours {text!r}: the days are ISO weekdays 1 (Monday) to 7") from None
    if not 1 <= low <= high <= 7:
        raise UsageError(f"--hours {text!r}: the days are ISO weekdays 1 (Monday) to 7")
    start_minute = _minute_of_day(start, "--hours")
    end_minute = _minute_of_day(end, "--hours")
    return [
        apb.WorkingHours(weekday=day, start_minute=start_minute, end_minute=end_minute)
        for day in range(low, high + 1)
    ]


def _owner(args: argparse.Namespace) -> tuple[int, str]:
    if bool(args.rep) == bool(args.team):
        raise UsageError("give exactly one of --rep or --team")
    if args.rep:
        return apb.CALENDAR_OWNER_KIND_REP, args.rep
    return apb.CALENDAR_OWNER_KIND_TEAM, args.team


def _write_file(
    ctx: Context, content: bytes, output: str | None, default_name: str, kind: str
) -> None:
    if output == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    path = Path(output or default_name)
    if path.is_dir():
        path = path / default_name
    path.write_bytes(content)
    summary = {"file": str(path), "bytes": len(content), "contentType": kind}
    ctx.out.emit(
        summary, lambda console: console.print(f"wrote {path} ({len(content):,} bytes, {kind})")
    )


# --- appointments: rendering ------------------------------------------------------------------


def _minutes(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def render_calendar(console: Console, calendar: apb.WorkCalendar, title: str = "Calendar") -> None:
    console.print(
        _key_values(
            title,
            [
                (
                    "Owner",
                    f"{enum_label(apb.CalendarOwnerKind, calendar.owner_kind)} {calendar.owner_id}",
                ),
                ("Time zone", calendar.time_zone),
                ("Holidays", ", ".join(calendar.holidays)),
                (
                    "Holiday calendar",
                    " ".join(
                        x for x in (calendar.holiday_country, calendar.holiday_subdivision) if x
                    ),
                ),
                ("Buffer", f"{calendar.buffer_minutes} min" if calendar.buffer_minutes else ""),
                ("Members", ", ".join(calendar.member_rep_ids)),
                ("Version", calendar.version or ""),
                ("Updated", format_time(calendar, "update_time")),
            ],
        )
    )
    table = _table("Working hours", "Weekday", "From", "To")
    for hours in calendar.working_hours:
        table.add_row(
            _t(hours.weekday), _t(_minutes(hours.start_minute)), _t(_minutes(hours.end_minute))
        )
    console.print(table)


def render_slots(
    console: Console, slots: Sequence[apb.Slot], zone: str, next_page_token: str = ""
) -> None:
    table = _table(f"Free slots ({len(slots)}, in {zone})", "Start", "End", "Rep", "UTC start")
    for slot in slots:
        table.add_row(
            _t(slot.customer_local_start),
            _t(slot.customer_local_end),
            _t(slot.rep_id),
            _t(format_time(slot, "start_time")),
        )
    console.print(table)
    _more(console, next_page_token)


def render_appointment(
    console: Console, appointment: apb.Appointment, title: str = "Appointment"
) -> None:
    local = ""
    if appointment.customer_local_start:
        local = (
            f"{appointment.customer_local_start} to {appointment.customer_local_end}"
            f" ({appointment.customer_time_zone})"
        )
    console.print(
        _key_values(
            title,
            [
                ("ID", appointment.id),
                ("Status", enum_label(apb.AppointmentStatus, appointment.status)),
                ("Rep", appointment.rep_id),
                ("Team", appointment.team_id),
                ("Start", format_time(appointment, "start_time")),
                ("End", format_time(appointment, "end_time")),
                ("Customer's time", local),
                ("Subject", appointment.subject),
                ("Contact", appointment.contact_id),
                ("Lead", appointment.lead_id),
                ("Opportunity", appointment.opportunity_id),
                ("Customer", appointment.customer_name),
                ("Email", appointment.customer_email),
                ("Phone", appointment.customer_phone),
                ("Cancel reason", appointment.cancel_reason),
                ("Sequence", appointment.sequence or ""),
                ("Version", appointment.version or ""),
            ],
        )
    )


def render_appointments(
    console: Console, appointments: Sequence[apb.Appointment], next_page_token: str = ""
) -> None:
    table = _table(
        f"Appointments ({len(appointments)})", "ID", "Status", "Rep", "Start", "End", "Customer"
    )
    for appointment in appointments:
        table.add_row(
            _t(appointment.id),
            _t(enum_label(apb.AppointmentStatus, appointment.status)),
            _t(appointment.rep_id),
            _t(format_time(appointment, "start_time")),
            _t(format_time(appointment, "end_time")),
            _t(appointment.customer_name or appointment.contact_id),
        )
    console.print(table)
    _more(console, next_page_token)


# --- appointments: commands -------------------------------------------------------------------


def cmd_appointments_calendar_set(ctx: Context, args: argparse.Namespace) -> None:
    kind, owner = _owner(args)
    calendar = apb.WorkCalendar(
        owner_kind=kind,  # type: ignore[arg-type]
        owner_id=owner,
        time_zone=args.tz,
        working_hours=[h for text in args.hours for h in _working_hours(text)],
        holidays=args.holiday or [],
        holiday_country=args.holiday_country or "",
        holiday_subdivision=args.holiday_subdivision or "",
        buffer_minutes=args.buffer,
        member_rep_ids=args.member or [],
    )
    response = ctx.client.appointments.SetWorkCalendar(
        apb.SetWorkCalendarRequest(calendar=calendar, expected_version=args.expected_version)
    )
    ctx.out.emit(
        response, lambda console: render_calendar(console, response.calendar, "Calendar set")
    )


def cmd_appointments_calendar_get(ctx: Context, args: argparse.Namespace) -> None:
    kind, owner = _owner(args)
    response = ctx.client.appointments.GetWorkCalendar(
        apb.GetWorkCalendarRequest(owner_kind=kind, owner_id=owner)  # type: ignore[arg-type]
    )
    ctx.out.emit(response, lambda console: render_calendar(console, response.calendar))


def cmd_appointments_slots(ctx: Context, args: argparse.Namespace) -> None:
    _owner(args)
    start = _instant(args.start, "--from")
    end = _instant(args.end, "--to")
    if end <= start:
        raise UsageError("--to must be after --from")
    response = ctx.client.appointments.FindFreeSlots(
        apb.FindFreeSlotsRequest(
            rep_id=args.rep or "",
            team_id=args.team or "",
            range_start=to_timestamp(start),
            range_end=to_timestamp(end),
            slot_minutes=args.minutes,
            step_minutes=args.step,
            customer_time_zone=args.tz,
            page_size=args.page_size,
            page_token=args.page_token or "",
        )
    )
    ctx.out.emit(
        response,
        lambda console: render_slots(console, response.slots, args.tz, response.next_page_token),
    )


def cmd_appointments_book(ctx: Context, args: argparse.Namespace) -> None:
    _owner(args)
    if not args.contact and not (args.name and (args.email or args.phone)):
        raise UsageError("give --contact ID, or --name with --email or --phone")
    start = _instant(args.start, "--start")
    end = _instant(args.end, "--end") if args.end else start + timedelta(minutes=args.minutes)
    if end <= start:
        raise UsageError("the end must be after --start")
    response = ctx.client.appointments.BookAppointment(
        apb.BookAppointmentRequest(
            rep_id=args.rep or "",
            team_id=args.team or "",
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            contact_id=args.contact or "",
            lead_id=args.lead or "",
            opportunity_id=args.opportunity or "",
            customer_name=args.name or "",
            customer_email=args.email or "",
            customer_phone=args.phone or "",
            customer_time_zone=args.tz,
            subject=args.subject or "",
            request_id=args.request_id or "",
        )
    )

    def draw(console: Console) -> None:
        render_appointment(console, response.appointment, "Booked")
        if response.HasField("created_lead") and response.created_lead.id:
            sales_render.render_lead(console, response.created_lead, "Created lead")

    ctx.out.emit(response, draw)


def cmd_appointments_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.appointments.GetAppointment(apb.GetAppointmentRequest(id=args.id))
    ctx.out.emit(response, lambda console: render_appointment(console, response.appointment))


def cmd_appointments_list(ctx: Context, args: argparse.Namespace) -> None:
    request = apb.ListAppointmentsRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        rep_id=args.rep or "",
        team_id=args.team or "",
        contact_id=args.contact or "",
    )
    if args.status is not None:
        request.status = args.status
    response = ctx.client.appointments.ListAppointments(request)
    ctx.out.emit(
        response,
        lambda console: render_appointments(
            console, response.appointments, response.next_page_token
        ),
    )


def cmd_appointments_move(ctx: Context, args: argparse.Namespace) -> None:
    """``crm appointments confirm|reschedule|cancel ID``."""
    service = ctx.client.appointments
    version = args.expected_version
    response: Any
    if args.verb == "confirm":
        response = service.ConfirmAppointment(
            apb.ConfirmAppointmentRequest(id=args.id, expected_version=version)
        )
    elif args.verb == "reschedule":
        start = _instant(args.start, "--start")
        end = _instant(args.end, "--end") if args.end else start + timedelta(minutes=args.minutes)
        if end <= start:
            raise UsageError("the end must be after --start")
        response = service.RescheduleAppointment(
            apb.RescheduleAppointmentRequest(
                id=args.id,
                start_time=to_timestamp(start),
                end_time=to_timestamp(end),
                expected_version=version,
            )
        )
    else:
        response = service.CancelAppointment(
            apb.CancelAppointmentRequest(
                id=args.id, reason=args.reason or "", expected_version=version
            )
        )
    ctx.out.emit(response, lambda console: render_appointment(console, response.appointment))


def cmd_appointments_ics(ctx: Context, args: argparse.Namespace) -> None:
    """``crm appointments ics ID [-o FILE]``: the appointment's iCalendar file."""
    response = ctx.client.appointments.GetAppointmentCalendarFile(
        apb.GetAppointmentCalendarFileRequest(id=args.id)
    )
    name = Path(response.file_name).name or f"appointment-{args.id}.ics"
    _write_file(ctx, bytes(response.content), args.output, name, response.content_type)


# --- campaigns --------------------------------------------------------------------------------


def _budget(campaign: cpb.Campaign) -> str:
    return format_amount(campaign.budget_minor, campaign.currency) if campaign.currency else ""


def render_campaign(console: Console, campaign: cpb.Campaign, title: str = "Campaign") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", campaign.id),
                ("Name", campaign.name),
                ("Channel", enum_label(cpb.CampaignChannel, campaign.channel)),
                ("Status", enum_label(cpb.CampaignStatus, campaign.status)),
                ("Budget", _budget(campaign)),
                (
                    "Costs",
                    format_amount(campaign.cost_total_minor, campaign.currency)
                    if campaign.currency
                    else "",
                ),
                ("Cost entries", campaign.cost_entry_count or ""),
                ("Segment", campaign.target_segment),
                ("Cancel reason", campaign.cancel_reason),
                ("Activated", format_time(campaign, "activate_time")),
                ("Closed", format_time(campaign, "close_time")),
                ("Version", campaign.version or ""),
            ],
        )
    )


def render_campaigns(
    console: Console, campaigns: Sequence[cpb.Campaign], next_page_token: str = ""
) -> None:
    table = _table(
        f"Campaigns ({len(campaigns)})", "ID", "Name", "Channel", "Status", "Budget", "Costs"
    )
    for campaign in campaigns:
        table.add_row(
            _t(campaign.id),
            _t(campaign.name),
            _t(enum_label(cpb.CampaignChannel, campaign.channel)),
            _t(enum_label(cpb.CampaignStatus, campaign.status)),
            _t(_budget(campaign)),
            _t(
                format_amount(campaign.cost_total_minor, campaign.currency)
                if campaign.currency
                else ""
            ),
        )
    console.print(table)
    _more(console, next_page_token)


def render_ingest_summary(console: Console, summary: cpb.IngestSummary) -> None:
    console.print(
        _key_values(
            "Ingested",
            [
                ("Received", str(summary.received)),
                ("Accepted", str(summary.accepted)),
                ("Duplicates", str(summary.duplicates)),
                ("Refused", str(summary.refused)),
                ("Lead touches", str(summary.lead_touches)),
            ],
        )
    )
    if summary.refused_by_reason:
        table = _table("Refused by reason", "Reason", "Count")
        for count in summary.refused_by_reason:
            table.add_row(_t(enum_label(cpb.IngestRefusal, count.reason)), _t(count.count))
        console.print(table)
    if summary.errors:
        more = " (more not shown)" if summary.errors_truncated else ""
        table = _table(f"First errors{more}", "Item", "Reason", "Message")
        for error in summary.errors:
            detail = "; ".join(f"{v.field}: {v.description}" for v in error.field_violations)
            table.add_row(
                _t(error.index),
                _t(enum_label(cpb.IngestRefusal, error.reason)),
                _t(" — ".join(x for x in (error.message, detail) if x)),
            )
        console.print(table)


def cmd_campaigns_create(ctx: Context, args: argparse.Namespace) -> None:
    currency = (args.currency or "").upper()
    if args.budget and not currency:
        raise UsageError("--budget needs --currency")
    campaign = cpb.Campaign(
        name=args.name,
        channel=args.channel,
        budget_minor=_amount(args.budget, currency, "--budget") if args.budget else 0,
        currency=currency,
        target_segment=args.segment or "",
    )
    response = ctx.client.campaigns.CreateCampaign(
        cpb.CreateCampaignRequest(campaign=campaign, request_id=args.request_id or "")
    )
    ctx.out.emit(response, lambda console: render_campaign(console, response.campaign, "Created"))


def cmd_campaigns_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.campaigns.GetCampaign(cpb.GetCampaignRequest(id=args.id))
    ctx.out.emit(response, lambda console: render_campaign(console, response.campaign))


def cmd_campaigns_list(ctx: Context, args: argparse.Namespace) -> None:
    request = cpb.ListCampaignsRequest(page_size=args.page_size, page_token=args.page_token or "")
    if args.status is not None:
        request.status = args.status
    if args.channel is not None:
        request.channel = args.channel
    response = ctx.client.campaigns.ListCampaigns(request)
    ctx.out.emit(
        response,
        lambda console: render_campaigns(console, response.campaigns, response.next_page_token),
    )


def cmd_campaigns_update(ctx: Context, args: argparse.Namespace) -> None:
    campaign = cpb.Campaign(id=args.id)
    paths: list[str] = []
    if args.name is not None:
        campaign.name = args.name
        paths.append("name")
    if args.channel is not None:
        campaign.channel = args.channel
        paths.append("channel")
    if args.segment is not None:
        campaign.target_segment = args.segment
        paths.append("target_segment")
    if args.budget is not None:
        if not args.currency:
            raise UsageError("--budget needs --currency")
        campaign.currency = args.currency.upper()
        campaign.budget_minor = _amount(args.budget, campaign.currency, "--budget")
        paths += ["budget_minor", "currency"]
    if not paths:
        raise UsageError("nothing to update: give --name, --channel, --segment or --budget")
    response = ctx.client.campaigns.UpdateCampaign(
        cpb.UpdateCampaignRequest(
            campaign=campaign,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            expected_version=args.expected_version,
        )
    )
    ctx.out.emit(response, lambda console: render_campaign(console, response.campaign, "Updated"))


def cmd_campaigns_move(ctx: Context, args: argparse.Namespace) -> None:
    """``crm campaigns activate|complete|cancel ID``."""
    service = ctx.client.campaigns
    version = args.expected_version
    response: Any
    if args.verb == "activate":
        response = service.ActivateCampaign(
            cpb.ActivateCampaignRequest(id=args.id, expected_version=version)
        )
    elif args.verb == "complete":
        response = service.CompleteCampaign(
            cpb.CompleteCampaignRequest(id=args.id, expected_version=version)
        )
    else:
        response = service.CancelCampaign(
            cpb.CancelCampaignRequest(
                id=args.id, reason=args.reason or "", expected_version=version
            )
        )
    ctx.out.emit(response, lambda console: render_campaign(console, response.campaign))


def cmd_campaigns_cost(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    cost = cpb.CampaignCost(
        amount_minor=_amount(args.amount, currency, "--amount"),
        currency=currency,
        cost_date=args.date or "",
        description=args.description or "",
    )
    response = ctx.client.campaigns.RecordCampaignCost(
        cpb.RecordCampaignCostRequest(
            campaign_id=args.id,
            cost=cost,
            request_id=args.request_id or "",
            expected_version=args.expected_version,
        )
    )

    def draw(console: Console) -> None:
        console.print(
            _key_values(
                "Cost recorded",
                [
                    ("ID", response.cost.id),
                    ("Amount", format_amount(response.cost.amount_minor, response.cost.currency)),
                    ("Date", response.cost.cost_date),
                    ("Description", response.cost.description),
                ],
            )
        )
        render_campaign(console, response.campaign)

    ctx.out.emit(response, draw)


_INTERACTION_FIELDS = ("campaign_id", "contact_id", "kind", "external_id", "occur_time")


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(word.title() for word in rest)


def _interaction(row: dict[str, Any], number: int, campaign: str) -> cpb.CampaignInteraction:
    """One interaction from a JSON object or CSV row (snake_case or camelCase keys; the
    output-only fields are not read)."""
    values = {key: row.get(key, row.get(_camel(key))) for key in _INTERACTION_FIELDS}
    try:
        interaction = cpb.CampaignInteraction(
            campaign_id=str(values["campaign_id"] or campaign or ""),
            contact_id=str(values["contact_id"] or ""),
            external_id=str(values["external_id"] or ""),
        )
        if values["kind"]:
            interaction.kind = parse_enum(cpb.CampaignInteractionKind, str(values["kind"]))
        if values["occur_time"]:
            interaction.occur_time.CopyFrom(to_timestamp(parse_instant(str(values["occur_time"]))))
    except ValueError as error:
        raise UsageError(f"item {number}: {error}") from None
    return interaction


def _read_interactions(
    path: Path, file_format: str | None, campaign: str
) -> list[cpb.CampaignInteraction]:
    kind = file_format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    rows: list[dict[str, Any]] = []
    if kind == "csv":
        rows = [dict(row) for row in csv.DictReader(text.splitlines())]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise UsageError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(value, dict):
                raise UsageError(f"{path}:{number}: expected a JSON object")
            rows.append(value)
    return [_interaction(row, number, campaign) for number, row in enumerate(rows, start=1)]


def cmd_campaigns_ingest(ctx: Context, args: argparse.Namespace) -> None:
    """``crm campaigns ingest FILE``: interactions (JSON lines or CSV) through the client
    stream; prints the summary."""
    interactions = _read_interactions(Path(args.file), args.format, args.campaign or "")
    if not interactions:
        raise UsageError(f"{args.file}: no interactions")

    def stream() -> Iterator[cpb.CampaignInteraction]:
        yield from interactions

    summary = ctx.client.campaigns.IngestCampaignInteractions(stream())
    ctx.out.emit(summary, lambda console: render_ingest_summary(console, summary))


# --- orders -----------------------------------------------------------------------------------


def _base(base: opb.BaseAmounts) -> str:
    if base.status == opb.CONVERSION_STATUS_CONVERTED:
        return f"{format_amount(base.amount_minor, base.base_currency)} (rate {base.rate})"
    return enum_label(opb.ConversionStatus, base.status)


def render_order(console: Console, order: opb.Order, title: str = "Order") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", order.id),
                ("External ID", order.external_id),
                ("Date", order.order_date),
                ("Contact", order.contact_id),
                ("Account", order.account_id),
                ("Opportunity", order.opportunity_id),
                ("Revenue", format_amount(order.revenue_total_minor, order.currency)),
                ("Cost", format_amount(order.cost_total_minor, order.currency)),
                ("Base", _base(order.base)),
                ("Version", order.version or ""),
            ],
        )
    )
    returned = {line.line_number: line for line in order.returned}
    table = _table("Lines", "#", "SKU", "Qty", "Revenue", "Cost", "Returned")
    for line in order.lines:
        back = returned.get(line.line_number)
        table.add_row(
            _t(line.line_number),
            _t(line.sku or line.product_id),
            _t(line.quantity),
            _t(format_amount(line.revenue_minor, order.currency)),
            _t(format_amount(line.cost_minor, order.currency)),
            _t(
                f"{back.quantity} ({format_amount(back.revenue_minor, order.currency)})"
                if back
                else ""
            ),
        )
    console.print(table)


def render_orders(console: Console, orders: Sequence[opb.Order], next_page_token: str = "") -> None:
    table = _table(f"Orders ({len(orders)})", "ID", "External ID", "Date", "Contact", "Revenue")
    for order in orders:
        table.add_row(
            _t(order.id),
            _t(order.external_id),
            _t(order.order_date),
            _t(order.contact_id or order.account_id),
            _t(format_amount(order.revenue_total_minor, order.currency)),
        )
    console.print(table)
    _more(console, next_page_token)


def render_return(console: Console, record: opb.Return, title: str = "Return") -> None:
    console.print(
        _key_values(
            title,
            [
                ("ID", record.id),
                ("External ID", record.external_id),
                ("Order", record.order_id),
                ("Date", record.return_date),
                ("Refunded", format_amount(record.revenue_total_minor, record.currency)),
                ("Cost back", format_amount(record.cost_total_minor, record.currency)),
                ("Base", _base(record.base)),
            ],
        )
    )


def _order_line(text: str, currency: str) -> opb.OrderLine:
    """``SKU:QTY:REVENUE[:COST]`` (the line's totals, in major units)."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or not parts[0].strip():
        raise UsageError(f"--line {text!r}: expected SKU:QUANTITY:REVENUE[:COST]")
    try:
        quantity = int(parts[1])
    except ValueError:
        raise UsageError(f"--line {text!r}: the quantity must be a whole number") from None
    return opb.OrderLine(
        sku=parts[0].strip(),
        quantity=quantity,
        revenue_minor=_amount(parts[2], currency, "--line revenue"),
        cost_minor=_amount(parts[3], currency, "--line cost") if len(parts) == 4 else 0,
    )


def _return_line(text: str, currency: str) -> opb.ReturnLine:
    """``LINE:QTY[:REVENUE[:COST]]``."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4:
        raise UsageError(f"--line {text!r}: expected LINE_NUMBER:QUANTITY[:REFUND[:COST]]")
    try:
        line = opb.ReturnLine(line_number=int(parts[0]), quantity=int(parts[1]))
    except ValueError:
        raise UsageError(
            f"--line {text!r}: the line number and quantity are whole numbers"
        ) from None
    if len(parts) > 2 and parts[2].strip():
        line.revenue_minor = _amount(parts[2], currency, "--line refund")
    if len(parts) > 3 and parts[3].strip():
        line.cost_minor = _amount(parts[3], currency, "--line cost")
    return line


def cmd_orders_record(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    order = opb.Order(
        external_id=args.external_id,
        contact_id=args.contact or "",
        account_id=args.account or "",
        opportunity_id=args.opportunity or "",
        order_date=args.date or "",
        currency=currency,
        lines=[_order_line(line, currency) for line in args.line],
    )
    response = ctx.client.orders.RecordOrder(opb.RecordOrderRequest(order=order))
    ctx.out.emit(response, lambda console: render_order(console, response.order, "Recorded"))


def cmd_orders_get(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.orders.GetOrder(opb.GetOrderRequest(id=args.id))
    ctx.out.emit(response, lambda console: render_order(console, response.order))


def cmd_orders_list(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.orders.ListOrders(
        opb.ListOrdersRequest(
            page_size=args.page_size,
            page_token=args.page_token or "",
            contact_id=args.contact or "",
            account_id=args.account or "",
            date_from=args.date_from or "",
            date_to=args.date_to or "",
        )
    )
    ctx.out.emit(
        response, lambda console: render_orders(console, response.orders, response.next_page_token)
    )


def cmd_orders_return(ctx: Context, args: argparse.Namespace) -> None:
    order = ctx.client.orders.GetOrder(opb.GetOrderRequest(id=args.id)).order
    record = opb.Return(
        external_id=args.external_id,
        order_id=args.id,
        return_date=args.date or "",
        lines=[_return_line(line, order.currency) for line in args.line],
    )
    response = ctx.client.orders.RecordReturn(opb.RecordReturnRequest(**{"return": record}))

    def draw(console: Console) -> None:
        render_return(console, getattr(response, "return"), "Return recorded")
        render_order(console, response.order)

    ctx.out.emit(response, draw)


def cmd_orders_cost(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    cost = opb.Cost(
        contact_id=args.contact or "",
        account_id=args.account or "",
        category=args.category,
        amount_minor=_amount(args.amount, currency, "--amount"),
        currency=currency,
        period_start=args.period_start,
        period_end=args.period_end or args.period_start,
        description=args.description or "",
    )
    response = ctx.client.orders.RecordCost(
        opb.RecordCostRequest(cost=cost, request_id=args.request_id or "")
    )
    ctx.out.emit(
        response,
        lambda console: console.print(
            _key_values(
                "Cost recorded",
                [
                    ("ID", response.cost.id),
                    ("Category", enum_label(opb.CostCategory, response.cost.category)),
                    ("Amount", format_amount(response.cost.amount_minor, response.cost.currency)),
                    ("Period", f"{response.cost.period_start} to {response.cost.period_end}"),
                    ("Contact", response.cost.contact_id),
                    ("Account", response.cost.account_id),
                    ("Base", _base(response.cost.base)),
                ],
            )
        ),
    )


def _render_settings(console: Console, settings: opb.CurrencySettings) -> None:
    console.print(
        _key_values(
            "Currency settings",
            [
                ("Base currency", settings.base_currency or "(none)"),
                ("Version", settings.version or ""),
                ("Updated", format_time(settings, "update_time")),
            ],
        )
    )


def cmd_orders_base_currency(ctx: Context, args: argparse.Namespace) -> None:
    """``crm orders base-currency [CUR]``: show, or set, the tenant's base currency."""
    response: Any
    if args.currency:
        response = ctx.client.orders.SetBaseCurrency(
            opb.SetBaseCurrencyRequest(
                base_currency=args.currency.upper(), expected_version=args.expected_version
            )
        )
    else:
        response = ctx.client.orders.GetCurrencySettings(opb.GetCurrencySettingsRequest())
    ctx.out.emit(response, lambda console: _render_settings(console, response.settings))


def cmd_orders_rate(ctx: Context, args: argparse.Namespace) -> None:
    """``crm orders rate [CUR RATE --from DATE]``: record a rate, or list the rates."""
    response: Any
    if args.currency:
        if not args.rate or not args.valid_from:
            raise UsageError("recording a rate needs CURRENCY RATE --from YYYY-MM-DD")
        response = ctx.client.orders.RecordExchangeRate(
            opb.RecordExchangeRateRequest(
                rate=opb.ExchangeRate(
                    currency=args.currency.upper(), rate=args.rate, valid_from=args.valid_from
                )
            )
        )
        rates = [response.rate]
    else:
        response = ctx.client.orders.ListExchangeRates(
            opb.ListExchangeRatesRequest(page_size=args.page_size, page_token=args.page_token or "")
        )
        rates = list(response.rates)

    def draw(console: Console) -> None:
        table = _table(f"Exchange rates ({len(rates)})", "Currency", "Base", "Rate", "Valid from")
        for rate in rates:
            table.add_row(
                _t(rate.currency), _t(rate.base_currency), _t(rate.rate), _t(rate.valid_from)
            )
        console.print(table)
        _more(console, getattr(response, "next_page_token", ""))

    ctx.out.emit(response, draw)


def cmd_orders_convert(ctx: Context, args: argparse.Namespace) -> None:
    currency = args.currency.upper()
    response = ctx.client.orders.ConvertAmount(
        opb.ConvertAmountRequest(
            amount_minor=_amount(args.amount, currency, "AMOUNT"),
            currency=currency,
            date=args.date or "",
        )
    )
    ctx.out.emit(
        response,
        lambda console: console.print(
            _key_values(
                "Converted",
                [
                    ("Amount", format_amount(response.amount_minor, response.base_currency)),
                    ("Rate", response.rate),
                    ("Rate valid from", response.rate_valid_from),
                ],
            )
        ),
    )


# --- the parser -------------------------------------------------------------------------------


def _expected_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expected-version",
        type=int,
        default=0,
        metavar="N",
        help="only if the record is still at version N (else FAILED_PRECONDITION / ABORTED)",
    )


def _rep_or_team(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rep", metavar="REP", help="a rep's calendar")
    parser.add_argument("--team", metavar="TEAM", help="a team's calendar (any free member)")


def _time_span(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, metavar="WHEN", help="ISO 8601 (no offset = UTC)")
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--end", metavar="WHEN")
    span.add_argument("--minutes", type=int, default=30, help="length (default 30)")


def _register_appointments(commands: Any) -> None:
    status = _enum_type(apb.AppointmentStatus)
    parser = commands.add_parser(
        "appointments",
        help="work calendars, free slots and bookings (with .ics)",
        description="Appointments.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cal = _command(
        actions,
        "calendar-set",
        cmd_appointments_calendar_set,
        "set a rep's or team's work calendar",
    )
    _rep_or_team(cal)
    cal.add_argument("--tz", required=True, help="IANA time zone, e.g. Europe/Berlin")
    cal.add_argument(
        "--hours",
        action="append",
        required=True,
        metavar="DAYS:HH:MM-HH:MM",
        help="working hours (repeatable), ISO weekdays, e.g. 1-5:09:00-17:00",
    )
    cal.add_argument(
        "--holiday", action="append", metavar="YYYY-MM-DD", help="a day off (repeatable)"
    )
    cal.add_argument(
        "--holiday-country", metavar="CC", help="public holidays of a country, e.g. DE"
    )
    cal.add_argument("--holiday-subdivision", metavar="SUB", help="and its subdivision, e.g. BY")
    cal.add_argument(
        "--buffer", type=int, default=0, metavar="MIN", help="minutes between appointments"
    )
    cal.add_argument(
        "--member", action="append", metavar="REP", help="a team's member (repeatable)"
    )
    _expected_version(cal)
    get = _command(actions, "calendar-get", cmd_appointments_calendar_get, "show a work calendar")
    _rep_or_team(get)

    slots = _command(
        actions, "slots", cmd_appointments_slots, "free slots, in the customer's time zone"
    )
    _rep_or_team(slots)
    slots.add_argument("--from", dest="start", required=True, metavar="WHEN", help="ISO 8601")
    slots.add_argument("--to", dest="end", required=True, metavar="WHEN", help="ISO 8601")
    slots.add_argument("--minutes", type=int, default=30, help="slot length (default 30)")
    slots.add_argument(
        "--step", type=int, default=0, metavar="MIN", help="between starts (default: length)"
    )
    slots.add_argument("--tz", required=True, help="the customer's IANA time zone")
    _paging(slots)

    book = _command(actions, "book", cmd_appointments_book, "book an appointment")
    _rep_or_team(book)
    _time_span(book)
    book.add_argument("--contact", metavar="ID", help="an existing contact")
    book.add_argument("--name", help="the customer's name (without --contact: a lead is created)")
    book.add_argument("--email")
    book.add_argument("--phone")
    book.add_argument("--lead", metavar="ID")
    book.add_argument("--opportunity", metavar="ID")
    book.add_argument("--tz", required=True, help="the customer's IANA time zone")
    book.add_argument("--subject")
    book.add_argument("--request-id", help="idempotency key")

    get = _command(actions, "get", cmd_appointments_get, "show an appointment")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_appointments_list, "list appointments")
    _rep_or_team(listing)
    listing.add_argument("--contact", metavar="ID")
    listing.add_argument("--status", type=status, help=_choices_help(apb.AppointmentStatus))
    _paging(listing)
    for verb, text in (
        ("confirm", "confirm a booked appointment"),
        ("reschedule", "move an appointment to another time"),
        ("cancel", "cancel an appointment"),
    ):
        move = _command(actions, verb, cmd_appointments_move, text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        if verb == "reschedule":
            _time_span(move)
        if verb == "cancel":
            move.add_argument("--reason")
        _expected_version(move)
    ics = _command(actions, "ics", cmd_appointments_ics, "write an appointment's .ics file")
    ics.add_argument("id", metavar="ID")
    ics.add_argument("-o", "--output", metavar="FILE", help="a folder, a file, or - for stdout")


def _register_campaigns(commands: Any) -> None:
    channel = _enum_type(cpb.CampaignChannel)
    status = _enum_type(cpb.CampaignStatus)
    parser = commands.add_parser(
        "campaigns", help="campaigns, their costs and interactions", description="Campaigns."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = _command(actions, "create", cmd_campaigns_create, "create a campaign (draft)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--channel", type=channel, required=True, help=_choices_help(cpb.CampaignChannel)
    )
    create.add_argument("--budget", help="in major units, e.g. 5000.00")
    create.add_argument("--currency", help="ISO 4217, e.g. EUR")
    create.add_argument("--segment", help="the target segment")
    create.add_argument("--request-id", help="idempotency key")
    get = _command(actions, "get", cmd_campaigns_get, "show a campaign")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_campaigns_list, "list campaigns")
    listing.add_argument("--status", type=status, help=_choices_help(cpb.CampaignStatus))
    listing.add_argument("--channel", type=channel, help=_choices_help(cpb.CampaignChannel))
    _paging(listing)
    update = _command(actions, "update", cmd_campaigns_update, "change a campaign's fields")
    update.add_argument("id", metavar="ID")
    update.add_argument("--name")
    update.add_argument("--channel", type=channel, help=_choices_help(cpb.CampaignChannel))
    update.add_argument("--segment")
    update.add_argument("--budget", help="in major units (with --currency)")
    update.add_argument("--currency")
    _expected_version(update)
    for verb, text in (
        ("activate", "start a draft campaign"),
        ("complete", "close an active campaign"),
        ("cancel", "cancel a campaign"),
    ):
        move = _command(actions, verb, cmd_campaigns_move, text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        if verb == "cancel":
            move.add_argument("--reason")
        _expected_version(move)
    cost = _command(actions, "cost", cmd_campaigns_cost, "record a cost of a campaign")
    cost.add_argument("id", metavar="ID")
    cost.add_argument("--amount", required=True, help="in major units, e.g. 120.50")
    cost.add_argument("--currency", required=True, help="ISO 4217 (the campaign's)")
    cost.add_argument("--date", metavar="YYYY-MM-DD")
    cost.add_argument("--description")
    cost.add_argument("--request-id", help="idempotency key")
    _expected_version(cost)
    ingest = _command(
        actions, "ingest", cmd_campaigns_ingest, "stream interactions from a JSON-lines or CSV file"
    )
    ingest.add_argument(
        "file",
        metavar="FILE",
        help="one interaction a line (JSON) or row (CSV with a header): campaign_id, "
        "contact_id, kind, external_id, occur_time",
    )
    ingest.add_argument("--campaign", metavar="ID", help="for rows without a campaign_id")
    ingest.add_argument("--format", choices=("jsonl", "csv"), help="default: by the file's suffix")


def _register_orders(commands: Any) -> None:
    category = _enum_type(opb.CostCategory)
    parser = commands.add_parser(
        "orders", help="orders, returns, costs and currencies (from the ERP)", description="Orders."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    record = _command(actions, "record", cmd_orders_record, "record an order")
    record.add_argument("--external-id", required=True, help="the ERP's id")
    record.add_argument("--contact", metavar="ID")
    record.add_argument("--account", metavar="ORG_ID")
    record.add_argument("--opportunity", metavar="ID")
    record.add_argument("--date", metavar="YYYY-MM-DD", help="the order date")
    record.add_argument("--currency", required=True, help="ISO 4217")
    record.add_argument(
        "--line",
        action="append",
        required=True,
        metavar="SKU:QTY:REVENUE[:COST]",
        help="a line (repeatable), its totals in major units",
    )
    get = _command(actions, "get", cmd_orders_get, "show an order")
    get.add_argument("id", metavar="ID")
    listing = _command(actions, "list", cmd_orders_list, "list orders")
    listing.add_argument("--contact", metavar="ID")
    listing.add_argument("--account", metavar="ORG_ID")
    listing.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    listing.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    _paging(listing)
    ret = _command(actions, "return", cmd_orders_return, "record a return of an order's lines")
    ret.add_argument("id", metavar="ORDER_ID")
    ret.add_argument("--external-id", required=True, help="the ERP's id of the return")
    ret.add_argument("--date", metavar="YYYY-MM-DD")
    ret.add_argument(
        "--line",
        action="append",
        required=True,
        metavar="LINE:QTY[:REFUND[:COST]]",
        help="an order line coming back (repeatable), amounts in major units",
    )
    cost = _command(actions, "cost", cmd_orders_cost, "record a cost to serve")
    cost.add_argument("--contact", metavar="ID")
    cost.add_argument("--account", metavar="ORG_ID")
    cost.add_argument(
        "--category", type=category, required=True, help=_choices_help(opb.CostCategory)
    )
    cost.add_argument("--amount", required=True, help="in major units")
    cost.add_argument("--currency", required=True)
    cost.add_argument("--period-start", required=True, metavar="YYYY-MM-DD")
    cost.add_argument("--period-end", metavar="YYYY-MM-DD", help="default: the start")
    cost.add_argument("--description")
    cost.add_argument("--request-id", help="idempotency key")
    base = _command(
        actions, "base-currency", cmd_orders_base_currency, "show or set the base currency"
    )
    base.add_argument("currency", nargs="?", metavar="CURRENCY")
    _expected_version(base)
    rate = _command(actions, "rate", cmd_orders_rate, "record an exchange rate, or list them")
    rate.add_argument("currency", nargs="?", metavar="CURRENCY")
    rate.add_argument("rate", nargs="?", metavar="RATE", help="base units per unit, e.g. 0.92")
    rate.add_argument("--from", dest="valid_from", metavar="YYYY-MM-DD", help="valid from")
    _paging(rate)
    convert = _command(actions, "convert", cmd_orders_convert, "an amount in the base currency")
    convert.add_argument("amount", metavar="AMOUNT", help="in major units")
    convert.add_argument("currency", metavar="CURRENCY")
    convert.add_argument("--date", metavar="YYYY-MM-DD", help="at that date's rate (default today)")


def register(commands: Any) -> None:
    """Add the appointments, campaigns and orders commands to ``crm``'s sub-command parsers."""
    _register_appointments(commands)
    _register_campaigns(commands)
    _register_orders(commands)
