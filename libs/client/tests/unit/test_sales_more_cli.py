"""The appointments, campaigns and orders commands of ``crm`` against a fake gateway: the
requests they make (times, minor units, the interactions streamed from a file), their tables
and JSON, the .ics written to a file, usage errors (nothing called) and gRPC errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.rpc import error_details_pb2

from crm.sales.v1 import appointments_pb2 as apb
from crm.sales.v1 import campaigns_pb2 as cpb
from crm.sales.v1 import orders_pb2 as opb
from crm.sales.v1 import sales_pb2 as pb
from crm_client.cli import main

if TYPE_CHECKING:
    from libs.client.tests.unit.conftest import FakeGateway


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def crm(gateway: FakeGateway, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        code = main([*argv, "--gateway", gateway.target, "--token", "tok"])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _utc(stamp: Any) -> datetime:
    result: datetime = stamp.ToDatetime(tzinfo=UTC)
    return result


# --- appointments -----------------------------------------------------------------------------


def test_calendar_set_reads_working_hours_holidays_and_buffer(
    gateway: FakeGateway, crm: Any
) -> None:
    result = crm(
        "appointments", "calendar-set", "--rep", "rep-1", "--tz", "Europe/Berlin",
        "--hours", "1-5:09:00-17:30", "--hours", "6:10:00-12:00",
        "--holiday", "2026-12-24", "--holiday-country", "DE", "--buffer", "10",
    )  # fmt: skip
    assert result.code == 0, result.err
    calendar = gateway.last("SetWorkCalendar").request.calendar
    assert calendar.owner_kind == apb.CALENDAR_OWNER_KIND_REP
    assert calendar.owner_id == "rep-1"
    assert calendar.time_zone == "Europe/Berlin"
    assert [(h.weekday, h.start_minute, h.end_minute) for h in calendar.working_hours] == [
        *[(day, 540, 1050) for day in range(1, 6)],
        (6, 600, 720),
    ]
    assert list(calendar.holidays) == ["2026-12-24"]
    assert calendar.holiday_country == "DE"
    assert calendar.buffer_minutes == 10


@pytest.mark.parametrize(
    "argv",
    [
        ("--hours", "1-5"),
        ("--hours", "0-5:09:00-17:00"),
        ("--hours", "1-8:09:00-17:00"),
        ("--hours", "1-5:9am-17:00"),
        ("--hours", "1-5:09:00-25:00"),
        ("--team", "t-1", "--hours", "1-5:09:00-17:00"),
    ],
)
def test_bad_calendars_are_usage_errors_and_call_nothing(
    gateway: FakeGateway, crm: Any, argv: tuple[str, ...]
) -> None:
    result = crm("appointments", "calendar-set", "--rep", "rep-1", "--tz", "UTC", *argv)
    assert result.code == 2, result.out
    assert not gateway.calls


def test_slots_send_the_range_and_zone_and_show_the_customers_times(
    gateway: FakeGateway, crm: Any
) -> None:
    gateway.responses["FindFreeSlots"] = apb.FindFreeSlotsResponse(
        slots=[
            apb.Slot(
                rep_id="rep-1",
                customer_local_start="2026-03-02 04:00",
                customer_local_end="2026-03-02 04:30",
            )
        ]
    )
    result = crm(
        "appointments", "slots", "--team", "t-1", "--from", "2026-03-02T09:00:00+01:00",
        "--to", "2026-03-03", "--minutes", "30", "--step", "15", "--tz", "America/New_York",
    )  # fmt: skip
    assert result.code == 0, result.err
    request = gateway.last("FindFreeSlots").request
    assert request.team_id == "t-1"
    assert not request.rep_id
    assert _utc(request.range_start) == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert _utc(request.range_end) == datetime(2026, 3, 3, tzinfo=UTC)
    assert (request.slot_minutes, request.step_minutes) == (30, 15)
    assert request.customer_time_zone == "America/New_York"
    assert "2026-03-02 04:00" in result.out
    assert "America/New_York" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ("--from", "2026-03-02", "--to", "2026-03-03"),  # neither rep nor team
        ("--rep", "r", "--team", "t", "--from", "2026-03-02", "--to", "2026-03-03"),
        ("--rep", "r", "--from", "2026-03-03", "--to", "2026-03-02"),
        ("--rep", "r", "--from", "soon", "--to", "2026-03-02"),
    ],
)
def test_bad_slot_queries_are_usage_errors(
    gateway: FakeGateway, crm: Any, argv: tuple[str, ...]
) -> None:
    result = crm("appointments", "slots", *argv, "--tz", "UTC")
    assert result.code == 2, result.out
    assert not gateway.calls


def test_book_with_a_name_and_email_shows_the_created_lead(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["BookAppointment"] = apb.BookAppointmentResponse(
        appointment=apb.Appointment(id="a-1", status=apb.APPOINTMENT_STATUS_BOOKED),
        created_lead=pb.Lead(id="lead-9", person_name="Ada Lovelace"),
    )
    result = crm(
        "appointments", "book", "--rep", "rep-1", "--start", "2026-03-02T10:00:00+01:00",
        "--minutes", "45", "--name", "Ada Lovelace", "--email", "ada@example.com",
        "--tz", "Europe/London", "--subject", "Intro",
    )  # fmt: skip
    assert result.code == 0, result.err
    request = gateway.last("BookAppointment").request
    assert _utc(request.start_time) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert _utc(request.end_time) == datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
    assert (request.customer_name, request.customer_email) == ("Ada Lovelace", "ada@example.com")
    assert request.customer_time_zone == "Europe/London"
    assert "a-1" in result.out
    assert "Created lead" in result.out
    assert "lead-9" in result.out


def test_book_needs_a_contact_or_a_name_with_email_or_phone(gateway: FakeGateway, crm: Any) -> None:
    base = ("appointments", "book", "--rep", "r", "--start", "2026-03-02T10:00", "--tz", "UTC")
    assert crm(*base, "--name", "Ada").code == 2
    assert crm(*base, "--email", "ada@example.com").code == 2
    assert not gateway.calls
    assert crm(*base, "--contact", "c-1").code == 0
    assert gateway.last("BookAppointment").request.contact_id == "c-1"


def test_appointment_verbs_call_their_operations(gateway: FakeGateway, crm: Any) -> None:
    assert crm("appointments", "confirm", "a-1", "--expected-version", "2").code == 0
    assert gateway.last().method == "ConfirmAppointment"
    assert gateway.last().request.expected_version == 2
    assert crm("appointments", "cancel", "a-1", "--reason", "ill").code == 0
    assert gateway.last().request.reason == "ill"
    moved = crm(
        "appointments", "reschedule", "a-1", "--start", "2026-03-04T15:00Z", "--end",
        "2026-03-04T16:00Z",
    )  # fmt: skip
    assert moved.code == 0, moved.err
    request = gateway.last("RescheduleAppointment").request
    assert _utc(request.end_time) - _utc(request.start_time) == datetime(
        2026, 1, 1, 1, tzinfo=UTC
    ) - datetime(2026, 1, 1, tzinfo=UTC)


def test_ics_writes_the_calendar_file(gateway: FakeGateway, crm: Any, tmp_path: Path) -> None:
    ics = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    gateway.responses["GetAppointmentCalendarFile"] = apb.GetAppointmentCalendarFileResponse(
        content=ics, content_type="text/calendar", file_name="appointment-a-1.ics"
    )
    result = crm("appointments", "ics", "a-1", "-o", str(tmp_path), "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "appointment-a-1.ics").read_bytes() == ics
    assert result.json()["bytes"] == len(ics)


def test_a_taken_slot_shows_the_grpc_error(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail(
        "BookAppointment",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the slot is taken",
        error_details_pb2.PreconditionFailure(
            violations=[error_details_pb2.PreconditionFailure.Violation(type="SLOT_TAKEN")]
        ),
    )
    result = crm(
        "appointments", "book", "--rep", "r", "--start", "2026-03-02T10:00", "--tz", "UTC",
        "--contact", "c-1",
    )  # fmt: skip
    assert result.code == 1
    assert "FAILED_PRECONDITION" in result.err
    assert "SLOT_TAKEN" in result.err


# --- campaigns --------------------------------------------------------------------------------


def test_campaigns_create_sends_the_budget_in_minor_units(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["CreateCampaign"] = cpb.CreateCampaignResponse(
        campaign=cpb.Campaign(id="cmp-1", name="Spring", budget_minor=500_050, currency="EUR")
    )
    result = crm(
        "campaigns", "create", "--name", "Spring", "--channel", "email", "--budget", "5000.50",
        "--currency", "eur",
    )  # fmt: skip
    assert result.code == 0, result.err
    campaign = gateway.last("CreateCampaign").request.campaign
    assert (campaign.budget_minor, campaign.currency) == (500_050, "EUR")
    assert campaign.channel == cpb.CAMPAIGN_CHANNEL_EMAIL
    assert "5,000.50 EUR" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ("--budget", "10.001", "--currency", "EUR"),
        ("--budget", "10"),
        ("--budget", "-5", "--currency", "EUR"),
    ],
)
def test_bad_budgets_are_usage_errors(
    gateway: FakeGateway, crm: Any, argv: tuple[str, ...]
) -> None:
    result = crm("campaigns", "create", "--name", "S", "--channel", "email", *argv)
    assert result.code == 2, result.out
    assert not gateway.calls


def test_campaigns_update_sends_only_the_given_fields(gateway: FakeGateway, crm: Any) -> None:
    assert crm("campaigns", "update", "cmp-1", "--name", "Summer").code == 0
    request = gateway.last("UpdateCampaign").request
    assert list(request.update_mask.paths) == ["name"]
    assert request.campaign.id == "cmp-1"
    assert crm("campaigns", "update", "cmp-1").code == 2


def test_campaign_verbs_and_cost(gateway: FakeGateway, crm: Any) -> None:
    for verb, method in (
        ("activate", "ActivateCampaign"),
        ("complete", "CompleteCampaign"),
        ("cancel", "CancelCampaign"),
    ):
        assert crm("campaigns", verb, "cmp-1").code == 0
        assert gateway.last().method == method
    result = crm(
        "campaigns", "cost", "cmp-1", "--amount", "1250", "--currency", "JPY", "--date",
        "2026-03-01",
    )  # fmt: skip
    assert result.code == 0, result.err
    cost = gateway.last("RecordCampaignCost").request.cost
    assert (cost.amount_minor, cost.currency, cost.cost_date) == (1250, "JPY", "2026-03-01")


def test_ingest_streams_a_jsonl_file_and_prints_the_summary(
    gateway: FakeGateway, crm: Any, tmp_path: Path
) -> None:
    lines = [
        {
            "externalId": "i-1",
            "contactId": "c-1",
            "kind": "opened",
            "occurTime": "2026-03-01T10:00Z",
        },
        {"external_id": "i-2", "contact_id": "c-2", "kind": "clicked", "campaign_id": "cmp-2"},
    ]
    path = tmp_path / "interactions.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    gateway.responses["IngestCampaignInteractions"] = cpb.IngestSummary(
        received=2,
        accepted=1,
        refused=1,
        refused_by_reason=[
            cpb.IngestRefusalCount(reason=cpb.INGEST_REFUSAL_CONTACT_NOT_FOUND, count=1)
        ],
        errors=[
            cpb.IngestItemError(
                index=1, reason=cpb.INGEST_REFUSAL_CONTACT_NOT_FOUND, message="no contact c-2"
            )
        ],
    )
    result = crm("campaigns", "ingest", str(path), "--campaign", "cmp-1")
    assert result.code == 0, result.err
    sent = gateway.last("IngestCampaignInteractions").request
    assert [(i.external_id, i.campaign_id, i.contact_id) for i in sent] == [
        ("i-1", "cmp-1", "c-1"),
        ("i-2", "cmp-2", "c-2"),
    ]
    assert sent[0].kind == cpb.CAMPAIGN_INTERACTION_KIND_OPENED
    assert _utc(sent[0].occur_time) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert "contact_not_found" in result.out.lower().replace(" ", "_")
    assert "no contact c-2" in result.out
    as_json = crm("campaigns", "ingest", str(path), "--campaign", "cmp-1", "--json").json()
    assert as_json["accepted"] == "1"  # int64: a string in proto3 JSON
    assert as_json["refused"] == "1"


def test_ingest_reads_csv(gateway: FakeGateway, crm: Any, tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(
        "external_id,campaign_id,contact_id,kind\ni-1,cmp-1,c-1,sent\ni-2,cmp-1,c-2,responded\n"
    )
    assert crm("campaigns", "ingest", str(path)).code == 0
    sent = gateway.last("IngestCampaignInteractions").request
    assert [i.kind for i in sent] == [
        cpb.CAMPAIGN_INTERACTION_KIND_SENT,
        cpb.CAMPAIGN_INTERACTION_KIND_RESPONDED,
    ]


@pytest.mark.parametrize(
    "content",
    ['{"id": "i-1", "kind": "opened"}\nnot json\n', '["a list"]\n', '{"kind": "waved"}\n', ""],
)
def test_bad_ingest_files_are_usage_errors_and_stream_nothing(
    gateway: FakeGateway, crm: Any, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    result = crm("campaigns", "ingest", str(path))
    assert result.code == 2, result.out
    assert not gateway.calls
    assert crm("campaigns", "ingest", str(tmp_path / "missing.jsonl")).code == 2


# --- orders -----------------------------------------------------------------------------------


def test_orders_record_reads_lines_in_minor_units(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["RecordOrder"] = opb.RecordOrderResponse(
        order=opb.Order(
            id="ord-1",
            currency="EUR",
            revenue_total_minor=30_050,
            lines=[opb.OrderLine(line_number=1, sku="SEAT", quantity=3, revenue_minor=30_050)],
        )
    )
    result = crm(
        "orders", "record", "--external-id", "ERP-1", "--contact", "c-1", "--currency", "eur",
        "--date", "2026-03-01", "--line", "SEAT:3:300.50:120", "--line", "BOX:1:0",
    )  # fmt: skip
    assert result.code == 0, result.err
    order = gateway.last("RecordOrder").request.order
    assert [(x.sku, x.quantity, x.revenue_minor, x.cost_minor) for x in order.lines] == [
        ("SEAT", 3, 30_050, 12_000),
        ("BOX", 1, 0, 0),
    ]
    assert "300.50 EUR" in result.out


@pytest.mark.parametrize("line", ["SEAT:3", "SEAT:x:10", "SEAT:1:1.001", ":1:1", "S:1:1:1:1"])
def test_bad_order_lines_are_usage_errors(gateway: FakeGateway, crm: Any, line: str) -> None:
    result = crm(
        "orders", "record", "--external-id", "E", "--currency", "EUR", "--line", line
    )  # fmt: skip
    assert result.code == 2, result.out
    assert not gateway.calls


def test_orders_return_uses_the_orders_currency(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetOrder"] = opb.GetOrderResponse(
        order=opb.Order(id="ord-1", currency="JPY")
    )
    result = crm("orders", "return", "ord-1", "--external-id", "RET-1", "--line", "1:1:1800:700")
    assert result.code == 0, result.err
    record = getattr(gateway.last("RecordReturn").request, "return")
    assert record.order_id == "ord-1"
    assert [(x.line_number, x.quantity, x.revenue_minor, x.cost_minor) for x in record.lines] == [
        (1, 1, 1800, 700)
    ]
    assert crm("orders", "return", "ord-1", "--external-id", "R", "--line", "1:1:0.5").code == 2


def test_currencies_rate_and_convert(gateway: FakeGateway, crm: Any) -> None:
    assert crm("orders", "base-currency", "eur").code == 0
    assert gateway.last("SetBaseCurrency").request.base_currency == "EUR"
    assert crm("orders", "base-currency").code == 0
    assert gateway.last().method == "GetCurrencySettings"
    assert crm("orders", "rate", "usd", "0.92", "--from", "2026-01-01").code == 0
    rate = gateway.last("RecordExchangeRate").request.rate
    assert (rate.currency, rate.rate, rate.valid_from) == ("USD", "0.92", "2026-01-01")
    assert crm("orders", "rate", "usd").code == 2
    gateway.responses["ConvertAmount"] = opb.ConvertAmountResponse(
        amount_minor=9_200, base_currency="EUR", rate="0.92"
    )
    result = crm("orders", "convert", "100.00", "usd", "--date", "2026-03-01")
    assert result.code == 0, result.err
    request = gateway.last("ConvertAmount").request
    assert (request.amount_minor, request.currency, request.date) == (10_000, "USD", "2026-03-01")
    assert "92.00 EUR" in result.out


def test_an_over_return_shows_the_grpc_error(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetOrder"] = opb.GetOrderResponse(
        order=opb.Order(id="ord-1", currency="EUR")
    )
    gateway.fail("RecordReturn", grpc.StatusCode.FAILED_PRECONDITION, "more than was ordered")
    result = crm("orders", "return", "ord-1", "--external-id", "R", "--line", "1:9")
    assert result.code == 1
    assert "FAILED_PRECONDITION" in result.err
    assert "more than was ordered" in result.err
