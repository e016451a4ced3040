"""The ``crm`` appointments, campaigns and orders commands against the real gateway and sales
service: a rep's calendar → free slots in the customer's zone → a booking with a new lead → its
.ics parsed back; a campaign activated and fed a JSON-lines file (exact counts, refusals by
reason) and then a CSV of the same interactions (duplicates only); an order and its return."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from crm.contacts.v1 import contacts_pb2 as cpb
from crm_client.cli import main
from crm_testing.gateway import GatewayStack

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def crm(
    client_gateway_stack: GatewayStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """``await crm(*argv, token=...)``: the command against the real gateway, in a thread."""
    for name in ("CRM_GATEWAY", "CRM_TOKEN", "CRM_API_KEY", "CRM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    async def run(*argv: str, token: str | None = None, api_key: str | None = None) -> Run:
        args = [*argv, "--gateway", client_gateway_stack.grpc_address, "--timeout", "20"]
        if token is not None:
            args += ["--token", token]
        if api_key is not None:
            args += ["--api-key", api_key]
        code = await asyncio.to_thread(main, args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _ok(crm: Any) -> Any:
    async def ok(*argv: str, **credential: str) -> Any:
        result = await crm(*argv, "--json", **credential)
        assert result.code == 0, (argv, result.err)
        return result.json()

    return ok


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_slots_in_the_customers_zone_a_booking_with_a_lead_and_its_ics(
    client_gateway_stack: GatewayStack, crm: Any, tmp_path: Path
) -> None:
    ok = _ok(crm)
    admin = client_gateway_stack.token("acme", "admin", "alice")
    sales = client_gateway_stack.token("acme", "sales", "rep-sam")
    rep = f"rep-{uuid.uuid4().hex[:8]}"
    await ok(
        "appointments", "calendar-set", "--rep", rep, "--tz", "Europe/Berlin",
        "--hours", "1-5:09:00-17:00", token=admin,
    )  # fmt: skip
    today = date.today()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 + 7)  # a Monday 1-2 weeks ahead
    day_start = datetime.combine(monday, datetime.min.time(), BERLIN)
    window = (
        "--rep", rep, "--from", day_start.isoformat(),
        "--to", (day_start + timedelta(days=1)).isoformat(),
        "--minutes", "30", "--tz", "America/New_York",
    )  # fmt: skip
    slots = (await ok("appointments", "slots", *window, "--page-size", "100", token=sales))["slots"]
    opening = datetime.combine(monday, datetime.min.time().replace(hour=9), BERLIN)
    expected = [opening + timedelta(minutes=30 * n) for n in range(16)]  # 09:00 to 16:30
    assert [_parse(s["startTime"]) for s in slots] == expected
    assert [s["customerLocalStart"] for s in slots] == [
        at.astimezone(NEW_YORK).isoformat() for at in expected
    ]
    table = await crm("appointments", "slots", *window, token=sales)
    assert table.code == 0, table.err
    assert expected[0].astimezone(NEW_YORK).isoformat() in table.out  # 03:00-05:00 in New York

    email = f"ada+{uuid.uuid4().hex[:8]}@example.com"
    booked = await ok(
        "appointments", "book", "--rep", rep, "--start", expected[0].isoformat(),
        "--minutes", "30", "--name", "Ada Lovelace", "--email", email,
        "--tz", "America/New_York", "--subject", "Intro", token=sales,
    )  # fmt: skip
    appointment = booked["appointment"]
    assert appointment["status"] == "APPOINTMENT_STATUS_BOOKED"
    assert booked["createdLead"]["id"]
    assert booked["createdLead"]["email"] == email
    shown = await crm("appointments", "get", appointment["id"], token=sales)
    assert shown.code == 0, shown.err
    assert "Ada Lovelace" in shown.out
    after = (await ok("appointments", "slots", *window, "--page-size", "100", token=sales))["slots"]
    assert [_parse(s["startTime"]) for s in after] == expected[1:]  # the booked slot is taken

    written = await ok("appointments", "ics", appointment["id"], "-o", str(tmp_path), token=sales)
    content = await asyncio.to_thread(Path(written["file"]).read_bytes)
    calendar = icalendar.Calendar.from_ical(content)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    assert events[0].decoded("DTSTART") == expected[0]
    assert events[0].decoded("DTEND") == expected[0] + timedelta(minutes=30)

    cancelled = await ok(
        "appointments", "cancel", appointment["id"], "--reason", "ill", token=sales
    )
    assert cancelled["appointment"]["status"] == "APPOINTMENT_STATUS_CANCELLED"
    taken_again = await ok("appointments", "slots", *window, "--page-size", "100", token=sales)
    assert len(taken_again["slots"]) == 16


async def _contact(stack: GatewayStack, token: str, *, email_consent: bool) -> str:
    reply = await stack.stub("ContactsService").CreateContact(
        cpb.CreateContactRequest(
            contact=cpb.Contact(
                display_name=f"Person {uuid.uuid4().hex[:6]}",
                consent=cpb.Consent(email_marketing=email_consent),
            )
        ),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=10,
    )
    contact_id: str = reply.contact.id
    return contact_id


async def test_a_campaign_is_fed_a_file_with_exact_counts_then_duplicates_only(
    client_gateway_stack: GatewayStack, crm: Any, tmp_path: Path
) -> None:
    ok = _ok(crm)
    admin = client_gateway_stack.token("acme", "admin", "alice")
    sales = client_gateway_stack.token("acme", "sales", "rep-sam")
    created = await ok(
        "campaigns", "create", "--name", f"Spring {uuid.uuid4().hex[:6]}", "--channel", "email",
        "--budget", "5000.50", "--currency", "EUR", token=sales,
    )  # fmt: skip
    campaign = created["campaign"]
    assert campaign["budgetMinor"] == "500050"
    assert campaign["status"] == "CAMPAIGN_STATUS_DRAFT"
    early = tmp_path / "early.jsonl"
    early.write_text(
        json.dumps({"contactId": "x", "kind": "sent", "externalId": "e", "occurTime": "2026-03-02"})
        + "\n"
    )
    draft = await ok("campaigns", "ingest", str(early), "--campaign", campaign["id"], token=sales)
    assert draft["refused"] == "1"
    assert draft["refusedByReason"] == [
        {"reason": "INGEST_REFUSAL_CAMPAIGN_NOT_ACTIVE", "count": "1"}
    ]
    active = await ok("campaigns", "activate", campaign["id"], token=sales)
    assert active["campaign"]["status"] == "CAMPAIGN_STATUS_ACTIVE"

    ada = await _contact(client_gateway_stack, admin, email_consent=True)
    bob = await _contact(client_gateway_stack, admin, email_consent=True)
    eve = await _contact(client_gateway_stack, admin, email_consent=False)
    at = "2026-03-02T10:00:00Z"
    good = [
        {"contact_id": ada, "kind": "sent", "external_id": "m-1", "occur_time": at},
        {"contact_id": ada, "kind": "opened", "external_id": "m-1", "occur_time": at},
        {"contact_id": bob, "kind": "sent", "external_id": "m-2", "occur_time": at},
    ]
    bad = [
        {"contact_id": eve, "kind": "sent", "external_id": "m-3", "occur_time": at},
        {"contact_id": f"c-{uuid.uuid4().hex}", "kind": "opened", "external_id": "m-4",
         "occur_time": at},
        {"contact_id": ada, "kind": "clicked", "external_id": "m-5"},  # no time: invalid
    ]  # fmt: skip
    feed = tmp_path / "interactions.jsonl"
    feed.write_text("".join(json.dumps(item) + "\n" for item in good + bad))
    summary = await ok("campaigns", "ingest", str(feed), "--campaign", campaign["id"], token=sales)
    assert (summary["received"], summary["accepted"], summary.get("duplicates", "0")) == (
        "6",
        "3",
        "0",
    )
    assert summary["refused"] == "3"
    assert {r["reason"]: r["count"] for r in summary["refusedByReason"]} == {
        "INGEST_REFUSAL_NO_CONSENT": "1",
        "INGEST_REFUSAL_CONTACT_NOT_FOUND": "1",
        "INGEST_REFUSAL_INVALID": "1",
    }
    assert {(e.get("index", "0"), e["reason"]) for e in summary["errors"]} == {
        ("3", "INGEST_REFUSAL_NO_CONSENT"),
        ("4", "INGEST_REFUSAL_CONTACT_NOT_FOUND"),
        ("5", "INGEST_REFUSAL_INVALID"),
    }

    again = tmp_path / "again.csv"
    rows = ["campaign_id,contact_id,kind,external_id,occur_time"] + [
        f"{campaign['id']},{g['contact_id']},{g['kind']},{g['external_id']},{g['occur_time']}"
        for g in good
    ]
    again.write_text("\n".join(rows) + "\n")
    table = await crm("campaigns", "ingest", str(again), token=sales)
    assert table.code == 0, table.err
    assert "Duplicates" in table.out
    repeat = await ok("campaigns", "ingest", str(again), token=sales)
    assert repeat["received"] == "3"
    assert repeat["duplicates"] == "3"
    assert repeat.get("accepted", "0") == "0"
    assert repeat.get("refused", "0") == "0"


async def test_an_order_and_its_return_in_exact_minor_units(
    client_gateway_stack: GatewayStack, crm: Any
) -> None:
    ok = _ok(crm)
    admin = client_gateway_stack.token("acme", "admin", "alice")
    connector = client_gateway_stack.api_keys["acme-integration"]
    contact = await _contact(client_gateway_stack, admin, email_consent=False)
    recorded = await ok(
        "orders", "record", "--external-id", f"ERP-{uuid.uuid4().hex[:8]}", "--contact", contact,
        "--date", "2026-03-15", "--currency", "EUR", "--line", "SEAT:3:37.50:9",
        "--line", "BOX:1:10", api_key=connector,
    )  # fmt: skip
    order = recorded["order"]
    assert (order["revenueTotalMinor"], order["costTotalMinor"]) == ("4750", "900")
    returned = await ok(
        "orders", "return", order["id"], "--external-id", f"RET-{uuid.uuid4().hex[:8]}",
        "--date", "2026-03-20", "--line", "1:1:12.50:3", api_key=connector,
    )  # fmt: skip
    assert returned["return"]["revenueTotalMinor"] == "1250"
    assert returned["return"]["costTotalMinor"] == "300"
    assert returned["order"]["returned"] == [
        {"lineNumber": 1, "quantity": "1", "revenueMinor": "1250", "costMinor": "300"},
        {"lineNumber": 2},  # nothing of the box came back
    ]
    shown = await crm("orders", "get", order["id"], api_key=connector)
    assert shown.code == 0, shown.err
    assert "47.50 EUR" in shown.out
    too_many = await crm(
        "orders", "return", order["id"], "--external-id", f"RET-{uuid.uuid4().hex[:8]}",
        "--line", "1:3", api_key=connector,
    )  # fmt: skip
    assert too_many.code != 0
    # A return beyond what is left of the line is a field violation of that line.
    assert "INVALID_ARGUMENT" in too_many.err, too_many.err
    assert "exceeds what is left to return of line 1" in too_many.err, too_many.err
