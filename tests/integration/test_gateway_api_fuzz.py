"""Property-based fuzzing of the JSON/HTTP API with schemathesis, against the real platform.

Every operation of the OpenAPI document is called with bodies generated from its schemas (valid
ones, and invalid ones) as an admin of a throwaway tenant, every backend up. No answer may be a
server error: a 500 is a bug, and a 503 or 504 has no excuse with every backend up. Every answer
must match the document: the response message's schema for a 200, the Error schema otherwise.
The run is bounded (a few examples per operation) and deterministic (derandomized).

Server streams (``StreamKpis``) may never end, so they are fuzzed apart, reading a few lines
under a deadline. Hand-written hostile requests (malformed, oversized, mistyped; money as floats,
negative or in no currency) and the served ``/openapi.json`` are checked too. The file download
(``GET /v1/SalesService/GetQuoteDocument``) is an operation of the document like the others, so
schemathesis fuzzes its query parameters too; hostile queries are added by hand.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # (types-jsonschema is not installed)
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.specs.openapi.definitions import OPENAPI_31

from crm_gateway.openapi import NDJSON_MEDIA_TYPE, openapi_document
from crm_gateway.routes import ROUTES, Route
from crm_testing.gateway import GatewayStack

pytestmark = pytest.mark.integration

TENANT = f"fuzz-{uuid.uuid4().hex[:8]}"
"""The throwaway tenant the fuzzer works in."""
MAX_EXAMPLES = 6
"""Per operation and generation mode (valid bodies, invalid bodies), besides the coverage cases."""
REQUEST_TIMEOUT = 20.0
STREAM_SECONDS = 2.0
"""How long a server stream is read before the client hangs up."""

DOCUMENT = openapi_document()
STREAMING = [route for route in ROUTES if route.server_streaming]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20250301,
        "suppress-health-check": ["all"],
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
            # The test sends its own credential: no generated (hence invalid) API keys.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
        "request-timeout": REQUEST_TIMEOUT,
    }
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(
    operation_id=[f"{route.service}_{route.method}" for route in STREAMING]
)


_CALLS = itertools.count()


def _auth(stack: GatewayStack, who: str) -> dict[str, str]:
    """An admin of the throwaway tenant, as a subject of its own for each call: the fuzzer's
    bursts would otherwise spend much of the run on the per-credential rate limit (429)."""
    subject = f"{who}-{next(_CALLS)}"
    return {"Authorization": f"Bearer {stack.token(TENANT, 'admin', subject)}"}


@SCHEMA.parametrize()
def test_no_operation_answers_a_server_error_or_breaks_its_schema(
    case: schemathesis.Case[Any], gateway_stack: GatewayStack
) -> None:
    case.call_and_validate(
        base_url=gateway_stack.http_url,
        headers=_auth(gateway_stack, case.operation.label.rsplit("/", 1)[-1]),
        checks=[not_a_server_error, response_schema_conformance],
        timeout=REQUEST_TIMEOUT,
    )


# --- server streams --------------------------------------------------------------------------


_SERVER_ERRORS = ("INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS")


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of ``schema``, whose references point into the document's components."""
    return jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]})


ERROR = _validator({"$ref": "#/components/schemas/Error"})


def _lines(response: requests.Response, seconds: float) -> list[bytes]:
    """The lines a stream sends within ``seconds`` (then the client hangs up): read on a thread,
    as a stream may stay silent for longer than that."""
    lines: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(Exception):  # the hang-up interrupts the read
            lines.extend(line for line in response.iter_lines() if line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    response.close()
    reader.join(5)
    return list(lines)


@pytest.mark.parametrize("route", STREAMING, ids=lambda route: route.http_path)
def test_server_streams_answer_ndjson_and_no_server_error(
    route: Route, gateway_stack: GatewayStack
) -> None:
    operation = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)[route.http_path]["POST"]
    answer = DOCUMENT["paths"][route.http_path]["post"]["responses"]["200"]["content"][
        NDJSON_MEDIA_TYPE
    ]
    line_schema = _validator(answer["schema"])
    headers = {"Content-Type": "application/json", **_auth(gateway_stack, route.method)}

    @settings(
        max_examples=2 * MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
    def check(case: schemathesis.Case[Any]) -> None:
        with requests.post(
            gateway_stack.http_url + route.http_path,
            data=json.dumps(case.body),
            headers=headers,
            stream=True,
            timeout=(5, REQUEST_TIMEOUT),
        ) as response:
            assert response.status_code < 500, (case.body, response.status_code, response.text)
            if response.status_code != 200:
                ERROR.validate(response.json())
                return
            assert response.headers["Content-Type"].startswith(NDJSON_MEDIA_TYPE)
            for line in _lines(response, STREAM_SECONDS):
                item = json.loads(line)
                line_schema.validate(item)
                if "error" in item:  # a failure after the first line ends the stream
                    assert item["error"]["code"] not in _SERVER_ERRORS, item

    check()


def test_a_valid_kpi_stream_matches_its_schema(gateway_stack: GatewayStack) -> None:
    """The generator hardly hits a valid query (KPI names are the service's): one by hand."""
    headers = {"Content-Type": "application/json", **_auth(gateway_stack, "stream")}
    listed = requests.post(
        gateway_stack.http_url + "/v1/MetricsService/ListKpis",
        json={},
        headers=headers,
        timeout=REQUEST_TIMEOUT,
    )
    assert listed.status_code == 200, listed.text
    names = [kpi["name"] for kpi in listed.json()["kpis"]][:3]
    now = datetime.now(UTC).replace(microsecond=0)
    query = {
        "kpis": names,
        "startTime": (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        "endTime": now.isoformat().replace("+00:00", "Z"),
        "granularity": "GRANULARITY_HOUR",
    }
    line_schema = _validator(
        DOCUMENT["paths"]["/v1/MetricsService/StreamKpis"]["post"]["responses"]["200"]["content"][
            NDJSON_MEDIA_TYPE
        ]["schema"]
    )
    with requests.post(
        gateway_stack.http_url + "/v1/MetricsService/StreamKpis",
        json={"query": query, "minInterval": "0.2s", "follow": True},
        headers=headers,
        stream=True,
        timeout=(5, REQUEST_TIMEOUT),
    ) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith(NDJSON_MEDIA_TYPE)
        lines = _lines(response, STREAM_SECONDS)
    assert lines
    for line in lines:
        item = json.loads(line)
        line_schema.validate(item)
        assert "error" not in item, item


# --- the document as served --------------------------------------------------------------------


def test_the_served_document_is_the_generated_one_and_valid(gateway_stack: GatewayStack) -> None:
    response = requests.get(gateway_stack.http_url + "/openapi.json", timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served = response.json()
    info = served["info"]
    servers = served.get("servers")
    expected = openapi_document(
        title=info["title"],
        version=info["version"],
        server_url=servers[0]["url"] if servers else None,
    )
    assert served == expected
    assert served == DOCUMENT  # the defaults: nothing deployment-specific in it
    jsonschema.Draft202012Validator(OPENAPI_31).validate(served)
    loaded = schemathesis.openapi.from_url(gateway_stack.http_url + "/openapi.json")
    for route in ROUTES:
        assert loaded[route.http_path]["POST"].label == f"POST {route.http_path}"
        if route.document_media_type:
            assert loaded[route.http_path]["GET"].label == f"GET {route.http_path}"
    assert {r.service for r in ROUTES} >= {"SalesService"}


# --- hostile requests the generator does not make ------------------------------------------------


_CREATE = "/v1/ContactsService/CreateContact"
_RULE = "/v1/ServiceDeskConfigService/CreateRoutingRule"
_KPIS = "/v1/MetricsService/GetKpis"
_MENTIONS = "/v1/SocialListeningService/IngestMentions"
_TICKET = "/v1/TicketService/UpdateTicket"
_OPPORTUNITY = "/v1/SalesService/CreateOpportunity"
_QUOTE = "/v1/SalesService/CreateQuote"
_JSON = {"Content-Type": "application/json"}
_DEAL = b'"name": "Deal", "pipelineId": "p-1", "currency": "EUR"'


HOSTILE: list[tuple[str, str, Mapping[str, str], bytes]] = [
    # (name, path, headers, body) of requests a careless or hostile client sends.
    ("malformed JSON", _CREATE, _JSON, b'{"contact": '),
    ("invalid UTF-8", _CREATE, _JSON, b'{"contact": {"givenName": "\xff\xfe"}}'),
    ("NaN literal", _RULE, _JSON, b'{"rule": {"condition": {"sentimentBelow": NaN}}}'),
    ("deeply nested arrays", _CREATE, _JSON, b"[" * 100_000 + b"]" * 100_000),
    ("deeply nested objects", _CREATE, _JSON, b'{"contact": ' * 5_000 + b"{}" + b"}" * 5_000),
    ("huge integer", _KPIS, _JSON, b'{"kpis": ["x"], "granularity": 1' + b"0" * 5000 + b"}"),
    (
        "huge integer for a double",
        _RULE,
        _JSON,
        b'{"rule": {"condition": {"sentimentBelow": 1' + b"0" * 400 + b"}}}",
    ),
    ("int64 out of range", _TICKET, _JSON, b'{"expectedVersion": "99999999999999999999999"}'),
    ("a string for an object", _CREATE, _JSON, b'"contact"'),
    ("null body", _CREATE, _JSON, b"null"),
    ("an array for a unary call", _CREATE, _JSON, b"[{}]"),
    ("an object for a client stream", _MENTIONS, _JSON, b"{}"),
    ("a string in a client stream", _MENTIONS, _JSON, b'["x", 1, null]'),
    ("wrong content type", _CREATE, {"Content-Type": "text/plain"}, b"{}"),
    ("form content type", _CREATE, {"Content-Type": "application/x-www-form-urlencoded"}, b"a=b"),
    ("unknown field", _CREATE, _JSON, b'{"contact": {"shoeSize": 42}}'),
    ("unknown enum name", "/v1/TicketService/ListTickets", _JSON, b'{"statuses": ["NOPE"]}'),
    ("unknown method", "/v1/ContactsService/DropTables", _JSON, b"{}"),
    ("unknown service", "/v1/Nope/Nope", _JSON, b"{}"),
    ("bad timeout header", _CREATE, {**_JSON, "X-Timeout-Seconds": "soon"}, b"{}"),
    ("zero timeout header", _CREATE, {**_JSON, "X-Timeout-Seconds": "0"}, b"{}"),
    ("oversized body", _CREATE, _JSON, b'{"requestId": "' + b"x" * (2 << 20) + b'"}'),
    ("bad timestamp", _KPIS, _JSON, b'{"kpis": ["x"], "startTime": "yesterday"}'),
    ("bad duration", "/v1/MetricsService/StreamKpis", _JSON, b'{"minInterval": "soon"}'),
    ("bad field mask", _TICKET, _JSON, b'{"updateMask": "a_b"}'),
    (
        "fractional minor units",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {' + _DEAL + b', "amountMinor": 12.5}}',
    ),
    (
        "negative minor units",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {' + _DEAL + b', "amountMinor": "-1"}}',
    ),
    (
        "minor units past int64",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {' + _DEAL + b', "amountMinor": "9223372036854775808"}}',
    ),
    (
        "an amount as a float string",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {' + _DEAL + b', "amountMinor": "1e3"}}',
    ),
    (
        "an unknown currency",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {"name": "D", "pipelineId": "p", "currency": "ZZZ", "amountMinor": "5"}}',
    ),
    (
        "a lower-case currency",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {"name": "D", "pipelineId": "p", "currency": "eur"}}',
    ),
    (
        "an unknown stage kind",
        "/v1/SalesService/CreatePipeline",
        _JSON,
        b'{"pipeline": {"name": "P", "stages": [{"id": "a", '
        b'"name": "A", "kind": "STAGE_KIND_MAYBE"}]}}',
    ),
    (
        "a fractional quantity",
        _QUOTE,
        _JSON,
        b'{"quote": {"opportunityId": "o", "currency": "EUR", '
        b'"lines": [{"productId": "x", "quantity": 1.5}]}}',
    ),
    (
        "a NaN discount",
        _QUOTE,
        _JSON,
        b'{"quote": {"opportunityId": "o", "currency": "EUR", '
        b'"lines": [{"productId": "x", "quantity": 1, "discountBasisPoints": NaN}]}}',
    ),
    (
        "a quote on an unknown opportunity",
        _QUOTE,
        _JSON,
        b'{"quote": {"opportunityId": "nope", "currency": "EUR", '
        b'"validUntil": "2999-01-01T00:00:00Z", "lines": [{"productId": "x", "quantity": 1}]}}',
    ),
    (
        "a buying role by a number out of range",
        _OPPORTUNITY,
        _JSON,
        b'{"opportunity": {' + _DEAL + b', "buyingCentre": [{"contactId": "c", "roles": [99]}]}}',
    ),
    ("a document request without an id", "/v1/SalesService/GetQuoteDocument", _JSON, b"{}"),
    (
        "control characters and a lone surrogate",
        _CREATE,
        _JSON,
        b'{"contact": {"givenName": "\\u0000\\u0001", "familyName": "\\ud800"}}',
    ),
]


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [request[1:] for request in HOSTILE],
    ids=[request[0] for request in HOSTILE],
)
def test_hostile_requests_get_a_client_error(
    path: str, headers: Mapping[str, str], body: bytes, gateway_stack: GatewayStack
) -> None:
    all_headers = {**_auth(gateway_stack, "hostile"), **headers}
    response = requests.post(
        gateway_stack.http_url + path, data=body, headers=all_headers, timeout=REQUEST_TIMEOUT
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    ERROR.validate(response.json())


_DOCUMENT = "/v1/SalesService/GetQuoteDocument"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?id=",
        "?id=" + "x" * 5000,
        "?id=a&id=b",
        "?shoeSize=42",
        "?id=%00%ff",
        "?id=q&content=AAAA",
        "?id=no-such-quote",
    ],
    ids=["no id", "empty id", "huge id", "two ids", "unknown field", "bad bytes", "an answer field",
         "unknown quote"],
)  # fmt: skip
def test_hostile_document_downloads_get_a_json_client_error(
    query: str, gateway_stack: GatewayStack
) -> None:
    response = requests.get(
        gateway_stack.http_url + _DOCUMENT + query,
        headers=_auth(gateway_stack, "download"),
        timeout=REQUEST_TIMEOUT,
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    ERROR.validate(response.json())


def test_get_of_an_operation_that_answers_no_file_is_method_not_allowed(
    gateway_stack: GatewayStack,
) -> None:
    response = requests.get(
        gateway_stack.http_url + "/v1/SalesService/GetQuote?id=q",
        headers=_auth(gateway_stack, "download"),
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 405
    ERROR.validate(response.json())


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("no credential", {}),
        ("a garbage token", {"Authorization": "Bearer not-a-jwt"}),
        ("another scheme", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}),
        ("an unknown API key", {"X-API-Key": "crm_nope"}),
        ("an empty API key", {"X-API-Key": ""}),
    ],
)
def test_requests_without_a_valid_credential_are_unauthenticated(
    name: str, headers: dict[str, str], gateway_stack: GatewayStack
) -> None:
    response = requests.post(
        gateway_stack.http_url + "/v1/ContactsService/ListContacts",
        json={},
        headers=headers,
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 401, (name, response.text)
    body = response.json()
    ERROR.validate(body)
    assert body["code"] == "UNAUTHENTICATED"
