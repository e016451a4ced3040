"""The OpenAPI 3.1 document of the JSON/HTTP API, generated from the route table.

Nothing here is written per operation: every route of :data:`crm_gateway.routes.ROUTES` becomes
one ``POST /v1/<Service>/<Method>`` operation, and every message it reaches becomes one schema
under ``components/schemas``, named by its full proto name (``crm.contacts.v1.Contact``). The
schemas follow the proto3 JSON mapping exactly as ``google.protobuf.json_format`` speaks it
(lowerCamelCase names, enums by name, 64-bit integers as strings, well-known types in their
special forms) and add the protovalidate (``buf.validate``) rules that JSON Schema can express;
the rules it cannot express (CEL expressions, byte lengths, duration bounds...) are described in
words. The schemas describe what the gateway *answers* exactly; for requests they describe what it
*accepts*, less a few spellings the parser also tolerates (original proto field names, integers
and floats as strings, enum numbers as strings, ``null`` for unset fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any, Final

from buf.validate import validate_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    OneofDescriptor,
)
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2

from crm_gateway.routes import ROUTES, Route

__all__ = [
    "ERROR_RESPONSES",
    "JSON_MEDIA_TYPE",
    "NDJSON_MEDIA_TYPE",
    "OPENAPI_VERSION",
    "message_schemas",
    "openapi_document",
    "schema_ref",
]

JsonSchema = dict[str, Any]
"""One JSON Schema (2020-12, the dialect of OpenAPI 3.1) as a JSON-compatible dict."""

OPENAPI_VERSION: Final = "3.1.0"
JSON_MEDIA_TYPE: Final = "application/json"
NDJSON_MEDIA_TYPE: Final = "application/x-ndjson"

_REF_PREFIX: Final = "#/components/schemas/"
_ERROR_SCHEMA: Final = "Error"
_ERROR_DETAIL_SCHEMA: Final = "ErrorDetail"
_TYPE_URL_PREFIX: Final = "type.googleapis.com/"

# JSON numbers for the integer types, and the patterns of their string forms.
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UINT32_MAX = 2**32 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_FLOAT_MAX: Final = 3.4028234663852886e38  # json_format refuses float fields beyond this
_DOUBLE_MAX: Final = 1.7976931348623157e308
_SIGNED_DIGITS: Final = "^-?[0-9]+$"
_UNSIGNED_DIGITS: Final = "^[0-9]+$"
_POSITIVE_DIGITS: Final = "^0*[1-9][0-9]*$"
_FLOAT_SPECIALS: Final = ("NaN", "Infinity", "-Infinity")

# Timestamps as json_format writes them (always "Z") and reads them (any offset, "T" and "Z"
# upper-case, at most nine fractional digits); `format` says the rest (valid dates and times).
_TIMESTAMP_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
# Durations: seconds with up to nine fractional digits and the suffix "s" ("1.5s", "-0.25s").
_DURATION_PATTERN: Final = r"^-?[0-9]{1,12}(\.[0-9]{0,9})?s$"
# Bytes: base64, standard or URL-safe alphabet, padding optional.
_BASE64_PATTERN: Final = r"^[A-Za-z0-9+/_-]*={0,2}$"
# FieldMask paths as JSON spells them: lowerCamelCase segments joined by "." and ",".
_MASK_SEGMENT: Final = r"[A-Za-z0-9]+"

_INTEGER_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_SIXTY_FOUR_BIT: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_UNSIGNED: Final = frozenset(
    {
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_FLOATING: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})

# The rules of buf.validate.FieldRules that apply to each scalar field type.
_RULES_OF_TYPE: Final[Mapping[int, str]] = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_ENUM: "enum",
}

# Formats of buf.validate.StringRules that JSON Schema knows by (nearly) the same name.
_STRING_FORMATS: Final[Mapping[str, str]] = {
    "email": "email",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "uri": "uri",
    "uri_ref": "uri-reference",
    "uuid": "uuid",
}

# The error statuses of every operation: (description, the gRPC codes that produce them).
ERROR_RESPONSES: Final[Mapping[int, tuple[str, tuple[str, ...]]]] = {
    400: (
        "The request is invalid: malformed JSON, or a field breaks its rules.",
        ("INVALID_ARGUMENT",),
    ),
    401: ("No credential, or a credential that is invalid or expired.", ("UNAUTHENTICATED",)),
    403: ("The credential's role may not call this operation.", ("PERMISSION_DENIED",)),
    404: ("The resource does not exist (in the caller's tenant).", ("NOT_FOUND",)),
    409: (
        "The resource already exists, or a concurrent change won (version mismatch).",
        ("ALREADY_EXISTS", "ABORTED"),
    ),
    412: ("The resource is not in a state that allows the operation.", ("FAILED_PRECONDITION",)),
    413: ("The request body is larger than the gateway accepts.", ()),
    415: ("The request body is not `application/json`.", ()),
    429: (
        "The credential's rate limit is exhausted; retry after `Retry-After` seconds.",
        ("RESOURCE_EXHAUSTED",),
    ),
    503: (
        "The backend is unavailable (down, or its circuit is open); retry later.",
        ("UNAVAILABLE",),
    ),
    504: ("The backend did not answer within the deadline.", ("DEADLINE_EXCEEDED",)),
}

_ERROR_DETAIL_TYPES: Final = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
)


def schema_ref(name: str) -> JsonSchema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": _REF_PREFIX + name}


def _pattern_literal(text: str) -> str:
    """``text`` as an ECMA-262 regular expression that matches it literally."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def _camel(path: str) -> str:
    """A field path as JSON spells it (``json_format``'s snake_case to lowerCamelCase)."""
    return re.sub(r"_([a-z0-9])", lambda match: match.group(1).upper(), path)


def _float_schema(double: bool) -> JsonSchema:
    limit = _DOUBLE_MAX if double else _FLOAT_MAX
    return {
        "anyOf": [
            {"type": "number", "minimum": -limit, "maximum": limit},
            {"type": "string", "enum": list(_FLOAT_SPECIALS)},
        ]
    }


def _integer_bounds(field_type: int) -> tuple[int, int]:
    if field_type in _SIXTY_FOUR_BIT:
        return (0, _UINT64_MAX) if field_type in _UNSIGNED else (_INT64_MIN, _INT64_MAX)
    return (0, _UINT32_MAX) if field_type in _UNSIGNED else (_INT32_MIN, _INT32_MAX)


def _integer_schema(field_type: int) -> JsonSchema:
    low, high = _integer_bounds(field_type)
    number: JsonSchema = {"type": "integer", "minimum": low, "maximum": high}
    if field_type not in _SIXTY_FOUR_BIT:
        return number
    # 64-bit integers are written as decimal strings (JavaScript numbers lose precision past
    # 2**53) and read as either strings or numbers.
    digits = _UNSIGNED_DIGITS if field_type in _UNSIGNED else _SIGNED_DIGITS
    return {"anyOf": [{"type": "string", "pattern": digits}, number]}


def _wrapper(value_type: int) -> Callable[[], JsonSchema]:
    def schema() -> JsonSchema:
        return _scalar_schema(value_type)

    return schema


def _scalar_schema(field_type: int) -> JsonSchema:
    """The JSON form of a scalar (non-enum, non-message) field type, without rules."""
    if field_type in _FLOATING:
        return _float_schema(field_type == FieldDescriptor.TYPE_DOUBLE)
    if field_type in _INTEGER_TYPES:
        return _integer_schema(field_type)
    if field_type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if field_type == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if field_type == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
    raise ValueError(f"not a scalar field type: {field_type}")


# The well-known types, which JSON spells in their own ways.
_WELL_KNOWN: Final[Mapping[str, Callable[[], JsonSchema]]] = {
    "google.protobuf.Timestamp": lambda: {
        "type": "string",
        "format": "date-time",
        "pattern": _TIMESTAMP_PATTERN,
        "description": "An instant, as an RFC 3339 date-time (written in UTC: `Z`).",
    },
    "google.protobuf.Duration": lambda: {
        "type": "string",
        "pattern": _DURATION_PATTERN,
        "description": 'A signed length of time in seconds with the suffix "s", e.g. "1.5s".',
    },
    "google.protobuf.FieldMask": lambda: {
        "type": "string",
        "pattern": rf"^({_MASK_SEGMENT}(\.{_MASK_SEGMENT})*|\*)?"
        rf"(,({_MASK_SEGMENT}(\.{_MASK_SEGMENT})*|\*))*$",
        "description": "Field paths in lowerCamelCase, separated by commas.",
    },
    "google.protobuf.Struct": lambda: {"type": "object", "description": "Any JSON object."},
    "google.protobuf.Value": lambda: {"description": "Any JSON value."},
    "google.protobuf.ListValue": lambda: {"type": "array", "description": "Any JSON array."},
    "google.protobuf.Empty": lambda: {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": lambda: {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string", "description": "The type URL of the value."}},
        "additionalProperties": True,
        "description": "A message of any type: `@type` and the message's own fields.",
    },
    "google.protobuf.DoubleValue": _wrapper(FieldDescriptor.TYPE_DOUBLE),
    "google.protobuf.FloatValue": _wrapper(FieldDescriptor.TYPE_FLOAT),
    "google.protobuf.Int64Value": _wrapper(FieldDescriptor.TYPE_INT64),
    "google.protobuf.UInt64Value": _wrapper(FieldDescriptor.TYPE_UINT64),
    "google.protobuf.Int32Value": _wrapper(FieldDescriptor.TYPE_INT32),
    "google.protobuf.UInt32Value": _wrapper(FieldDescriptor.TYPE_UINT32),
    "google.protobuf.BoolValue": _wrapper(FieldDescriptor.TYPE_BOOL),
    "google.protobuf.StringValue": _wrapper(FieldDescriptor.TYPE_STRING),
    "google.protobuf.BytesValue": _wrapper(FieldDescriptor.TYPE_BYTES),
}


def _field_rules(field: FieldDescriptor) -> validate_pb2.FieldRules | None:
    options = field.GetOptions()
    if not options.HasExtension(validate_pb2.field):
        return None
    rules: validate_pb2.FieldRules = options.Extensions[validate_pb2.field]
    if rules.ignore == validate_pb2.IGNORE_ALWAYS:
        return None
    return rules


def _has(message: Message, name: str) -> bool:
    return name in {descriptor.name for descriptor, _ in message.ListFields()}


def _cel_descriptions(rules: Iterable[validate_pb2.Rule], expressions: Iterable[str]) -> list[str]:
    lines = [f"{rule.message or rule.expression} (`{rule.id}`)" for rule in rules]
    lines.extend(f"`{expression}`" for expression in expressions)
    return lines


def _describe(schema: JsonSchema, lines: Sequence[str]) -> JsonSchema:
    if lines:
        text = "\n".join(f"- {line}" for line in lines)
        schema["description"] = (
            f"{schema['description']}\n\n{text}" if "description" in schema else text
        )
    return schema


class _SchemaBuilder:
    """Builds the component schemas of messages (and enums) on demand, once each."""

    def __init__(self, *, rules: bool) -> None:
        self.rules = rules
        self.schemas: dict[str, JsonSchema] = {}

    # --- components ---------------------------------------------------------------------

    def message(self, descriptor: Descriptor) -> JsonSchema:
        """A reference to the message's schema, building it (and what it reaches) if new."""
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: a message may reach itself
            self.schemas[name] = self._message_schema(descriptor)
        return schema_ref(name)

    def enum(self, descriptor: EnumDescriptor) -> JsonSchema:
        """A reference to the enum's schema: its value names, or any 32-bit number."""
        name = descriptor.full_name
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        if name not in self.schemas:
            self.schemas[name] = {
                "anyOf": [
                    {"type": "string", "enum": [value.name for value in descriptor.values]},
                    {"type": "integer", "minimum": _INT32_MIN, "maximum": _INT32_MAX},
                ],
                "description": f"A {name} by name; numbers are accepted (and unknown ones "
                "written) too.",
            }
        return schema_ref(name)

    def _message_schema(self, descriptor: Descriptor) -> JsonSchema:
        well_known = _WELL_KNOWN.get(descriptor.full_name)
        if well_known is not None:
            return {"title": descriptor.full_name, **well_known()}
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for field in descriptor.fields:
            rules = _field_rules(field) if self.rules else None
            properties[field.json_name] = self._field(field, rules)
            if rules is not None and rules.required:
                required.append(field.json_name)
        schema: JsonSchema = {
            "title": descriptor.full_name,
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        constraints = [
            constraint for constraint in map(self._oneof, descriptor.oneofs) if constraint
        ]
        if constraints:
            schema["allOf"] = constraints
        if self.rules:
            options = descriptor.GetOptions()
            if options.HasExtension(validate_pb2.message):
                message_rules: validate_pb2.MessageRules = options.Extensions[validate_pb2.message]
                _describe(
                    schema,
                    _cel_descriptions(message_rules.cel, message_rules.cel_expression),
                )
        return schema

    def _oneof(self, oneof: OneofDescriptor) -> JsonSchema:
        """At most one member of a oneof may be set (and, when required, at least one)."""
        names = [field.json_name for field in oneof.fields]
        constraint: JsonSchema = {}
        if len(names) > 1:
            pairs = [
                {"required": [first, second]}
                for index, first in enumerate(names)
                for second in names[index + 1 :]
            ]
            constraint["not"] = {"anyOf": pairs}
        options = oneof.GetOptions()
        if self.rules and options.HasExtension(validate_pb2.oneof):
            oneof_rules: validate_pb2.OneofRules = options.Extensions[validate_pb2.oneof]
            if oneof_rules.required:
                constraint["anyOf"] = [{"required": [name]} for name in names]
        return constraint

    # --- fields -------------------------------------------------------------------------

    def _field(self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None) -> JsonSchema:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            schema = self._map(field, rules)
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            schema = self._repeated(field, rules)
        else:
            schema = self._single(field, rules)
            if rules is not None and rules.required and not field.has_presence:
                schema = {"allOf": [schema, self._zero(field, negate=True)]}
        if rules is None:
            return schema
        lines = _cel_descriptions(rules.cel, rules.cel_expression)
        if rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE and not field.has_presence:
            schema = {"anyOf": [self._zero(field, negate=False), schema]}
            lines.insert(0, "The rules apply only to a value other than the zero value.")
        return _describe(schema, lines)

    def _zero(self, field: FieldDescriptor, *, negate: bool) -> JsonSchema:
        """The JSON forms of the field's zero value (or, negated, any other value)."""
        zero: JsonSchema
        if field.label == FieldDescriptor.LABEL_REPEATED:
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            zero = {"maxProperties": 0} if is_map else {"maxItems": 0}
        elif field.type == FieldDescriptor.TYPE_ENUM:
            zero = {"enum": [field.enum_type.values_by_number[0].name, 0]}
        elif field.type in _INTEGER_TYPES or field.type in _FLOATING:
            zero = {"enum": [0, "0"]}
        elif field.type == FieldDescriptor.TYPE_BOOL:
            zero = {"const": False}
        elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            zero = {"const": ""}
        else:
            return {}
        return {"not": zero} if negate else zero

    def _repeated(
        self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None
    ) -> JsonSchema:
        repeated = rules.repeated if rules is not None and rules.HasField("repeated") else None
        item_rules = repeated.items if repeated is not None and repeated.HasField("items") else None
        schema: JsonSchema = {"type": "array", "items": self._single(field, item_rules)}
        if rules is not None and rules.required:
            schema["minItems"] = 1
        if repeated is not None:
            if _has(repeated, "min_items"):
                schema["minItems"] = max(schema.get("minItems", 0), repeated.min_items)
            if _has(repeated, "max_items"):
                schema["maxItems"] = repeated.max_items
            if repeated.unique:
                schema["uniqueItems"] = True
        return schema

    def _map(self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None) -> JsonSchema:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        map_rules = rules.map if rules is not None and rules.HasField("map") else None
        key_rules = map_rules.keys if map_rules is not None and map_rules.HasField("keys") else None
        value_rules = (
            map_rules.values if map_rules is not None and map_rules.HasField("values") else None
        )
        schema: JsonSchema = {
            "type": "object",
            "additionalProperties": self._single(value_field, value_rules),
        }
        # Map keys are always JSON strings, whatever their proto type.
        if key_field.type == FieldDescriptor.TYPE_BOOL:
            schema["propertyNames"] = {"enum": ["true", "false"]}
        elif key_field.type in _INTEGER_TYPES:
            unsigned = key_field.type in _UNSIGNED
            schema["propertyNames"] = {"pattern": _UNSIGNED_DIGITS if unsigned else _SIGNED_DIGITS}
        elif key_rules is not None and key_rules.HasField("string"):
            names = self._string_rules({"type": "string"}, key_rules.string)
            names.pop("type")
            if names:
                schema["propertyNames"] = names
        if rules is not None and rules.required:
            schema["minProperties"] = 1
        if map_rules is not None:
            if _has(map_rules, "min_pairs"):
                schema["minProperties"] = max(schema.get("minProperties", 0), map_rules.min_pairs)
            if _has(map_rules, "max_pairs"):
                schema["maxProperties"] = map_rules.max_pairs
        return schema

    def _single(self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None) -> JsonSchema:
        """One value of the field (an element, for a repeated field), with its rules."""
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            return self._message_value(field.message_type, rules)
        if field.type == FieldDescriptor.TYPE_ENUM:
            ref = self.enum(field.enum_type)
            enum_rules = rules.enum if rules is not None and rules.HasField("enum") else None
            if enum_rules is None or field.enum_type.full_name == "google.protobuf.NullValue":
                return ref
            return self._enum_rules(field.enum_type, enum_rules)
        schema = _scalar_schema(field.type)
        kind = _RULES_OF_TYPE[field.type]
        if rules is None or not rules.HasField(kind):  # type: ignore[arg-type]
            return schema
        typed_rules = getattr(rules, kind)
        if field.type == FieldDescriptor.TYPE_STRING:
            return self._string_rules(schema, typed_rules)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return {**schema, "const": typed_rules.const} if _has(typed_rules, "const") else schema
        if field.type == FieldDescriptor.TYPE_BYTES:
            return _describe(schema, [f"Rules (on the decoded bytes): `{typed_rules}`".strip()])
        return _numeric_rules(field.type, typed_rules)

    def _message_value(
        self, descriptor: Descriptor, rules: validate_pb2.FieldRules | None
    ) -> JsonSchema:
        ref = self.message(descriptor)
        if rules is None:
            return ref
        name = descriptor.full_name
        if name == "google.protobuf.FieldMask" and rules.HasField("field_mask"):
            return _field_mask_rules(rules.field_mask)
        if name == "google.protobuf.Duration" and rules.HasField("duration"):
            return {**ref, "description": f"Rules: `{_text(rules.duration)}`"}
        if name == "google.protobuf.Timestamp" and rules.HasField("timestamp"):
            return {**ref, "description": f"Rules: `{_text(rules.timestamp)}`"}
        if name == "google.protobuf.Any" and rules.HasField("any"):
            return {**ref, "description": f"Rules: `{_text(rules.any)}`"}
        wrapped = _WRAPPED_TYPES.get(name)
        if wrapped is not None:
            return self._single(descriptor.fields_by_name["value"], rules)
        return ref

    def _enum_rules(self, descriptor: EnumDescriptor, rules: validate_pb2.EnumRules) -> JsonSchema:
        values = list(descriptor.values)
        if _has(rules, "const"):
            values = [value for value in values if value.number == rules.const]
        if getattr(rules, "in"):
            allowed = set(getattr(rules, "in"))
            values = [value for value in values if value.number in allowed]
        if rules.not_in:
            barred = set(rules.not_in)
            values = [value for value in values if value.number not in barred]
        numbers = sorted({value.number for value in values})
        constrained = rules.defined_only or _has(rules, "const") or getattr(rules, "in")
        number: JsonSchema = (
            {"type": "integer", "enum": numbers}
            if constrained
            else {"type": "integer", "minimum": _INT32_MIN, "maximum": _INT32_MAX}
        )
        if not constrained and rules.not_in:
            number["not"] = {"enum": sorted(set(rules.not_in))}
        names = [value.name for value in values]
        return {
            "anyOf": [{"type": "string", "enum": names}, number],
            "description": f"A {descriptor.full_name} by name (or number).",
        }

    def _string_rules(self, schema: JsonSchema, rules: validate_pb2.StringRules) -> JsonSchema:
        schema = dict(schema)
        patterns: list[str] = []
        lines: list[str] = []
        if _has(rules, "const"):
            schema["const"] = rules.const
        if _has(rules, "len"):
            schema["minLength"] = schema["maxLength"] = rules.len
        if _has(rules, "min_len"):
            schema["minLength"] = rules.min_len
        if _has(rules, "max_len"):
            schema["maxLength"] = rules.max_len
        if _has(rules, "pattern"):
            patterns.append(rules.pattern)
        if _has(rules, "prefix"):
            patterns.append("^" + _pattern_literal(rules.prefix))
        if _has(rules, "suffix"):
            patterns.append(_pattern_literal(rules.suffix) + "$")
        if _has(rules, "contains"):
            patterns.append(_pattern_literal(rules.contains))
        if _has(rules, "not_contains"):
            schema["not"] = {"pattern": _pattern_literal(rules.not_contains)}
        if getattr(rules, "in"):
            schema["enum"] = list(getattr(rules, "in"))
        if rules.not_in:
            schema.setdefault("allOf", []).append({"not": {"enum": list(rules.not_in)}})
        for rule, json_format in _STRING_FORMATS.items():
            if _has(rules, rule) and getattr(rules, rule):
                schema["format"] = json_format
                schema["minLength"] = max(schema.get("minLength", 0), 1)
        for rule in ("len_bytes", "min_bytes", "max_bytes"):
            if _has(rules, rule):
                lines.append(f"`{rule}`: {getattr(rules, rule)} (UTF-8 bytes)")
        well_known = rules.WhichOneof("well_known")
        if well_known is not None and well_known not in _STRING_FORMATS:
            lines.append(f"Must be a valid `{well_known}`.")
        if patterns:
            schema["pattern"] = patterns[0]
            for pattern in patterns[1:]:
                schema.setdefault("allOf", []).append({"pattern": pattern})
        return _describe(schema, lines)


_WRAPPED_TYPES: Final = frozenset(name for name in _WELL_KNOWN if name.endswith("Value")) - {
    "google.protobuf.Value",
    "google.protobuf.ListValue",
}


def _text(rules: Message) -> str:
    return " ".join(str(rules).split())


def _numeric_rules(field_type: int, rules: Any) -> JsonSchema:
    """Range, ``const``, ``in`` and ``not_in`` rules of a number, on its JSON number form."""
    if field_type in _FLOATING:
        base = _float_schema(field_type == FieldDescriptor.TYPE_DOUBLE)
        number = dict(base["anyOf"][0])
    else:
        number = {
            "type": "integer",
            **dict(zip(("minimum", "maximum"), _integer_bounds(field_type), strict=True)),
        }
    low: tuple[str, float] | None = None
    high: tuple[str, float] | None = None
    if _has(rules, "gt"):
        low = ("exclusiveMinimum", rules.gt)
    if _has(rules, "gte"):
        low = ("minimum", rules.gte)
    if _has(rules, "lt"):
        high = ("exclusiveMaximum", rules.lt)
    if _has(rules, "lte"):
        high = ("maximum", rules.lte)
    if low is not None and high is not None and high[1] < low[1]:
        # An "exclusive range": the value lies outside [high, low].
        number["anyOf"] = [{low[0]: low[1]}, {high[0]: high[1]}]
    else:
        for bound in (low, high):
            if bound is not None:
                if bound[0].startswith("exclusive"):
                    number.pop(bound[0].replace("exclusiveM", "m"), None)
                number[bound[0]] = bound[1]
    if _has(rules, "const"):
        number["const"] = rules.const
    if getattr(rules, "in"):
        number["enum"] = list(getattr(rules, "in"))
    if rules.not_in:
        number["not"] = {"enum": list(rules.not_in)}
    special = field_type in _FLOATING and not (
        getattr(rules, "finite", False) or low or high or _has(rules, "const") or number.get("enum")
    )
    if field_type in _FLOATING:
        if special:
            return {"anyOf": [number, {"type": "string", "enum": list(_FLOAT_SPECIALS)}]}
        return number
    if field_type not in _SIXTY_FOUR_BIT:
        return number
    # The string form of a 64-bit integer: a pattern is all JSON Schema can say about it.
    outside = "anyOf" in number  # an exclusive range, below one bound or above the other
    non_negative = low is not None and not outside and low[1] >= 0
    positive = non_negative and low is not None and (low[1] >= 1 or low[0] == "exclusiveMinimum")
    digits = _SIGNED_DIGITS
    if positive:
        digits = _POSITIVE_DIGITS
    elif non_negative or field_type in _UNSIGNED:
        digits = _UNSIGNED_DIGITS
    text: JsonSchema = {"type": "string", "pattern": digits}
    if number.get("enum"):
        text["enum"] = [str(value) for value in number["enum"]]
    if "const" in number:
        text["const"] = str(number["const"])
    return {"anyOf": [text, number]}


def _field_mask_rules(rules: validate_pb2.FieldMaskRules) -> JsonSchema:
    schema: JsonSchema = {"type": "string"}
    lines: list[str] = []
    if _has(rules, "const"):
        schema["const"] = ",".join(_camel(path) for path in rules.const.paths)
    allowed = list(getattr(rules, "in"))
    if allowed:
        # Each path is one of the allowed paths or a sub-path of one.
        choice = "|".join(_pattern_literal(_camel(path)) for path in allowed)
        path = rf"({choice})(\.{_MASK_SEGMENT})*"
        schema["pattern"] = rf"^({path}(,{path})*)?$"
        lines.append(
            "Allowed paths (and their sub-paths): "
            + ", ".join(f"`{_camel(path)}`" for path in allowed)
        )
    if rules.not_in:
        lines.append(
            "Forbidden paths (and their sub-paths): "
            + ", ".join(f"`{_camel(path)}`" for path in rules.not_in)
        )
    schema["description"] = "Field paths in lowerCamelCase, separated by commas."
    return _describe(schema, lines)


def message_schemas(messages: Iterable[Descriptor], *, rules: bool = True) -> dict[str, JsonSchema]:
    """The schemas of ``messages`` and of every message and enum they reach, by full name.

    References between them point at ``#/components/schemas/<full name>``. With ``rules``
    false the schemas are the bare proto3 JSON mapping, without the protovalidate rules.
    """
    builder = _SchemaBuilder(rules=rules)
    for descriptor in messages:
        builder.message(descriptor)
    return dict(sorted(builder.schemas.items()))


def _summary(method: str) -> str:
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[0-9]+", method)
    text = " ".join(word if word.isupper() and len(word) > 1 else word.lower() for word in words)
    return text[:1].upper() + text[1:]


def _description(route: Route) -> str:
    if route.backend is None:
        lines = ["Answered by the gateway itself."]
    else:
        lines = [f"Forwarded to `{route.backend_path.lstrip('/')}` on the {route.backend} service."]
    lines.append(f"Requires the permission `{route.permission}`.")
    if route.read_only:
        lines.append("Has no side effects: the gateway retries it on transient failures.")
    if route.client_streaming:
        lines.append("Client stream: the body is a JSON array of request messages.")
    if route.server_streaming:
        lines.append(
            f"Server stream: the answer is `{NDJSON_MEDIA_TYPE}`, one response message per line."
        )
    return " ".join(lines)


def _operation(route: Route) -> JsonSchema:
    request = schema_ref(route.request_type.DESCRIPTOR.full_name)
    response = schema_ref(route.response_type.DESCRIPTOR.full_name)
    body: JsonSchema = {"type": "array", "items": request} if route.client_streaming else request
    media_type = NDJSON_MEDIA_TYPE if route.server_streaming else JSON_MEDIA_TYPE
    answer = "The response message" + (
        ": one JSON object per line, as the stream goes." if route.server_streaming else "."
    )
    responses: JsonSchema = {
        "200": {"description": answer, "content": {media_type: {"schema": response}}}
    }
    responses.update(
        {str(status): {"$ref": f"#/components/responses/{status}"} for status in ERROR_RESPONSES}
    )
    return {
        "operationId": f"{route.service}_{route.method}",
        "tags": [route.service],
        "summary": _summary(route.method),
        "description": _description(route),
        "requestBody": {
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": body}},
        },
        "responses": responses,
        "x-grpc-method": route.path,
        "x-permission": route.permission,
        "x-read-only": route.read_only,
    }


def _error_schemas() -> dict[str, JsonSchema]:
    details = message_schemas(message.DESCRIPTOR for message in _ERROR_DETAIL_TYPES)
    known = [
        {
            "if": {
                "properties": {"@type": {"const": _TYPE_URL_PREFIX + message.DESCRIPTOR.full_name}},
                "required": ["@type"],
            },
            "then": {
                "properties": {
                    "@type": {"type": "string"},
                    **details[message.DESCRIPTOR.full_name]["properties"],
                },
                "additionalProperties": False,
            },
        }
        for message in _ERROR_DETAIL_TYPES
    ]
    codes = [name for name in code_pb2.Code.keys() if name != "OK"]
    return {
        **details,
        _ERROR_SCHEMA: {
            "title": "Error",
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": codes, "description": "The gRPC status code."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": schema_ref(_ERROR_DETAIL_SCHEMA)},
            },
            "description": "A failed call: its gRPC status code, message and status details.",
        },
        _ERROR_DETAIL_SCHEMA: {
            "title": "ErrorDetail",
            "type": "object",
            "required": ["@type"],
            "properties": {"@type": {"type": "string"}},
            "allOf": known,
            "description": "A status detail as a google.protobuf.Any: `@type` and its fields ("
            + ", ".join(message.DESCRIPTOR.full_name for message in _ERROR_DETAIL_TYPES)
            + ", ...).",
        },
    }


def _error_responses() -> dict[str, JsonSchema]:
    responses: dict[str, JsonSchema] = {}
    for status, (description, codes) in ERROR_RESPONSES.items():
        text = description + (f" Codes: {', '.join(codes)}." if codes else "")
        response: JsonSchema = {
            "description": text,
            "content": {JSON_MEDIA_TYPE: {"schema": schema_ref(_ERROR_SCHEMA)}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before calling again.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        responses[str(status)] = response
    return responses


def _meta_paths() -> dict[str, JsonSchema]:
    def get(operation_id: str, summary: str, answer: str, media_type: str) -> JsonSchema:
        return {
            "get": {
                "operationId": operation_id,
                "tags": ["Meta"],
                "summary": summary,
                "security": [],
                "responses": {"200": {"description": answer, "content": {media_type: {}}}},
            }
        }

    ready = get("Meta_Readiness", "Readiness", "Ready to serve.", JSON_MEDIA_TYPE)
    ready["get"]["responses"]["503"] = {"description": "Not ready (yet, or any more)."}
    return {
        "/openapi.json": get("Meta_OpenApi", "This document", "The document.", JSON_MEDIA_TYPE),
        "/healthz": get("Meta_Liveness", "Liveness", "The process is alive.", JSON_MEDIA_TYPE),
        "/readyz": ready,
        "/dashboard": get("Meta_Dashboard", "The live KPI dashboard", "The page.", "text/html"),
    }


def _default_version() -> str:
    try:
        return metadata.version("crm-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - only outside an install
        return "0.0.0"


def openapi_document(
    routes: Sequence[Route] = ROUTES,
    *,
    title: str = "CRM API",
    version: str | None = None,
    server_url: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON/HTTP API of ``routes``.

    Args:
        routes: The operations to document (the whole route table by default).
        title: ``info.title``.
        version: ``info.version``; the installed gateway's version by default.
        server_url: The base URL clients call, listed under ``servers``; none by default
            (the document's own origin, per OpenAPI).

    Returns:
        The document as JSON-compatible dicts and lists (a fresh copy on each call).
    """
    messages: list[Descriptor] = []
    for route in routes:
        messages.extend((route.request_type.DESCRIPTOR, route.response_type.DESCRIPTOR))
    schemas = {**message_schemas(messages), **_error_schemas()}
    tags: dict[str, JsonSchema] = {}
    paths: dict[str, JsonSchema] = {}
    for route in routes:
        if route.service not in tags:
            where = (
                "Answered by the gateway."
                if route.backend is None
                else f"The public operations of `{route.backend_path.lstrip('/').split('/')[0]}`."
            )
            tags[route.service] = {"name": route.service, "description": where}
        paths[route.http_path] = {"post": _operation(route)}
    paths.update(_meta_paths())
    tags["Meta"] = {"name": "Meta", "description": "Health, readiness, this document."}
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version if version is not None else _default_version(),
            "description": (
                "Every operation is `POST /v1/<Service>/<Method>` with the request message as its "
                "JSON body (the proto3 JSON mapping: lowerCamelCase field names, the original "
                "names are accepted too; unknown fields are rejected) and answers the response "
                "message the same way. Authenticate with `Authorization: Bearer <JWT>` or "
                "`X-API-Key: <key>`; the tenant comes from the credential. Errors answer "
                "`{code, message, details}` with the gRPC status code's name."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": list(tags.values()),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": _error_responses(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKey": []}],
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    return document
