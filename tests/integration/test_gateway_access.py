"""Through the gateway, against the real platform: identity, roles, tenants, limits, errors.

Every test calls the gateway as an outside client would (gRPC, or JSON/HTTP with urllib), and
the gateway forwards to the real services on the real broker and database.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.gateway.v1 import gateway_pb2 as gpb
from crm.metrics.v1 import metrics_pb2 as mpb
from crm.servicedesk.v1 import servicedesk_pb2 as spb
from crm_gateway.domain.roles import GRANTS, Role
from crm_gateway.routes import ROUTES
from crm_testing.gateway import GatewayStack, bearer

pytestmark = pytest.mark.integration


def _email() -> str:
    return f"ada+{uuid.uuid4().hex[:10]}@example.com"


def new_contact() -> cpb.CreateContactRequest:
    return cpb.CreateContactRequest(
        contact=cpb.Contact(
            given_name="Ada",
            family_name="Lovelace",
            identities=[cpb.Identity(kind=cpb.IDENTITY_KIND_EMAIL, value=_email(), primary=True)],
        )
    )


async def create_contact(stack: GatewayStack, token: str) -> cpb.Contact:
    reply = await stack.stub("ContactsService").CreateContact(
        new_contact(), metadata=bearer(token), timeout=10
    )
    return reply.contact  # type: ignore[no-any-return]


async def create_ticket(stack: GatewayStack, token: str, contact_id: str) -> spb.Ticket:
    reply = await stack.stub("TicketService").CreateTicket(
        spb.CreateTicketRequest(
            ticket=spb.Ticket(
                type=spb.TICKET_TYPE_INFORMATION_REQUEST,
                channel=spb.CHANNEL_EMAIL,
                subject="Where is my order?",
                contact_id=contact_id,
            )
        ),
        metadata=bearer(token),
        timeout=10,
    )
    return reply.ticket  # type: ignore[no-any-return]


def http(
    stack: GatewayStack,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """A JSON/HTTP call; returns (status, headers, decoded body)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        stack.http_url + path,
        data=data,
        headers=all_headers,
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            text = response.read()
            return response.status, dict(response.headers), json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, dict(exc.headers), json.loads(text) if text else None


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = status_pb2.Status()
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


# --- identity ------------------------------------------------------------------------------------


async def test_get_caller_reports_the_tenant_actor_and_role_of_the_token(
    gateway_stack: GatewayStack,
) -> None:
    reply = await gateway_stack.stub("IdentityService").GetCaller(
        gpb.GetCallerRequest(),
        metadata=bearer(gateway_stack.token("acme", "analyst", "ann")),
        timeout=10,
    )
    assert (reply.tenant_id, reply.actor, reply.role, reply.credential) == (
        "acme",
        "agent:ann",
        "analyst",
        "jwt",
    )
    assert "/crm.gateway.v1.MetricsService/GetKpis" in reply.permissions
    assert "/crm.gateway.v1.ContactsService/CreateContact" not in reply.permissions


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("expired", {"ttl_seconds": -120}),
        ("wrong issuer", {"issuer": "someone-else"}),
        ("wrong audience", {"audience": "another-api"}),
    ],
)
async def test_tokens_with_bad_claims_are_unauthenticated(
    gateway_stack: GatewayStack, case: str, claims: dict[str, Any]
) -> None:
    key = gateway_stack.credentials.key
    options: dict[str, Any] = {
        "issuer": "crm-dev",
        "audience": "crm-gateway",
        "tenant": "acme",
        "role": "admin",
        "subject": "mallory",
        **claims,
    }
    token = key.mint(**options)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("IdentityService").GetCaller(
            gpb.GetCallerRequest(), metadata=bearer(token), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, case


async def test_a_token_signed_by_another_key_or_tampered_is_refused(
    gateway_stack: GatewayStack,
) -> None:
    from crm_platform.credentials import SigningKey

    stranger = SigningKey.generate()
    forged = stranger.mint(
        issuer="crm-dev", audience="crm-gateway", tenant="acme", role="admin", subject="eve"
    )
    forged_same_kid = SigningKey(gateway_stack.credentials.key.kid, stranger.private_pem).mint(
        issuer="crm-dev", audience="crm-gateway", tenant="acme", role="admin", subject="eve"
    )
    genuine = gateway_stack.token("acme", "analyst")
    header, payload, signature = genuine.split(".")
    tampered = ".".join(
        [header, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature]
    )
    for token in (forged, forged_same_kid, tampered, "not-a-token", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway_stack.stub("IdentityService").GetCaller(
                gpb.GetCallerRequest(), metadata=bearer(token), timeout=10
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status, _, body = http(gateway_stack, "/v1/IdentityService/GetCaller", {})
    assert status == 401
    assert body["code"] == "UNAUTHENTICATED"


async def test_api_keys_authenticate_integrations_and_wrong_keys_do_not(
    gateway_stack: GatewayStack,
) -> None:
    key = gateway_stack.api_keys["acme-integration"]
    reply = await gateway_stack.stub("IdentityService").GetCaller(
        gpb.GetCallerRequest(), metadata=(("x-api-key", key),), timeout=10
    )
    assert (reply.tenant_id, reply.role, reply.credential) == ("acme", "integration", "api_key")
    status, _, body = http(
        gateway_stack, "/v1/IdentityService/GetCaller", {}, headers={"X-API-Key": key}
    )
    assert status == 200
    assert body["tenantId"] == "acme"
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    for bad in (wrong, "crm_unknown_secret", "nonsense"):
        status, _, _ = http(
            gateway_stack, "/v1/IdentityService/GetCaller", {}, headers={"X-API-Key": bad}
        )
        assert status == 401


# --- roles ---------------------------------------------------------------------------------------


async def test_every_role_is_allowed_and_denied_exactly_its_permissions(
    gateway_stack: GatewayStack,
) -> None:
    """Each role against every unary operation: PERMISSION_DENIED iff the role lacks it."""
    channel = gateway_stack.channel()
    wrong: list[str] = []
    for role in Role:
        token = gateway_stack.token("roles", role.value, f"{role.value}-user")
        for route in ROUTES:
            if route.client_streaming or route.server_streaming:
                continue
            call = channel.unary_unary(route.path, None, None)
            try:
                await call(b"", metadata=bearer(token), timeout=10)
                denied = False
            except grpc.aio.AioRpcError as exc:
                denied = exc.code() == grpc.StatusCode.PERMISSION_DENIED
            if denied == (route.permission in GRANTS[role]):
                wrong.append(f"{role.value} {route.method}: denied={denied}")
    assert not wrong, "\n".join(wrong)


async def test_an_analyst_reads_kpis_but_cannot_create_contacts_over_http(
    gateway_stack: GatewayStack,
) -> None:
    token = gateway_stack.token("acme", "analyst", "ann")
    status, _, body = http(
        gateway_stack, "/v1/ContactsService/CreateContact", {"contact": {}}, token=token
    )
    assert status == 403
    assert body["code"] == "PERMISSION_DENIED"
    assert any(d.get("reason") == "PERMISSION_DENIED" for d in body["details"])
    status, _, body = http(gateway_stack, "/v1/MetricsService/ListKpis", {}, token=token)
    assert status == 200
    assert body["kpis"]


# --- tenants -------------------------------------------------------------------------------------


async def test_tenant_b_can_read_or_change_nothing_of_tenant_a(gateway_stack: GatewayStack) -> None:
    """Records of tenant A, then every read operation as tenant B (and as B's integration key)
    with A's ids: nothing of A comes back, and no change of A's records succeeds."""
    a = gateway_stack.token("acme", "admin", "alice")
    contact = await create_contact(gateway_stack, a)
    ticket = await create_ticket(gateway_stack, a, contact.id)
    mention = await gateway_stack.stub("SocialListeningService").IngestMention(
        spb.IngestMentionRequest(
            mention=spb.Mention(
                network="x",
                post_id=f"p-{uuid.uuid4().hex[:8]}",
                author_handle="@ada",
                text="still waiting for my order",
                posted_time=Timestamp(seconds=int(time.time()) - 600),
                author_contact_id=contact.id,
            )
        ),
        metadata=bearer(a),
        timeout=10,
    )
    survey = await gateway_stack.stub("SurveyService").SendSurvey(
        spb.SendSurveyRequest(ticket_id=ticket.id), metadata=bearer(a), timeout=10
    )
    a_ids = {contact.id, ticket.id, mention.mention.id, survey.survey.id}
    b = gateway_stack.token("globex", "admin", "bob")
    reads: list[tuple[str, str, Any]] = [
        ("ContactsService", "GetContact", cpb.GetContactRequest(id=contact.id)),
        ("ContactsService", "ListContacts", cpb.ListContactsRequest()),
        ("ContactsService", "SearchContacts", cpb.SearchContactsRequest(name_prefix="Love")),
        (
            "ContactsService",
            "LookupContactByIdentity",
            cpb.LookupContactByIdentityRequest(
                identity=cpb.Identity(
                    kind=cpb.IDENTITY_KIND_EMAIL, value=contact.identities[0].value
                )
            ),
        ),
        ("TicketService", "GetTicket", spb.GetTicketRequest(id=ticket.id)),
        ("TicketService", "ListTickets", spb.ListTicketsRequest(contact_id=contact.id)),
        ("TicketService", "ListMessages", spb.ListMessagesRequest(ticket_id=ticket.id)),
        ("SocialListeningService", "GetMention", spb.GetMentionRequest(id=mention.mention.id)),
        ("SocialListeningService", "ListMentions", spb.ListMentionsRequest()),
        ("SurveyService", "GetSurvey", spb.GetSurveyRequest(id=survey.survey.id)),
        ("SurveyService", "ListSurveys", spb.ListSurveysRequest(ticket_id=ticket.id)),
        ("MetricsService", "GetTicketClocks", mpb.GetTicketClocksRequest(ticket_id=ticket.id)),
        ("CustomerService", "GetCustomer360", gpb.GetCustomer360Request(contact_id=contact.id)),
    ]
    covered = {(service, method) for service, method, _ in reads}
    read_routes = {
        (r.service, r.method)
        for r in ROUTES
        if r.read_only
        and r.service not in ("IdentityService", "ServiceDeskConfigService")
        and r.service != "MetricsService"
        and (r.backend is None or r.backend.value != "sales")  # test_gateway_sales.py does
    }
    missing = (
        read_routes
        - covered
        - {
            ("ContactsService", "GetOrganization"),
            ("ContactsService", "ListOrganizations"),
            ("ContactsService", "BatchLookupContactsByIdentity"),
        }
    )
    assert not missing, f"read operations not tried across tenants: {missing}"
    leaks: list[str] = []
    for credential in (bearer(b), (("x-api-key", gateway_stack.api_keys["globex-integration"]),)):
        for service, method, request in reads:
            try:
                reply = await getattr(gateway_stack.stub(service), method)(
                    request, metadata=credential, timeout=10
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.PERMISSION_DENIED,
                ):
                    leaks.append(f"{method}: unexpected {exc.code().name} {exc.details()}")
                continue
            text = str(reply)
            leaks.extend(f"{method} returned {ident}" for ident in a_ids if ident in text)
    assert not leaks, "\n".join(leaks)
    # Changes: B cannot update A's contact or move A's ticket.
    for call in (
        gateway_stack.stub("ContactsService").UpdateContact(
            cpb.UpdateContactRequest(
                contact=cpb.Contact(id=contact.id, given_name="Eve"),
                update_mask=FieldMask(paths=["given_name"]),
                expected_version=contact.version,
            ),
            metadata=bearer(b),
            timeout=10,
        ),
        gateway_stack.stub("TicketService").AddMessage(
            spb.AddMessageRequest(
                ticket_id=ticket.id,
                message=spb.Message(
                    body="hello from another tenant",
                    author_type=spb.AUTHOR_TYPE_AGENT,
                    visibility=spb.VISIBILITY_PUBLIC,
                ),
            ),
            metadata=bearer(b),
            timeout=10,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    unchanged = await gateway_stack.stub("ContactsService").GetContact(
        cpb.GetContactRequest(id=contact.id), metadata=bearer(a), timeout=10
    )
    assert unchanged.contact.given_name == "Ada"


async def test_a_tenant_in_the_body_or_metadata_does_not_change_the_callers_tenant(
    gateway_stack: GatewayStack,
) -> None:
    a = gateway_stack.token("acme", "admin", "alice")
    contact = await create_contact(gateway_stack, a)
    b = gateway_stack.token("globex", "admin", "bob")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("ContactsService").GetContact(
            cpb.GetContactRequest(id=contact.id),
            metadata=(*bearer(b), ("x-tenant-id", "acme")),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    status, _, body = http(
        gateway_stack,
        "/v1/ContactsService/CreateContact",
        {"contact": {"tenantId": "acme", "givenName": "Eve", "familyName": "X"}},
        token=b,
    )
    assert status == 200
    assert body["contact"]["tenantId"] == "globex"


# --- limits and bad input ------------------------------------------------------------------------


async def test_the_rate_limit_answers_resource_exhausted_and_429_with_retry_after(
    gateway_stack: GatewayStack,
) -> None:
    key = gateway_stack.api_keys["acme-limited"]  # 5 calls per minute
    codes = []
    for _ in range(5):
        status, _, _ = http(
            gateway_stack, "/v1/IdentityService/GetCaller", {}, headers={"X-API-Key": key}
        )
        codes.append(status)
    assert codes == [200] * 5
    status, headers, body = http(
        gateway_stack, "/v1/IdentityService/GetCaller", {}, headers={"X-API-Key": key}
    )
    assert status == 429
    assert body["code"] == "RESOURCE_EXHAUSTED"
    assert 1 <= int(headers["Retry-After"]) <= 60
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("IdentityService").GetCaller(
            gpb.GetCallerRequest(), metadata=(("x-api-key", key),), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    metadata: Any = caught.value.trailing_metadata() or ()
    trailers = dict(metadata)
    assert 1 <= int(trailers["retry-after"]) <= 60
    # Other credentials are not affected.
    status, _, _ = http(
        gateway_stack,
        "/v1/IdentityService/GetCaller",
        {},
        headers={"X-API-Key": gateway_stack.api_keys["acme-integration"]},
    )
    assert status == 200


async def test_bad_input_is_invalid_argument_with_field_violations_on_both_protocols(
    gateway_stack: GatewayStack,
) -> None:
    token = gateway_stack.token("acme", "admin")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("ContactsService").CreateContact(
            cpb.CreateContactRequest(contact=cpb.Contact(given_name="x" * 500)),
            metadata=bearer(token),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("given_name" in field for field in violations(caught.value))
    status, _, body = http(
        gateway_stack,
        "/v1/ContactsService/CreateContact",
        {"contact": {"givenName": "x" * 500}},
        token=token,
    )
    assert status == 400
    assert body["code"] == "INVALID_ARGUMENT"
    fields = [v["field"] for d in body["details"] for v in d.get("fieldViolations", [])]
    assert any("given_name" in f for f in fields)
    for raw, expected in ((b"{not json", 400), (b'{"nope": 1}', 400), (b"[1, 2]", 400)):
        status, _, body = http(
            gateway_stack, "/v1/ContactsService/CreateContact", raw=raw, token=token
        )
        assert status == expected
        assert body["code"] == "INVALID_ARGUMENT"
    status, _, body = http(gateway_stack, "/v1/NoSuchService/Nothing", {}, token=token)
    assert status == 404
    huge = json.dumps({"contact": {"givenName": "x" * (2 * 1024 * 1024)}}).encode()
    status, _, body = http(
        gateway_stack, "/v1/ContactsService/CreateContact", raw=huge, token=token
    )
    assert status == 413
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("ContactsService").CreateContact(
            cpb.CreateContactRequest(contact=cpb.Contact(given_name="x" * (2 * 1024 * 1024))),
            metadata=bearer(token),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_services_refuse_calls_without_tenant_or_actor(
    gateway_stack: GatewayStack,
) -> None:
    """Only the gateway may be trusted with identity: a direct call lacking it is refused."""
    async with grpc.aio.insecure_channel(gateway_stack.services["contacts"].address) as channel:
        call = channel.unary_unary(
            "/crm.contacts.v1.ContactsService/ListContacts",
            cpb.ListContactsRequest.SerializeToString,
            cpb.ListContactsResponse.FromString,
        )
        for metadata in ((), (("x-tenant-id", "acme"),), (("x-actor-id", "alice"),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(cpb.ListContactsRequest(), metadata=metadata, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


# --- the customer view ---------------------------------------------------------------------------


async def test_customer_360_gathers_every_section(gateway_stack: GatewayStack) -> None:
    token = gateway_stack.token("acme", "agent", "alice")
    contact = await create_contact(gateway_stack, token)
    ticket = await create_ticket(gateway_stack, token, contact.id)
    stub = gateway_stack.stub("CustomerService")
    deadline = time.monotonic() + 30
    while True:  # the metrics service sees the ticket a moment after it is created
        view = await stub.GetCustomer360(
            gpb.GetCustomer360Request(contact_id=contact.id), metadata=bearer(token), timeout=10
        )
        statuses = {s.name: s.status for s in view.sections}
        if statuses["clocks"] == gpb.SECTION_STATUS_OK or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert statuses == dict.fromkeys(
        ("profile", "tickets", "mentions", "surveys", "clocks"), gpb.SECTION_STATUS_OK
    )
    assert view.contact.id == contact.id
    assert [t.id for t in view.open_tickets] == [ticket.id]
    assert [c.ticket_id for c in view.ticket_clocks] == [ticket.id]
    assert view.summary.open_tickets == 1
    assert [e.kind for e in view.timeline] == ["ticket_opened"]


async def test_customer_360_of_an_unknown_contact_is_not_found(gateway_stack: GatewayStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stack.stub("CustomerService").GetCustomer360(
            gpb.GetCustomer360Request(contact_id="no-such-contact"),
            metadata=bearer(gateway_stack.token("acme", "agent")),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_customer_360_with_a_backend_stopped_returns_the_other_sections(
    gateway_stack: GatewayStack,
) -> None:
    token = gateway_stack.token("acme", "agent", "alice")
    contact = await create_contact(gateway_stack, token)
    await create_ticket(gateway_stack, token, contact.id)
    metrics = gateway_stack.services["metrics"]
    await metrics.stop()
    try:
        started = time.monotonic()
        view = await gateway_stack.stub("CustomerService").GetCustomer360(
            gpb.GetCustomer360Request(contact_id=contact.id), metadata=bearer(token), timeout=10
        )
        took = time.monotonic() - started
        statuses = {s.name: s.status for s in view.sections}
        assert statuses["clocks"] in (gpb.SECTION_STATUS_UNAVAILABLE, gpb.SECTION_STATUS_TIMEOUT)
        assert {k: v for k, v in statuses.items() if k != "clocks"} == dict.fromkeys(
            ("profile", "tickets", "mentions", "surveys"), gpb.SECTION_STATUS_OK
        )
        assert view.contact.id == contact.id
        assert len(view.open_tickets) == 1
        assert not view.ticket_clocks
        assert took < 10  # bounded by the view's deadline, not by the stopped backend
        # The plain metrics operations fail fast with UNAVAILABLE (no hang), over HTTP too.
        status, _, body = http(gateway_stack, "/v1/MetricsService/ListKpis", {}, token=token)
        assert status == 503
        assert body["code"] == "UNAVAILABLE"
    finally:
        await metrics.start(90)
    deadline = time.monotonic() + 30
    while True:  # and it recovers once the backend is back (breaker half-opens)
        status, _, _ = http(gateway_stack, "/v1/MetricsService/ListKpis", {}, token=token)
        if status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert status == 200


async def test_openapi_and_health_endpoints_answer(gateway_stack: GatewayStack) -> None:
    status, _, body = http(gateway_stack, "/healthz")
    assert status == 200
    status, _, body = http(gateway_stack, "/readyz")
    assert status == 200
    assert set(body["backends"]) == {"contacts", "servicedesk", "metrics", "sales"}
    status, _, body = http(gateway_stack, "/openapi.json")
    assert status == 200
    assert body["openapi"].startswith("3.")
    assert len([path for path in body["paths"] if path.startswith("/v1/")]) == len(ROUTES)
