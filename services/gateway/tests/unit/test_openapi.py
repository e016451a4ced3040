"""The OpenAPI document: a valid OpenAPI 3.1 document, one operation per route, and schemas that
say exactly what ``google.protobuf.json_format`` writes and (within the rules) reads."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # (types-jsonschema is not installed)
import protovalidate
import pytest
import schemathesis
from buf.validate import validate_pb2
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.definitions import OPENAPI_31

from crm.common.v1 import common_pb2
from crm.contacts.v1 import contacts_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2
from crm_gateway.openapi import (
    ERROR_RESPONSES,
    JSON_MEDIA_TYPE,
    NDJSON_MEDIA_TYPE,
    message_schemas,
    openapi_document,
)
from crm_gateway.routes import ROUTES, Route

Json = Any
# The synthetic proto below imports every well-known type: they must be in the default pool.
_WELL_KNOWN_MODULES = (empty_pb2, wrappers_pb2)

DOCUMENT = openapi_document()
SCHEMAS: Mapping[str, Json] = DOCUMENT["components"]["schemas"]


# --- validating JSON against the document's schemas -----------------------------------------


def _validator(schemas: Mapping[str, Json], name: str) -> jsonschema.Draft202012Validator:
    """A validator of ``#/components/schemas/<name>`` of a document holding ``schemas``."""
    root = {"components": {"schemas": dict(schemas)}}
    resource = Resource.from_contents(root, default_specification=DRAFT202012)
    registry: Registry[Json] = Registry().with_resource("urn:crm:openapi", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:crm:openapi#/components/schemas/{name}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _errors(schemas: Mapping[str, Json], name: str, instance: Json) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _validator(schemas, name).iter_errors(instance)
    ]


def _json(message: Message) -> Json:
    return json.loads(json_format.MessageToJson(message))


def _name(message: type[Message] | Message) -> str:
    return str(message.DESCRIPTOR.full_name)


# --- the document as a whole -----------------------------------------------------------------


def test_document_is_a_valid_openapi_3_1_document() -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(DOCUMENT)
    try:  # the reference validator, when installed (it is not a dependency of the project)
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        validate(DOCUMENT)


def test_every_schema_is_valid_json_schema_2020_12_and_every_reference_resolves() -> None:
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema.get("title", name) == name
    text = json.dumps(DOCUMENT)
    for target in re.findall(r'"\$ref": "([^"]+)"', text):
        kind, _, name = target.removeprefix("#/components/").partition("/")
        assert name in DOCUMENT["components"][kind], target
    for pattern in re.findall(r'"(?:pattern)": ("(?:[^"\\]|\\.)*")', text):
        re.compile(json.loads(pattern))


def test_document_is_plain_json_and_the_same_on_every_call() -> None:
    again = openapi_document()
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT == again
    assert DOCUMENT is not again
    again["components"]["schemas"]["google.protobuf.Timestamp"]["pattern"] = "changed"
    again["paths"]["/healthz"]["get"]["responses"]["200"]["content"].clear()
    assert openapi_document() == DOCUMENT  # nothing shared between calls
    assert DOCUMENT["openapi"] == "3.1.0"
    assert "servers" not in DOCUMENT
    custom = openapi_document(title="T", version="9", server_url="http://127.0.0.1:1")
    assert custom["info"]["title"] == "T"
    assert custom["info"]["version"] == "9"
    assert custom["servers"] == [{"url": "http://127.0.0.1:1"}]


def test_schemathesis_loads_every_operation() -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results)  # no operation failed to load
    posts = {op.path for op in operations if op.method.upper() == "POST"}
    assert posts == {route.http_path for route in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.http_path)
def test_every_route_has_its_operation(route: Route) -> None:
    operation = DOCUMENT["paths"][route.http_path]["post"]
    methods = {"post", "get"} if route.document_media_type else {"post"}
    assert set(DOCUMENT["paths"][route.http_path]) == methods
    assert operation["operationId"] == f"{route.service}_{route.method}"
    assert operation["tags"] == [route.service]
    assert operation["summary"]
    assert route.permission in operation["description"]
    assert operation["x-permission"] == route.permission
    assert operation["x-grpc-method"] == route.path
    body = operation["requestBody"]["content"][JSON_MEDIA_TYPE]["schema"]
    request = {"$ref": f"#/components/schemas/{_name(route.request_type)}"}
    assert body == ({"type": "array", "items": request} if route.client_streaming else request)
    reply = {"$ref": f"#/components/schemas/{_name(route.response_type)}"}
    answer = operation["responses"]["200"]["content"]
    if route.server_streaming:
        line = {"anyOf": [reply, {"$ref": "#/components/schemas/StreamError"}]}
        assert answer == {NDJSON_MEDIA_TYPE: {"schema": line}}
    elif route.document_media_type:
        assert answer[JSON_MEDIA_TYPE] == {"schema": reply}
        assert set(answer) == {JSON_MEDIA_TYPE, route.document_media_type}
    else:
        assert answer == {JSON_MEDIA_TYPE: {"schema": reply}}
    for status in (400, 401, 403, 404, 409, 412, 413, 429, 503, 504):
        assert operation["responses"][str(status)] == {"$ref": f"#/components/responses/{status}"}
    assert "500" not in operation["responses"]
    assert "security" not in operation  # the global requirement applies


def test_a_document_operation_has_a_get_with_its_request_fields_as_query_parameters() -> None:
    documents = [route for route in ROUTES if route.document_media_type]
    assert [route.http_path for route in documents] == [
        "/v1/SalesService/GetQuoteDocument",
        "/v1/AppointmentService/GetAppointmentCalendarFile",
    ]
    download = DOCUMENT["paths"]["/v1/SalesService/GetQuoteDocument"]["get"]
    assert download["operationId"] == "SalesService_GetQuoteDocument_download"
    assert [(p["name"], p["in"], p["required"]) for p in download["parameters"]] == [
        ("id", "query", True)
    ]
    assert set(download["responses"]["200"]["content"]) == {"application/pdf"}
    assert download["x-permission"] == "sales.read"


def test_operation_ids_are_unique_and_every_tag_is_declared() -> None:
    operations = [op for item in DOCUMENT["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    declared = {tag["name"] for tag in DOCUMENT["tags"]}
    assert {tag for op in operations for tag in op["tags"]} == declared


def test_credentials_and_errors() -> None:
    components = DOCUMENT["components"]
    assert components["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    assert DOCUMENT["security"] == [{"bearerAuth": []}, {"apiKey": []}]
    assert set(components["responses"]) == {str(status) for status in ERROR_RESPONSES}
    assert "Retry-After" in components["responses"]["429"]["headers"]
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert DOCUMENT["paths"][path]["get"]["security"] == []
    error = {
        "code": "INVALID_ARGUMENT",
        "message": "invalid request",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "contact.given_name", "description": "too long"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"},
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d"},
            {
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resourceType": "contact",
                "resourceName": "c-1",
            },
            {"@type": "type.googleapis.com/some.other.Detail", "anything": [1, 2]},
        ],
    }
    assert _errors(SCHEMAS, "Error", error) == []
    assert _errors(SCHEMAS, "Error", {"code": "NOPE", "message": "x"})
    bad_detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": 3}
    assert _errors(SCHEMAS, "Error", {"code": "INTERNAL", "message": "", "details": [bad_detail]})


# --- the proto3 JSON mapping, on a message with every kind of field ------------------------


def _everything() -> type[Message]:
    """A synthetic message with a field of every kind (and rules), added to the default pool."""
    package = "crm.test.openapi.v1"
    file = descriptor_pb2.FileDescriptorProto(
        name="crm/test/openapi/v1/everything.proto",
        package=package,
        syntax="proto3",
        dependency=[
            "buf/validate/validate.proto",
            "google/protobuf/any.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/empty.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
        ],
    )
    color = file.enum_type.add(name="Color")
    for number, value in enumerate(("COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN", "COLOR_BLUE")):
        color.value.add(name=value, number=number)
    message = file.message_type.add(name="Everything")
    kinds = FieldDescriptor
    scalars = {
        "f_double": kinds.TYPE_DOUBLE,
        "f_float": kinds.TYPE_FLOAT,
        "f_int32": kinds.TYPE_INT32,
        "f_int64": kinds.TYPE_INT64,
        "f_uint32": kinds.TYPE_UINT32,
        "f_uint64": kinds.TYPE_UINT64,
        "f_sint64": kinds.TYPE_SINT64,
        "f_fixed64": kinds.TYPE_FIXED64,
        "f_sfixed32": kinds.TYPE_SFIXED32,
        "f_bool": kinds.TYPE_BOOL,
        "f_string": kinds.TYPE_STRING,
        "f_bytes": kinds.TYPE_BYTES,
    }
    messages = {
        "f_timestamp": ".google.protobuf.Timestamp",
        "f_duration": ".google.protobuf.Duration",
        "f_mask": ".google.protobuf.FieldMask",
        "f_struct": ".google.protobuf.Struct",
        "f_value": ".google.protobuf.Value",
        "f_list": ".google.protobuf.ListValue",
        "f_empty": ".google.protobuf.Empty",
        "f_any": ".google.protobuf.Any",
        "f_int64_wrapper": ".google.protobuf.Int64Value",
        "f_string_wrapper": ".google.protobuf.StringValue",
        "f_double_wrapper": ".google.protobuf.DoubleValue",
        "f_bool_wrapper": ".google.protobuf.BoolValue",
        "f_self": f".{package}.Everything",
    }
    number = 0

    def add(name: str, **fields: Any) -> descriptor_pb2.FieldDescriptorProto:
        nonlocal number
        number += 1
        label = fields.pop("label", kinds.LABEL_OPTIONAL)
        return message.field.add(name=name, number=number, label=label, **fields)

    for name, kind in scalars.items():
        add(name, type=kind)
        add(f"r_{name[2:]}", type=kind, label=kinds.LABEL_REPEATED)
    for name, type_name in messages.items():
        add(name, type=kinds.TYPE_MESSAGE, type_name=type_name)
        add(
            f"r_{name[2:]}",
            type=kinds.TYPE_MESSAGE,
            type_name=type_name,
            label=kinds.LABEL_REPEATED,
        )
    add("f_color", type=kinds.TYPE_ENUM, type_name=f".{package}.Color")
    add("r_color", type=kinds.TYPE_ENUM, type_name=f".{package}.Color", label=kinds.LABEL_REPEATED)
    # Maps: string → message, int64 → enum, bool → string.
    for name, key_type, value_type, value_type_name in (
        ("m_string_self", kinds.TYPE_STRING, kinds.TYPE_MESSAGE, f".{package}.Everything"),
        ("m_int64_color", kinds.TYPE_INT64, kinds.TYPE_ENUM, f".{package}.Color"),
        ("m_bool_string", kinds.TYPE_BOOL, kinds.TYPE_STRING, ""),
    ):
        entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key_type, label=kinds.LABEL_OPTIONAL)
        value_field = entry.field.add(
            name="value", number=2, type=value_type, label=kinds.LABEL_OPTIONAL
        )
        if value_type_name:
            value_field.type_name = value_type_name
        add(
            name,
            type=kinds.TYPE_MESSAGE,
            type_name=f".{package}.Everything.{entry_name}",
            label=kinds.LABEL_REPEATED,
        )
    # A oneof, and a proto3 `optional` (a synthetic oneof, declared after the real ones).
    message.oneof_decl.add(name="choice")
    add("o_text", type=kinds.TYPE_STRING, oneof_index=0)
    add("o_number", type=kinds.TYPE_INT64, oneof_index=0)
    add("o_color", type=kinds.TYPE_ENUM, type_name=f".{package}.Color", oneof_index=0)
    message.oneof_decl.add(name="_p_double")
    add("p_double", type=kinds.TYPE_DOUBLE, oneof_index=1, proto3_optional=True)

    # A message with rules.
    checked = file.message_type.add(name="Checked")
    number = 0
    message = checked

    def rules(field: descriptor_pb2.FieldDescriptorProto) -> validate_pb2.FieldRules:
        extension: validate_pb2.FieldRules = field.options.Extensions[validate_pb2.field]
        return extension

    name_rules = rules(add("name", type=kinds.TYPE_STRING)).string
    name_rules.min_len, name_rules.max_len, name_rules.pattern = 2, 5, "^[a-z]+$"
    rules(add("code", type=kinds.TYPE_STRING)).string.prefix = "C-"
    rules(add("count", type=kinds.TYPE_INT32)).int32.MergeFrom(
        validate_pb2.Int32Rules(gte=1, lt=10)
    )
    rules(add("big", type=kinds.TYPE_INT64)).int64.MergeFrom(
        validate_pb2.Int64Rules(gt=0, lte=1000)
    )
    version = add("version", type=kinds.TYPE_INT64)
    rules(version).int64.gte = 1
    rules(version).ignore = validate_pb2.IGNORE_IF_ZERO_VALUE
    color_rules = rules(add("color", type=kinds.TYPE_ENUM, type_name=f".{package}.Color"))
    color_rules.required = True
    color_rules.enum.MergeFrom(validate_pb2.EnumRules(defined_only=True, not_in=[3]))
    tags = rules(add("tags", type=kinds.TYPE_STRING, label=kinds.LABEL_REPEATED)).repeated
    tags.MergeFrom(validate_pb2.RepeatedRules(min_items=1, max_items=3, unique=True))
    tags.items.string.max_len = 4
    rules(
        add("when", type=kinds.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
    ).required = True
    mask = rules(add("mask", type=kinds.TYPE_MESSAGE, type_name=".google.protobuf.FieldMask"))
    getattr(mask.field_mask, "in").extend(["name", "tags", "display_name"])
    ratio = rules(add("ratio", type=kinds.TYPE_DOUBLE)).double
    ratio.MergeFrom(validate_pb2.DoubleRules(gte=0, lte=1))
    email = rules(add("email", type=kinds.TYPE_STRING))
    email.string.email = True
    email.ignore = validate_pb2.IGNORE_IF_ZERO_VALUE

    pool = descriptor_pool.Default()
    pool.AddSerializedFile(file.SerializeToString())
    return GetMessageClass(pool.FindMessageTypeByName(f"{package}.Everything"))


@cache
def everything() -> type[Message]:
    """The synthetic message class (built once per process)."""
    return _everything()


@cache
def checked() -> type[Message]:
    """The synthetic message class with rules."""
    everything()
    pool = descriptor_pool.Default()
    return GetMessageClass(pool.FindMessageTypeByName("crm.test.openapi.v1.Checked"))


def test_mapping_of_every_kind_of_field() -> None:
    schemas = message_schemas([everything()], rules=False)
    props = schemas["crm.test.openapi.v1.Everything"]["properties"]
    assert props["fInt32"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    int64 = props["fInt64"]["anyOf"]
    assert int64[0]["type"] == "string"
    assert int64[1] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    assert props["fUint64"]["anyOf"][1]["minimum"] == 0
    assert props["fBool"] == {"type": "boolean"}
    assert props["fString"] == {"type": "string"}
    assert props["fBytes"]["contentEncoding"] == "base64"
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]} in props["fDouble"]["anyOf"]
    assert props["rString"] == {"type": "array", "items": {"type": "string"}}
    assert props["fColor"] == {"$ref": "#/components/schemas/crm.test.openapi.v1.Color"}
    assert props["fSelf"] == {"$ref": "#/components/schemas/crm.test.openapi.v1.Everything"}
    assert props["mBoolString"]["propertyNames"] == {"enum": ["true", "false"]}
    assert props["mBoolString"]["additionalProperties"] == {"type": "string"}
    assert re.match(props["mInt64Color"]["propertyNames"]["pattern"], "-42")
    assert props["mInt64Color"]["additionalProperties"] == props["fColor"]
    assert props["pDouble"] == props["fDouble"]
    color = schemas["crm.test.openapi.v1.Color"]["anyOf"]
    assert color[0]["enum"] == ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN", "COLOR_BLUE"]
    assert color[1]["type"] == "integer"
    assert schemas["google.protobuf.Timestamp"]["format"] == "date-time"
    assert schemas["google.protobuf.Duration"]["type"] == "string"
    assert schemas["google.protobuf.FieldMask"]["type"] == "string"
    assert schemas["google.protobuf.Struct"]["type"] == "object"
    assert "type" not in schemas["google.protobuf.Value"]
    assert schemas["google.protobuf.Empty"] == {
        "title": "google.protobuf.Empty",
        "type": "object",
        "additionalProperties": False,
    }
    assert schemas["google.protobuf.Int64Value"]["anyOf"] == int64
    assert schemas["google.protobuf.BoolValue"]["type"] == "boolean"
    # A oneof allows one member at most.
    everything_schema = schemas["crm.test.openapi.v1.Everything"]
    one = {"oText": "a"}
    assert _errors(schemas, "crm.test.openapi.v1.Everything", one) == []
    assert _errors(schemas, "crm.test.openapi.v1.Everything", {**one, "oNumber": "1"})
    assert everything_schema["additionalProperties"] is False
    assert _errors(schemas, "crm.test.openapi.v1.Everything", {"unknownField": 1})


def test_mapping_of_the_rules() -> None:
    schemas = message_schemas([checked()])
    name = "crm.test.openapi.v1.Checked"
    schema = schemas[name]
    props = schema["properties"]
    assert schema["required"] == ["color", "when"]
    assert props["name"] == {
        "type": "string",
        "minLength": 2,
        "maxLength": 5,
        "pattern": "^[a-z]+$",
    }
    assert props["code"]["pattern"] == "^C-"
    assert props["count"] == {"type": "integer", "minimum": 1, "exclusiveMaximum": 10}
    assert props["tags"]["minItems"] == 1
    assert props["tags"]["maxItems"] == 3
    assert props["tags"]["uniqueItems"] is True
    assert props["tags"]["items"]["maxLength"] == 4

    valid = {
        "name": "abc",
        "code": "C-1",
        "count": 9,
        "big": "1000",
        "version": "0",
        "color": "COLOR_GREEN",
        "tags": ["a"],
        "when": "2025-01-01T00:00:00Z",
        "mask": "name,displayName,tags.x",
        "ratio": 0.5,
        "email": "",
    }
    assert _errors(schemas, name, valid) == []
    changes: list[dict[str, Any]] = [
        {"name": "a"},
        {"name": "abcdef"},
        {"name": "AB"},
        {"code": "X-1"},
        {"count": 0},
        {"count": 10},
        {"big": "0"},
        {"big": 0},
        {"big": "1001"},
        {"big": 1001},
        {"version": -1},
        {"color": "COLOR_BLUE"},
        {"color": 3},
        {"color": "COLOR_UNSPECIFIED"},
        {"color": 0},
        {"color": 7},
        {"tags": []},
        {"tags": ["a", "a"]},
        {"tags": ["a", "b", "c", "d"]},
        {"tags": ["abcde"]},
        {"when": "yesterday"},
        {"mask": "name,other"},
        {"mask": "display_name"},
        {"ratio": 1.5},
        {"ratio": "NaN"},
        {"email": "x"},
    ]
    for change in changes:
        assert _errors(schemas, name, {**valid, **change}), change
    for change in ({"version": "7"}, {"version": 7}, {"color": 2}, {"big": 1}, {"mask": ""}):
        assert _errors(schemas, name, {**valid, **change}) == [], change
    without = {key: value for key, value in valid.items() if key != "when"}
    assert _errors(schemas, name, without)


def test_rules_on_the_real_protos() -> None:
    contact = SCHEMAS["crm.contacts.v1.Contact"]["properties"]
    assert contact["segments"]["maxItems"] == 50
    assert contact["customAttributes"]["maxProperties"] == 100
    assert contact["customAttributes"]["propertyNames"]["pattern"] == "^[a-z][a-z0-9_]{0,63}$"
    create = SCHEMAS["crm.contacts.v1.CreateContactRequest"]
    assert create["required"] == ["contact"]
    assert "contact.name_required" in create["properties"]["contact"]["description"]
    update = SCHEMAS["crm.contacts.v1.UpdateContactRequest"]
    assert update["required"] == ["contact", "updateMask"]
    assert re.match(
        update["properties"]["updateMask"]["pattern"], "givenName,consent.emailMarketing"
    )
    assert not re.match(update["properties"]["updateMask"]["pattern"], "version")
    actor = message_schemas([common_pb2.Actor])["crm.common.v1.Actor"]
    assert actor["required"] == ["type"]
    statuses = SCHEMAS["crm.servicedesk.v1.ListTicketsRequest"]["properties"]["statuses"]
    assert "TICKET_STATUS_UNSPECIFIED" not in statuses["items"]["anyOf"][0]["enum"]
    assert 0 not in statuses["items"]["anyOf"][1]["enum"]


def test_required_rules_and_only_they_make_required_properties() -> None:
    for name, schema in SCHEMAS.items():
        if not name.startswith("crm."):
            continue
        if schema.get("type") != "object":
            continue
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        expected = [
            field.json_name
            for field in descriptor.fields
            if field.GetOptions().Extensions[validate_pb2.field].required
        ]
        assert schema.get("required", []) == expected, name


# --- round trips: what json_format writes validates against the schema ---------------------

_FLOAT32_MAX = 3.4028234663852886e38
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31
_DURATION_SECONDS = 315576000000
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_SNAKE = st.from_regex(r"[a-z][a-z0-9]{0,5}(_[a-z][a-z0-9]{0,5}){0,2}", fullmatch=True)
_JSON_SCALARS = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.cpp_type
    if field.enum_type is not None:
        numbers = [value.number for value in field.enum_type.values]
        return st.sampled_from(numbers) | st.integers(-(2**31), 2**31 - 1)
    integer_bounds = {
        FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
        FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
        FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
    }
    if kind in integer_bounds:
        low, high = integer_bounds[kind]
        return st.sampled_from([low, high, 0]) | st.integers(low, high)
    if kind == FieldDescriptor.CPPTYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.CPPTYPE_FLOAT:
        # json_format writes the largest float32 as 3.4028235e+38 and refuses to read that back;
        # the document takes the reader's side.
        return st.floats(width=32).filter(lambda value: abs(value) != _FLOAT32_MAX)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=12)
    return _TEXT


def _well_known(descriptor: Descriptor) -> st.SearchStrategy[Message] | None:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return st.builds(
            timestamp_pb2.Timestamp,
            seconds=st.integers(*_TIMESTAMP_SECONDS),
            nanos=st.integers(0, 999_999_999),
        )
    if name == "google.protobuf.Duration":
        return st.integers(-_DURATION_SECONDS, _DURATION_SECONDS).flatmap(
            lambda seconds: st.builds(
                duration_pb2.Duration,
                seconds=st.just(seconds),
                nanos=st.integers(0, 999_999_999).map(lambda n: -n if seconds < 0 else n),
            )
        )
    if name == "google.protobuf.FieldMask":
        paths = st.lists(st.lists(_SNAKE, min_size=1, max_size=3).map(".".join), max_size=3)
        return paths.map(lambda items: field_mask_pb2.FieldMask(paths=items))
    if name == "google.protobuf.Struct":
        return st.dictionaries(_TEXT, _JSON, max_size=3).map(_struct)
    if name == "google.protobuf.Value":
        return _JSON.map(_value)
    if name == "google.protobuf.ListValue":
        return st.lists(_JSON, max_size=3).map(_list_value)
    if name == "google.protobuf.Any":
        return st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 10**9)).map(_packed)
    return None


def _struct(items: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(items)
    return struct


def _value(item: Any) -> struct_pb2.Value:
    return _struct({"x": item}).fields["x"]


def _list_value(items: list[Any]) -> struct_pb2.ListValue:
    return _struct({"x": items}).fields["x"].list_value


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@st.composite
def _messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """Any message of the type (within limits of size and depth): every field may be set."""
    well_known = _well_known(descriptor)
    if well_known is not None:
        return draw(well_known)
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        nested = field.message_type
        if nested is not None and depth >= 2 and _well_known(nested) is None:
            continue
        if not draw(st.booleans()):
            continue
        if nested is not None and nested.GetOptions().map_entry:
            key, value = nested.fields_by_name["key"], nested.fields_by_name["value"]
            target = getattr(message, field.name)
            for item_key in draw(st.lists(_scalar(key), max_size=2)):
                if value.message_type is not None:
                    target[item_key].CopyFrom(draw(_messages(value.message_type, depth + 1)))
                else:
                    target[item_key] = draw(_scalar(value))
        elif field.is_repeated:
            target = getattr(message, field.name)
            if nested is not None:
                for item in draw(st.lists(_messages(nested, depth + 1), max_size=2)):
                    target.add().CopyFrom(item)
            else:
                target.extend(draw(st.lists(_scalar(field), max_size=2)))
        elif nested is not None:
            getattr(message, field.name).CopyFrom(draw(_messages(nested, depth + 1)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


def _descriptor(message_type: type[Message]) -> Descriptor:
    descriptor: Descriptor = message_type.DESCRIPTOR  # type: ignore[assignment]  # upb's is one
    return descriptor


def _reachable_types() -> Iterator[type[Message]]:
    seen: set[str] = set()
    for route in ROUTES:
        for message in (route.request_type, route.response_type):
            if _name(message) not in seen:
                seen.add(_name(message))
                yield message


_ALL_TYPES = [*_reachable_types(), everything()]
_BARE_SCHEMAS = message_schemas(_ALL_TYPES, rules=False)


@pytest.mark.parametrize("message_type", _ALL_TYPES, ids=_name)
def test_any_message_written_by_json_format_matches_its_bare_schema(
    message_type: type[Message],
) -> None:
    """Without the rules (which a random message breaks), the schema takes every message."""

    @settings(max_examples=25, derandomize=True, deadline=None, database=None)
    @given(_messages(_descriptor(message_type)))
    def check(message: Message) -> None:
        written = _json(message)
        assert _errors(_BARE_SCHEMAS, _name(message_type), written) == [], written

    check()


def _at(seconds: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=seconds))
    return stamp


def _samples() -> list[Message]:
    """Valid messages (protovalidate accepts them), with many fields set."""
    contact = contacts_pb2.Contact(
        id="c-1",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada L.",
        job_title="Engineer",
        lifecycle_stage=contacts_pb2.LIFECYCLE_STAGE_CUSTOMER,
        tier=contacts_pb2.VALUE_TIER_GOLD,
        segments=["vip", "eu"],
        custom_attributes={"shoe_size": "42"},
        version=2**62,
        create_time=_at(0),
        update_time=_at(1),
    )
    contact.identities.add().CopyFrom(_first_identity())
    query = metrics_pb2.GetKpisRequest(
        kpis=["frt_business", "csat@1"],
        start_time=_at(-86400),
        end_time=_at(0),
        filters={"channel": "email"},
    )
    stream = metrics_pb2.StreamKpisRequest(query=query, follow=True)
    stream.min_interval.FromTimedelta(timedelta(seconds=1.5))
    update = contacts_pb2.UpdateContactRequest(contact=contact, expected_version=3)
    update.update_mask.paths.extend(["given_name", "consent.email_marketing", "custom_attributes"])
    tickets = servicedesk_pb2.ListTicketsRequest(
        statuses=[servicedesk_pb2.TICKET_STATUS_OPEN, servicedesk_pb2.TICKET_STATUS_NEW],
        page_size=50,
    )
    messages: list[Message] = [
        contacts_pb2.CreateContactRequest(contact=contact, request_id="r-1"),
        contacts_pb2.GetContactResponse(contact=contact),
        update,
        query,
        stream,
        tickets,
    ]
    return messages


def _first_identity() -> contacts_pb2.Identity:
    identity = contacts_pb2.Identity()
    kinds = contacts_pb2.Identity.DESCRIPTOR.fields_by_name
    for name, value in (("kind", 1), ("value", "ada@example.com"), ("primary", True)):
        if name in kinds:
            setattr(identity, name, value)
    return identity


@pytest.mark.parametrize("message", _samples(), ids=lambda message: _name(message))
def test_valid_messages_match_their_schema_with_rules(message: Message) -> None:
    protovalidate.validate(message)
    written = _json(message)
    assert _errors(SCHEMAS, _name(message), written) == [], written


def test_breaking_a_field_rule_breaks_the_schema() -> None:
    contact = contacts_pb2.Contact(given_name="x" * 201)
    request = contacts_pb2.CreateContactRequest(contact=contact)
    with pytest.raises(protovalidate.ValidationError):
        protovalidate.validate(request)
    assert _errors(SCHEMAS, _name(request), _json(request))


# --- requests: whatever the schema allows, json_format reads -------------------------------

_LOADED = schemathesis.openapi.from_dict(DOCUMENT)


def _parse(route: Route, body: Json) -> Message:
    return json_format.Parse(json.dumps(body), route.request_type(), ignore_unknown_fields=False)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.http_path)
def test_bodies_generated_from_the_schema_are_read_by_json_format(route: Route) -> None:
    """Schemathesis's positive bodies parse, and read back match the schema again."""
    operation = _LOADED[route.http_path]["POST"]

    @settings(
        max_examples=15,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        body: Any = case.body
        bodies = body if route.client_streaming else [body]
        for body in bodies:
            message = _parse(route, body)
            written = _json(message)
            assert _errors(SCHEMAS, _name(route.request_type), written) == [], (body, written)

    check()


@pytest.mark.parametrize("message_type", [everything, checked], ids=["Everything", "Checked"])
def test_bodies_of_every_kind_of_field_are_read_by_json_format(
    message_type: Callable[[], type[Message]],
) -> None:
    """The same, over a field of every kind; an Any's type must be known, which the document
    cannot say (the API has no Any field)."""
    route = dataclasses.replace(ROUTES[0], request_type=message_type(), response_type=Empty)
    document = openapi_document([route])
    assert list(document["paths"]) == [route.http_path, *list(document["paths"])[1:]]
    operation = schemathesis.openapi.from_dict(document)[route.http_path]["POST"]

    @settings(
        max_examples=150,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        try:
            body: Any = case.body
            message = _parse(route, body)
        except json_format.ParseError as error:
            assert "type_url" in str(error), case.body
            return
        written = _json(message)
        if "3.4028235e+38" in json.dumps(written):
            return  # a float rounded to the largest float32, which json_format writes too long
        schemas = document["components"]["schemas"]
        assert _errors(schemas, _name(route.request_type), written) == [], (case.body, written)

    check()


def test_integers_and_special_numbers_in_both_json_forms() -> None:
    everything_type = everything()
    name = _name(everything_type)
    good: list[dict[str, Any]] = [
        {"fInt64": "9223372036854775807", "fUint64": "18446744073709551615"},
        {"fInt64": -9223372036854775808, "fSint64": "-1", "fFixed64": 0},
        {"fDouble": "NaN", "fFloat": "-Infinity", "rDouble": [1.5, "Infinity"]},
        {"fColor": "COLOR_RED", "rColor": [2, "COLOR_BLUE", 99]},
        {"mInt64Color": {"-5": "COLOR_RED"}, "mBoolString": {"true": "x"}},
        {"fTimestamp": "2025-03-01T10:00:00.123456789+01:00", "fDuration": "-1.5s"},
        {"fMask": "a.bC,dE", "fStruct": {"a": [1, None, {"b": True}]}, "fValue": None},
        {"fAny": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}},
        {
            "fInt64Wrapper": "5",
            "fStringWrapper": "",
            "fDoubleWrapper": "NaN",
            "fBoolWrapper": False,
        },
        {"fBytes": "aGVsbG8=", "fEmpty": {}, "oColor": 1, "pDouble": 0},
    ]
    for body in good:
        assert _errors(_BARE_SCHEMAS, name, body) == [], body
        message = json_format.Parse(json.dumps(body), everything_type())
        assert _errors(_BARE_SCHEMAS, name, _json(message)) == [], body
    bad: list[dict[str, Any]] = [
        {"fInt64": "9223372036854775808"},
        {"fInt64": 2**63},
        {"fUint64": "-1"},
        {"fInt32": "1"},
        {"fInt32": 2**31},
        {"fFloat": 1e39},
        {"fDouble": "nan"},
        {"fColor": "RED"},
        {"fTimestamp": "2025-03-01 10:00:00Z"},
        {"fDuration": "1.5"},
        {"fBool": "true"},
        {"mBoolString": {"yes": "x"}},
        {"fAny": {"value": "1s"}},
    ]
    for body in bad:
        assert _errors(_BARE_SCHEMAS, name, body), body
