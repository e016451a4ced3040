"""The ``crm`` command against a fake gateway: requests, tables, JSON, errors, exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.rpc import error_details_pb2

from crm.contacts.v1 import contacts_pb2
from crm.gateway.v1 import gateway_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as sd
from crm_client.cli import DEFAULT_KPIS, main

if TYPE_CHECKING:
    from libs.client.tests.unit.conftest import FakeGateway

T0 = 1767225600  # 2026-01-01T00:00:00Z


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


ANN = contacts_pb2.Contact(
    id="c-7f3a",
    given_name="Ann",
    family_name="Lee",
    tier=contacts_pb2.VALUE_TIER_GOLD,
    lifecycle_stage=contacts_pb2.LIFECYCLE_STAGE_CUSTOMER,
    version=3,
    create_time=ts(T0),
    update_time=ts(T0 + 3600),
    identities=[
        contacts_pb2.Identity(
            kind=contacts_pb2.IDENTITY_KIND_EMAIL, value="ann@example.com", primary=True
        ),
        contacts_pb2.Identity(
            kind=contacts_pb2.IDENTITY_KIND_SOCIAL,
            network=contacts_pb2.SOCIAL_NETWORK_X,
            value="@ann",
            primary=True,
        ),
    ],
)
TICKET = sd.Ticket(
    id="t-91c2",
    subject="[urgent] Refund not received",
    status=sd.TICKET_STATUS_OPEN,
    type=sd.TICKET_TYPE_COMPLAINT,
    channel=sd.CHANNEL_EMAIL,
    priority=sd.PRIORITY_HIGH,
    contact_id="c-7f3a",
    assignee_id="alice",
    version=4,
    create_time=ts(T0 + 7200),
    sla=sd.TicketSla(
        policy_id="gold-email",
        policy_version=2,
        clocks=[
            sd.SlaClock(
                target=sd.SLA_TARGET_FIRST_RESPONSE,
                clock=sd.CLOCK_KIND_BUSINESS,
                target_duration=duration_pb2.Duration(seconds=3600),
                state=sd.SLA_CLOCK_STATE_BREACHED,
            )
        ],
    ),
)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def crm(gateway: FakeGateway, capsys: pytest.CaptureFixture[str]) -> Any:
    """``crm(*argv)``: run the command against the fake gateway with a token."""

    def run(*argv: str, token: str | None = "tok") -> Run:
        args = [*argv, "--gateway", gateway.target]
        if token is not None:
            args += ["--token", token]
        code = main(args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# --- identity and credentials ---------------------------------------------------------------


def test_whoami_table_and_the_token_is_sent(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetCaller"] = gateway_pb2.GetCallerResponse(
        tenant_id="acme",
        actor="agent:alice",
        role="agent",
        credential="jwt",
        permissions=[
            "/crm.gateway.v1.ContactsService/GetContact",
            "/crm.gateway.v1.TicketService/AddMessage",
        ],
    )
    result = crm("whoami", token="s3cret")
    assert result.code == 0, result.err
    assert gateway.last("GetCaller").metadata["authorization"] == "Bearer s3cret"
    for text in ("acme", "agent:alice", "jwt", "ContactsService", "GetContact", "AddMessage"):
        assert text in result.out


def test_whoami_json_is_the_response_in_proto3_json(gateway: FakeGateway, crm: Any) -> None:
    response = gateway_pb2.GetCallerResponse(tenant_id="acme", actor="agent:alice", role="agent")
    gateway.responses["GetCaller"] = response
    result = crm("--json", "whoami")
    assert result.code == 0
    assert result.json() == json_format.MessageToDict(response)
    assert result.json()["tenantId"] == "acme"
    parsed = json_format.ParseDict(result.json(), gateway_pb2.GetCallerResponse())
    assert parsed == response


def test_connection_options_work_after_the_command_too(gateway: FakeGateway, crm: Any) -> None:
    result = crm("whoami", "--json", "--api-key", "crm_k_s", token=None)
    assert result.code == 0
    assert result.json() == {}
    assert gateway.last().metadata["x-api-key"] == "crm_k_s"


def test_credential_from_the_environment(
    gateway: FakeGateway, crm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_API_KEY", "crm_env_key")
    assert crm("whoami", token=None).code == 0
    assert gateway.last().metadata["x-api-key"] == "crm_env_key"


def test_token_and_api_key_together_are_a_usage_error(gateway: FakeGateway, crm: Any) -> None:
    result = crm("whoami", "--api-key", "k")
    assert result.code == 2
    assert "not both" in result.err
    assert gateway.calls == []


def test_unauthenticated_exits_3_with_a_hint(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail("GetCaller", grpc.StatusCode.UNAUTHENTICATED, "missing credential")
    result = crm("whoami", token=None)
    assert result.code == 3
    assert "UNAUTHENTICATED: missing credential" in result.err
    assert "--token" in result.err
    assert result.out == ""


def test_permission_denied_exits_3(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail(
        "ListContacts", grpc.StatusCode.PERMISSION_DENIED, "role viewer may not ListContacts"
    )
    result = crm("contacts", "list")
    assert result.code == 3
    assert "PERMISSION_DENIED: role viewer may not ListContacts" in result.err


# --- contacts -------------------------------------------------------------------------------


def test_contacts_create_builds_identities(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["CreateContact"] = contacts_pb2.CreateContactResponse(contact=ANN)
    result = crm(
        "contacts",
        "create",
        "--given-name",
        "Ann",
        "--family-name",
        "Lee",
        "--email",
        "ann@example.com",
        "--email",
        "ann@work.example",
        "--phone",
        "+4930123456",
        "--handle",
        "twitter:@ann",
        "--tier",
        "gold",
        "--request-id",
        "r-1",
    )
    assert result.code == 0, result.err
    request = gateway.last("CreateContact").request
    assert request.request_id == "r-1"
    contact = request.contact
    assert (contact.given_name, contact.family_name) == ("Ann", "Lee")
    assert contact.tier == contacts_pb2.VALUE_TIER_GOLD
    assert [(i.kind, i.value, i.primary) for i in contact.identities] == [
        (contacts_pb2.IDENTITY_KIND_EMAIL, "ann@example.com", True),
        (contacts_pb2.IDENTITY_KIND_EMAIL, "ann@work.example", False),
        (contacts_pb2.IDENTITY_KIND_PHONE, "+4930123456", True),
        (contacts_pb2.IDENTITY_KIND_SOCIAL, "@ann", True),
    ]
    assert contact.identities[3].network == contacts_pb2.SOCIAL_NETWORK_X
    assert "c-7f3a" in result.out
    assert "ann@example.com" in result.out


def test_contacts_create_refuses_a_handle_without_network(gateway: FakeGateway, crm: Any) -> None:
    result = crm("contacts", "create", "--given-name", "Ann", "--handle", "@ann")
    assert result.code == 2
    assert "NETWORK:HANDLE" in result.err
    bad_network = crm("contacts", "create", "--given-name", "Ann", "--handle", "myspace:@ann")
    assert bad_network.code == 2
    assert "mastodon" in bad_network.err
    assert gateway.calls == []


def test_contacts_get_shows_the_contact(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetContact"] = contacts_pb2.GetContactResponse(contact=ANN)
    result = crm("contacts", "get", "c-7f3a")
    assert result.code == 0
    assert gateway.last("GetContact").request.id == "c-7f3a"
    for text in ("Ann Lee", "gold", "customer", "ann@example.com", "@ann", "2026-01-01 01:00:00Z"):
        assert text in result.out


def test_contacts_list_table_and_next_page(gateway: FakeGateway, crm: Any) -> None:
    bob = contacts_pb2.Contact(
        id="c-1b2c",
        display_name="Bob",
        identities=[
            contacts_pb2.Identity(kind=contacts_pb2.IDENTITY_KIND_PHONE, value="+4930123456")
        ],
    )
    gateway.responses["ListContacts"] = contacts_pb2.ListContactsResponse(
        contacts=[ANN, bob], next_page_token="tok-2"
    )
    result = crm("contacts", "list", "--page-size", "2", "--tier", "GOLD", "--stage", "former")
    assert result.code == 0
    request = gateway.last("ListContacts").request
    assert request.page_size == 2
    assert request.tier == contacts_pb2.VALUE_TIER_GOLD
    assert request.lifecycle_stage == contacts_pb2.LIFECYCLE_STAGE_FORMER_CUSTOMER
    lines = result.out.splitlines()
    ann_row = next(line for line in lines if "c-7f3a" in line)
    assert "Ann Lee" in ann_row
    assert "ann@example.com" in ann_row
    bob_row = next(line for line in lines if "c-1b2c" in line)
    assert "Bob" in bob_row
    assert "+4930123456" in bob_row
    assert "Contacts (2)" in result.out
    assert "--page-token tok-2" in result.out


def test_contacts_search(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["SearchContacts"] = contacts_pb2.SearchContactsResponse(contacts=[ANN])
    result = crm("contacts", "search", "an", "--json")
    assert result.code == 0
    assert gateway.last("SearchContacts").request.name_prefix == "an"
    assert result.json()["contacts"][0]["id"] == "c-7f3a"


# --- tickets --------------------------------------------------------------------------------


def test_tickets_create_defaults_and_requester_identity(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["CreateTicket"] = sd.CreateTicketResponse(ticket=TICKET)
    result = crm(
        "tickets",
        "create",
        "--requester",
        "social:twitter:@ann",
        "--subject",
        "Where is my refund?",
        "--channel",
        "chat",
        "--priority",
        "urgent",
        "--tag",
        "refund,vip",
        "--message",
        "I am still waiting",
    )
    assert result.code == 0, result.err
    request = gateway.last("CreateTicket").request
    assert request.ticket.subject == "Where is my refund?"
    assert request.ticket.channel == sd.CHANNEL_LIVE_CHAT
    assert request.ticket.priority == sd.PRIORITY_URGENT
    assert request.ticket.type == sd.TICKET_TYPE_SERVICE_REQUEST
    assert list(request.ticket.tags) == ["refund", "vip"]
    assert request.first_message == "I am still waiting"
    assert request.ticket.contact_id == ""
    assert (request.requester_identity.kind, request.requester_identity.network) == (
        "social",
        "x",
    )
    assert request.requester_identity.value == "@ann"
    # The subject is shown as it is, not read as markup.
    assert "[urgent] Refund not received" in result.out
    assert "breached" in result.out


def test_tickets_create_needs_one_requester(gateway: FakeGateway, crm: Any) -> None:
    assert crm("tickets", "create", "--subject", "x").code == 2
    both = crm("tickets", "create", "--subject", "x", "--contact", "c", "--requester", "email:a")
    assert both.code == 2
    bad_channel = crm("tickets", "create", "--subject", "x", "--contact", "c", "--channel", "fax")
    assert bad_channel.code == 2
    assert "live_chat" in bad_channel.err
    assert gateway.calls == []


def test_tickets_create_with_contact(gateway: FakeGateway, crm: Any) -> None:
    result = crm(
        "tickets", "create", "--contact", "c-7f3a", "--subject", "Hi", "--type", "incident"
    )
    assert result.code == 0
    request = gateway.last("CreateTicket").request
    assert request.ticket.contact_id == "c-7f3a"
    assert request.ticket.channel == sd.CHANNEL_EMAIL
    assert request.ticket.type == sd.TICKET_TYPE_INCIDENT
    assert not request.HasField("requester_identity")


def test_tickets_get_with_messages_json(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetTicket"] = sd.GetTicketResponse(ticket=TICKET)
    gateway.responses["ListMessages"] = sd.ListMessagesResponse(
        messages=[
            sd.Message(
                id="m-1",
                author_type=sd.AUTHOR_TYPE_CUSTOMER,
                visibility=sd.VISIBILITY_PUBLIC,
                body="Hello?",
            )
        ]
    )
    table = crm("tickets", "get", "t-91c2", "--internal")
    assert table.code == 0
    assert gateway.last("ListMessages").request.include_internal is True
    assert "Hello?" in table.out
    assert "first_response" in table.out
    document = crm("tickets", "get", "t-91c2", "--messages", "--json").json()
    assert document["ticket"]["id"] == "t-91c2"
    assert document["messages"][0]["body"] == "Hello?"
    assert gateway.last("ListMessages").request.include_internal is False


def test_tickets_list_filters(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["ListTickets"] = sd.ListTicketsResponse(tickets=[TICKET])
    result = crm(
        "tickets", "list", "--status", "open,pending", "--status", "on-hold", "--contact", "c-7f3a"
    )
    assert result.code == 0, result.err
    request = gateway.last("ListTickets").request
    assert list(request.statuses) == [
        sd.TICKET_STATUS_OPEN,
        sd.TICKET_STATUS_PENDING_CUSTOMER,
        sd.TICKET_STATUS_ON_HOLD,
    ]
    assert request.contact_id == "c-7f3a"
    row = next(line for line in result.out.splitlines() if "t-91c2" in line)
    for text in ("open", "high", "complaint", "email", "alice"):
        assert text in row
    assert crm("tickets", "list", "--status", "sleeping").code == 2


def test_tickets_reply_internal_note(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["AddMessage"] = sd.AddMessageResponse(
        message=sd.Message(id="m-2", ticket_id="t-91c2", visibility=sd.VISIBILITY_INTERNAL),
        ticket=TICKET,
    )
    result = crm("tickets", "reply", "t-91c2", "--body", "checking with billing", "--internal")
    assert result.code == 0
    request = gateway.last("AddMessage").request
    assert request.ticket_id == "t-91c2"
    assert request.message.body == "checking with billing"
    assert request.message.visibility == sd.VISIBILITY_INTERNAL
    assert request.message.author_type == sd.AUTHOR_TYPE_AGENT
    assert "Added internal message m-2 to ticket t-91c2" in result.out


@pytest.mark.parametrize(
    ("verb", "extra", "status"),
    [
        ("resolve", [], sd.TICKET_STATUS_RESOLVED),
        ("reopen", [], sd.TICKET_STATUS_OPEN),
        ("open", [], sd.TICKET_STATUS_OPEN),
        ("pause", [], sd.TICKET_STATUS_PENDING_CUSTOMER),
        ("pause", ["--on-hold"], sd.TICKET_STATUS_ON_HOLD),
        ("close", [], sd.TICKET_STATUS_CLOSED),
    ],
)
def test_ticket_transitions(
    gateway: FakeGateway, crm: Any, verb: str, extra: list[str], status: int
) -> None:
    gateway.responses["TransitionTicket"] = sd.TransitionTicketResponse(
        ticket=sd.Ticket(id="t-91c2", status=status, version=7)  # type: ignore[arg-type]
    )
    result = crm("tickets", verb, "t-91c2", *extra)
    assert result.code == 0, result.err
    request = gateway.last("TransitionTicket").request
    assert (request.id, request.status, request.expected_version) == ("t-91c2", status, 0)
    assert "Ticket t-91c2 is now" in result.out
    assert "(version 7)" in result.out


def test_transition_with_expected_version_and_stale_answer(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail(
        "TransitionTicket",
        grpc.StatusCode.FAILED_PRECONDITION,
        "ticket t-91c2 is at version 5, not 4",
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="STALE_VERSION", subject="tickets/t-91c2", description="changed"
                )
            ]
        ),
    )
    result = crm(
        "tickets", "resolve", "t-91c2", "--expected-version", "4", "--reason", "refund sent"
    )
    request = gateway.last("TransitionTicket").request
    assert (request.expected_version, request.reason) == (4, "refund sent")
    assert result.code == 1
    assert "FAILED_PRECONDITION: ticket t-91c2 is at version 5, not 4" in result.err
    assert "STALE_VERSION (tickets/t-91c2): changed" in result.err


# --- metrics --------------------------------------------------------------------------------


def _value(kpi: str, unit: str, value: float, count: int, **more: Any) -> metrics_pb2.KpiValue:
    return metrics_pb2.KpiValue(kpi=kpi, unit=unit, value=value, count=count, **more)


def test_kpis_default_query_is_headline_kpis_last_7_days_totals(
    gateway: FakeGateway, crm: Any
) -> None:
    gateway.responses["GetKpis"] = metrics_pb2.GetKpisResponse(
        groups=[
            metrics_pb2.KpiGroup(
                totals=[
                    _value("tickets_created@1", "1", 1234, 1234),
                    _value("frt_wall@1", "s", 3725, 980, p90=14000),
                    _value("sla_first_response@1", "%", 91.25, 800),
                    metrics_pb2.KpiValue(kpi="csat@1", unit="%", count=0),
                ]
            )
        ],
        definitions=["frt_wall@1"],
    )
    before = datetime.now(UTC)
    result = crm("kpis")
    after = datetime.now(UTC)
    assert result.code == 0, result.err
    request = gateway.last("GetKpis").request
    assert list(request.kpis) == list(DEFAULT_KPIS)
    assert request.granularity == metrics_pb2.GRANULARITY_TOTAL
    end = request.end_time.ToDatetime(tzinfo=UTC)
    start = request.start_time.ToDatetime(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= end <= after
    assert end - start == timedelta(days=7)
    frt = next(line for line in result.out.splitlines() if "frt_wall" in line)
    assert "1h 02m" in frt
    assert "3h 53m" in frt
    assert "1,234" in result.out
    assert "91.2%" in result.out
    csat = next(line for line in result.out.splitlines() if "csat" in line)
    assert "-" in csat


def test_kpis_query_options(gateway: FakeGateway, crm: Any) -> None:
    result = crm(
        "kpis",
        "--kpi",
        "frt_wall@2,csat",
        "--kpi",
        "nps",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-08T12:00:00+01:00",
        "--granularity",
        "day",
        "--group-by",
        "channel",
        "--filter",
        "tier=gold",
        "--timezone",
        "Europe/Berlin",
    )
    assert result.code == 0, result.err
    request = gateway.last("GetKpis").request
    assert list(request.kpis) == ["frt_wall@2", "csat", "nps"]
    assert request.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert request.end_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 8, 11, tzinfo=UTC)
    assert request.granularity == metrics_pb2.GRANULARITY_DAY
    assert request.group_by == "channel"
    assert dict(request.filters) == {"tier": "gold"}
    assert request.timezone == "Europe/Berlin"


def test_kpis_series_table(gateway: FakeGateway, crm: Any) -> None:
    points = [
        metrics_pb2.SeriesPoint(
            bucket_start=ts(T0 + 86400 * day - 3600),  # Berlin midnight
            values=[_value("frt_wall@1", "s", 60.0 * (day + 1), 5)],
        )
        for day in range(2)
    ]
    gateway.responses["GetKpis"] = metrics_pb2.GetKpisResponse(
        groups=[
            metrics_pb2.KpiGroup(
                value="email", points=points, totals=[_value("frt_wall@1", "s", 90, 10)]
            )
        ],
        timezone="Europe/Berlin",
    )
    result = crm("kpis", "--kpi", "frt_wall", "--granularity", "day", "--group-by", "channel")
    assert result.code == 0, result.err
    assert "channel = email" in result.out
    lines = result.out.splitlines()
    assert "1m 00s" in next(line for line in lines if "2026-01-01" in line)
    assert "2m 00s" in next(line for line in lines if "2026-01-02" in line)
    assert "1m 30s" in next(line for line in lines if "total" in line)


def test_kpis_range_must_be_ordered(gateway: FakeGateway, crm: Any) -> None:
    result = crm("kpis", "--from", "2026-02-01", "--to", "2026-01-01")
    assert result.code == 2
    assert "must be before" in result.err
    assert crm("kpis", "--from", "yesterday-ish").code == 2
    assert crm("kpis", "--filter", "channel").code == 2
    assert gateway.calls == []


def test_kpis_catalog(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["ListKpis"] = metrics_pb2.ListKpisResponse(
        kpis=[
            metrics_pb2.KpiDefinition(
                name="frt_wall",
                kind=metrics_pb2.KPI_KIND_DISTRIBUTION,
                unit="s",
                version=1,
                versions=[1, 2],
                description="Creation to first public human reply",
            )
        ],
        dimensions=["channel", "tier"],
    )
    result = crm("kpis", "--catalog")
    assert result.code == 0
    assert "frt_wall" in result.out
    assert "1, 2" in result.out
    assert "dimensions: channel, tier" in result.out


def test_gap_summary(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetPerceptionGap"] = metrics_pb2.GetPerceptionGapResponse(
        clocks=[
            _value("company_frt@1", "s", 3000, 100),
            _value("customer_wait@1", "s", 9000, 100),
        ],
        rates=[
            metrics_pb2.KpiValue(
                kpi="green_inside_red_outside@1",
                unit="%",
                value=18.5,
                numerator=37,
                denominator=200,
            )
        ],
        wait_buckets=[
            metrics_pb2.WaitBucket(label="<1h", tickets=40, csat=_value("csat", "%", 92, 30))
        ],
        gap_histogram=[metrics_pb2.GapBin(lower_hours=0, tickets=50)],
        worst_tickets=[
            metrics_pb2.TicketGap(
                ticket_id="t-1",
                company_frt_seconds=1800,
                customer_wait_seconds=90000,
                perception_gap_seconds=88200,
            )
        ],
    )
    result = crm("gap", "--worst", "5", "--filter", "channel=social")
    assert result.code == 0, result.err
    request = gateway.last("GetPerceptionGap").request
    assert request.worst_limit == 5
    assert dict(request.filters) == {"channel": "social"}
    assert "50m 00s" in next(line for line in result.out.splitlines() if "company_frt" in line)
    assert "2h 30m" in next(line for line in result.out.splitlines() if "customer_wait" in line)
    assert "18.5%" in result.out
    assert "37 / 200" in result.out
    assert "92.0%" in result.out
    assert "1d 00h" in next(line for line in result.out.splitlines() if "t-1 " in line)


# --- customer 360 ---------------------------------------------------------------------------


def test_customer_view_with_sections(gateway: FakeGateway, crm: Any) -> None:
    gateway.responses["GetCustomer360"] = gateway_pb2.GetCustomer360Response(
        contact=ANN,
        open_tickets=[TICKET],
        summary=gateway_pb2.CustomerSummary(
            open_tickets=1, csat_percent=75, mean_perception_gap_seconds=5400
        ),
        sections=[
            gateway_pb2.Section(
                name="profile", status=gateway_pb2.SECTION_STATUS_OK, latency_ms=12
            ),
            gateway_pb2.Section(
                name="clocks",
                status=gateway_pb2.SECTION_STATUS_TIMEOUT,
                latency_ms=1500,
                detail="metrics did not answer in time",
            ),
        ],
        timeline=[
            gateway_pb2.TimelineEntry(
                kind="ticket_opened", time=ts(T0 + 7200), id="t-91c2", summary="Refund"
            )
        ],
    )
    result = crm("customer", "c-7f3a", "--tickets", "20")
    assert result.code == 0, result.err
    request = gateway.last("GetCustomer360").request
    assert (request.contact_id, request.ticket_limit) == ("c-7f3a", 20)
    lines = result.out.splitlines()
    assert "Ann Lee" in result.out
    assert "75.0%" in result.out
    assert "1h 30m" in result.out
    assert "t-91c2" in result.out
    assert "ticket_opened" in result.out
    clocks = next(line for line in lines if line.startswith("│ clocks"))
    assert "timeout" in clocks
    assert "1500 ms" in clocks
    assert "metrics did not answer in time" in clocks
    assert "ok" in next(line for line in lines if line.startswith("│ profile"))


def test_customer_not_found_exits_1(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail(
        "GetCustomer360",
        grpc.StatusCode.NOT_FOUND,
        "contact c-404 not found",
        error_details_pb2.ResourceInfo(resource_type="contact", resource_name="c-404"),
    )
    result = crm("customer", "c-404")
    assert result.code == 1
    assert "NOT_FOUND: contact c-404 not found" in result.err
    assert "not found: contact c-404" in result.err


# --- errors ---------------------------------------------------------------------------------

BAD_REQUEST = error_details_pb2.BadRequest(
    field_violations=[
        error_details_pb2.BadRequest.FieldViolation(
            field="contact.identities[0].value", description="is not a valid email address"
        ),
        error_details_pb2.BadRequest.FieldViolation(
            field="contact", description="at least one of given_name, family_name ..."
        ),
    ]
)


def test_invalid_argument_lists_field_violations_and_exits_2(
    gateway: FakeGateway, crm: Any
) -> None:
    gateway.fail("CreateContact", grpc.StatusCode.INVALID_ARGUMENT, "2 invalid fields", BAD_REQUEST)
    result = crm("contacts", "create", "--email", "not-an-address")
    assert result.code == 2
    assert result.out == ""
    assert "INVALID_ARGUMENT: 2 invalid fields" in result.err
    assert "contact.identities[0].value: is not a valid email address" in result.err
    assert "contact: at least one of given_name" in result.err


def test_json_errors_are_json_on_stderr(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail("CreateContact", grpc.StatusCode.INVALID_ARGUMENT, "2 invalid fields", BAD_REQUEST)
    result = crm("--json", "contacts", "create", "--email", "x")
    assert result.code == 2
    assert result.out == ""
    error = json.loads(result.err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["fieldViolations"][0] == {
        "field": "contact.identities[0].value",
        "description": "is not a valid email address",
    }


def test_rate_limit_shows_retry_after(gateway: FakeGateway, crm: Any) -> None:
    gateway.fail(
        "ListTickets",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "rate limit exceeded",
        trailers=[("retry-after", "2")],
    )
    result = crm("tickets", "list")
    assert result.code == 1
    assert "RESOURCE_EXHAUSTED: rate limit exceeded" in result.err
    assert "retry after 2 s" in result.err
    as_json = crm("tickets", "list", "--json")
    assert json.loads(as_json.err)["error"]["retryAfter"] == 2.0


def test_unreachable_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["whoami", "--gateway", "127.0.0.1:1", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "UNAVAILABLE" in err
    assert "is the gateway running at 127.0.0.1:1?" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["contacts"]) == 2
    assert main(["tickets", "reply", "t-1"]) == 2  # --body is required
    assert main(["kpis", "--granularity", "week"]) == 2
    assert "usage: crm" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "whoami" in capsys.readouterr().out
