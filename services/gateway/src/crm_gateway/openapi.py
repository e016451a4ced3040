"""The OpenAPI 3.1 document of the JSON/HTTP API, generated from the route table.

Nothing here is written per operation: every route of :data:`crm_gateway.routes.ROUTES` becomes
one ``POST /v1/<Service>/<Method>`` operation, and every message it reaches becomes one schema
under ``components/schemas``, named by its full proto name (``crm.contacts.v1.Contact``). An
operation that answers a file (``Route.document_media_type``) also has a ``GET`` on the same
path, its request's scalar fields as query parameters, answering the file itself.

The schemas follow the proto3 JSON mapping as ``google.protobuf.json_format`` speaks it
(lowerCamelCase names, enums by name, 64-bit integers as strings, the well-known types in their
special forms) and add the protovalidate (``buf.validate``) rules JSON Schema can express; the
rules it cannot express (CEL expressions, byte lengths, duration bounds...) are described in
words. They describe what the gateway *answers* exactly, and what it *accepts* less a few
spellings the parser tolerates too (original proto field names, 32-bit integers and floats as
strings, enum numbers as strings, ``null`` for an unset field).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any, Final

from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2

from crm_gateway.routes import ROUTES, Route

__all__ = [
    "ERROR_RESPONSES",
    "JSON_MEDIA_TYPE",
    "NDJSON_MEDIA_TYPE",
    "OPENAPI_VERSION",
    "JsonSchema",
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
_STREAM_ERROR_SCHEMA: Final = "StreamError"
_TYPE_URL_PREFIX: Final = "type.googleapis.com/"

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_INTEGER_BOUNDS: Final[Mapping[int, tuple[int, int]]] = {
    FieldDescriptor.CPPTYPE_INT32: (_INT32_MIN, _INT32_MAX),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_SIXTY_FOUR_BIT: Final = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})
_FLOAT_BOUNDS: Final[Mapping[int, float]] = {
    # The largest float32 json_format reads (it writes that one as 3.4028235e+38, which it
    # refuses to read back: the document takes the reader's side).
    FieldDescriptor.CPPTYPE_FLOAT: 3.4028234663852886e38,
    FieldDescriptor.CPPTYPE_DOUBLE: 1.7976931348623157e308,
}
_FLOAT_SPECIALS: Final = ("NaN", "Infinity", "-Infinity")
_DURATION_SECONDS_MAX: Final = 315_576_000_000

# Timestamps as json_format writes them (in UTC, with "Z") and reads them ("T" and "Z" upper-case,
# no leap second, at most nine fractional digits, years 1 to 9999 in UTC: an offset is only
# documented for the years 2 to 9998, whatever it is); `format` adds that the date exists.
_TIME_OF_DAY: Final = (
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?"
)
_TIMESTAMP_PATTERN: Final = (
    rf"^((0001|9999){_TIME_OF_DAY}Z|"
    r"(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    rf"{_TIME_OF_DAY}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
)
# Bytes: base64, standard or URL-safe alphabet, padding optional.
_BASE64_PATTERN: Final = r"^([A-Za-z0-9+/_-]{4})*([A-Za-z0-9+/_-]{2}(==)?|[A-Za-z0-9+/_-]{3}=?)?$"
# FieldMask paths as JSON spells them: lowerCamelCase segments joined by "." (and paths by ",").
_MASK_SEGMENT: Final = r"[A-Za-z0-9]+"
_MASK_PATH: Final = rf"({_MASK_SEGMENT}(\.{_MASK_SEGMENT})*|\*)"

# The member of buf.validate.FieldRules that holds each scalar type's rules.
_RULES_OF_TYPE: Final[Mapping[int, str]] = {
    getattr(FieldDescriptor, f"TYPE_{name.upper()}"): name
    for name in (
        "double",
        "float",
        "int32",
        "int64",
        "uint32",
        "uint64",
        "sint32",
        "sint64",
        "fixed32",
        "fixed64",
        "sfixed32",
        "sfixed64",
        "bool",
        "string",
        "bytes",
        "enum",
    )
}

# buf.validate.StringRules formats that JSON Schema knows by (nearly) the same name.
_STRING_FORMATS: Final[Mapping[str, str]] = {
    "email": "email",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "uri": "uri",
    "uri_ref": "uri-reference",
    "uuid": "uuid",
}


def schema_ref(name: str) -> JsonSchema:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": _REF_PREFIX + name}


def _pattern_literal(text: str) -> str:
    """An ECMA-262 regular expression matching ``text`` literally."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def _camel(path: str) -> str:
    """A field path as JSON spells it (json_format's snake_case to lowerCamelCase)."""
    return re.sub(r"_([a-z0-9])", lambda match: match.group(1).upper(), path)


def _has(rules: Message, name: str) -> bool:
    """Whether ``rules`` sets the member ``name`` (also for proto2 fields and repeated ones)."""
    return any(descriptor.name == name for descriptor, _ in rules.ListFields())


def _text(rules: Message) -> str:
    return " ".join(str(rules).split())


def _describe(schema: JsonSchema, lines: Sequence[str]) -> JsonSchema:
    """``schema`` with ``lines`` appended to its description as a list."""
    if lines:
        text = "\n".join(f"- {line}" for line in lines)
        schema["description"] = (
            f"{schema['description']}\n\n{text}" if "description" in schema else text
        )
    return schema


def _cel(rules: Iterable[validate_pb2.Rule], expressions: Iterable[str]) -> list[str]:
    lines = [f"{rule.message or rule.expression} (`{rule.id}`)" for rule in rules]
    lines.extend(f"`{expression}`" for expression in expressions)
    return lines


def _descriptor(message: type[Message]) -> Descriptor:
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]  # upb's is one
    return descriptor


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _field_rules(field: FieldDescriptor) -> validate_pb2.FieldRules | None:
    options = field.GetOptions()
    if not options.HasExtension(validate_pb2.field):
        return None
    rules: validate_pb2.FieldRules = options.Extensions[validate_pb2.field]
    return None if rules.ignore == validate_pb2.IGNORE_ALWAYS else rules


def _same_length_alternatives(first: str, last: str) -> list[str]:
    """Regular expressions matching the decimals from ``first`` to ``last`` (same length)."""
    if not first:
        return [""]
    if first[0] == last[0]:
        return [first[0] + rest for rest in _same_length_alternatives(first[1:], last[1:])]
    width = len(first) - 1
    alternatives: list[str] = []
    low_digit, high_digit = int(first[0]), int(last[0])
    if first[1:] != "0" * width:  # the numbers from `first` up to its leading digit's end
        alternatives += [
            first[0] + rest for rest in _same_length_alternatives(first[1:], "9" * width)
        ]
        low_digit += 1
    if last[1:] != "9" * width:
        high_digit -= 1
    if low_digit <= high_digit:  # whole leading digits
        digit = str(low_digit) if low_digit == high_digit else f"[{low_digit}-{high_digit}]"
        alternatives.append(
            digit + ("[0-9]" if width == 1 else f"[0-9]{{{width}}}" if width else "")
        )
    if last[1:] != "9" * width:  # the numbers from `last`'s leading digit's start up to it
        alternatives += [
            last[0] + rest for rest in _same_length_alternatives("0" * width, last[1:])
        ]
    return alternatives


def _natural_alternatives(first: int, last: int) -> list[str]:
    """Regular expressions matching the decimals (no leading zeros) from ``first`` to ``last``."""
    alternatives: list[str] = []
    whole: list[int] = []  # lengths (2+) whose every number is in the range: one alternative
    for length in range(len(str(first)), len(str(last)) + 1):
        low = max(first, 10 ** (length - 1) if length > 1 else 0)
        high = min(last, 10**length - 1)
        if length > 1 and (low, high) == (10 ** (length - 1), 10**length - 1):
            whole.append(length - 1)
        elif low <= high:
            alternatives += _same_length_alternatives(str(low), str(high))
    if whole:
        counts = str(whole[0]) if len(whole) == 1 else f"{whole[0]},{whole[-1]}"
        alternatives.append(f"[1-9][0-9]{{{counts}}}")
    return alternatives


def _decimal_pattern(first: int, last: int) -> str:
    """A pattern of the integers from ``first`` to ``last`` written in decimal, as json_format
    writes them (no leading zeros, no plus sign)."""
    alternatives: list[str] = []
    if first < 0:
        negative = _natural_alternatives(max(1, -last), -first)
        alternatives.append(
            "-(" + "|".join(negative) + ")" if len(negative) > 1 else "-" + negative[0]
        )
    if last >= 0:
        alternatives += _natural_alternatives(max(0, first), last)
    return "^(" + "|".join(alternatives) + ")$"


def _duration_pattern() -> str:
    """Durations: seconds (at most about 10,000 years, either way) with up to nine fractional
    digits and the suffix "s" ("1.5s", "-0.250s")."""
    seconds = "|".join(_natural_alternatives(0, _DURATION_SECONDS_MAX))
    return rf"^-?({seconds})(\.[0-9]{{1,9}})?s$"


# The well-known types JSON spells in their own ways (the wrappers aside: see _WRAPPERS).
_WELL_KNOWN: Final[Mapping[str, JsonSchema]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "pattern": _TIMESTAMP_PATTERN,
        "description": "An instant as an RFC 3339 date-time (written in UTC, with `Z`).",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": _duration_pattern(),
        "description": 'A signed length of time in seconds with the suffix "s", e.g. "1.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "pattern": rf"^({_MASK_PATH}(,{_MASK_PATH})*)?$",
        "description": "Field paths in lowerCamelCase, separated by commas.",
    },
    "google.protobuf.Struct": {"type": "object", "description": "Any JSON object."},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "description": "Any JSON array."},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string", "description": "The type URL of the value."}},
        "description": "A message of any type: `@type` and the message's own fields.",
    },
}
_WRAPPERS: Final = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)

ERROR_RESPONSES: Final[Mapping[int, tuple[str, tuple[str, ...]]]] = {
    400: (
        "The request is malformed, or a field breaks its rules.",
        ("INVALID_ARGUMENT", "OUT_OF_RANGE"),
    ),
    401: ("No credential, or one that is invalid or expired.", ("UNAUTHENTICATED",)),
    403: ("The credential's role may not call this operation.", ("PERMISSION_DENIED",)),
    404: ("The resource does not exist (in the caller's tenant).", ("NOT_FOUND",)),
    409: (
        "The resource exists already, or a concurrent change came first (version mismatch).",
        ("ALREADY_EXISTS", "ABORTED"),
    ),
    412: ("The resource is not in a state that allows the operation.", ("FAILED_PRECONDITION",)),
    413: ("The request body is larger than the gateway accepts.", ("RESOURCE_EXHAUSTED",)),
    415: ("The request body is not `application/json`.", ("INVALID_ARGUMENT",)),
    429: (
        "The credential's rate limit is spent; call again after `Retry-After` seconds.",
        ("RESOURCE_EXHAUSTED",),
    ),
    503: ("The backend is unavailable (down, or its circuit open); retry later.", ("UNAVAILABLE",)),
    504: ("The backend did not answer within the deadline.", ("DEADLINE_EXCEEDED",)),
}
"""The error statuses every operation documents: (description, the gRPC codes behind them)."""

# The status details the gateway and the backends put in errors, documented by name.
_ERROR_DETAIL_TYPES: Final[tuple[type[Message], ...]] = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.ResourceInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.QuotaFailure,
    error_details_pb2.RequestInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
    error_details_pb2.DebugInfo,
)


def _float_schema(cpp_type: int) -> JsonSchema:
    limit = _FLOAT_BOUNDS[cpp_type]
    return {
        "anyOf": [
            {"type": "number", "minimum": -limit, "maximum": limit},
            {"type": "string", "enum": list(_FLOAT_SPECIALS)},
        ]
    }


def _integer_schema(cpp_type: int) -> JsonSchema:
    low, high = _INTEGER_BOUNDS[cpp_type]
    number: JsonSchema = {"type": "integer", "minimum": low, "maximum": high}
    if cpp_type not in _SIXTY_FOUR_BIT:
        return number
    # 64-bit integers are written as decimal strings (JavaScript numbers lose precision past
    # 2**53) and read as either.
    return {"anyOf": [{"type": "string", "pattern": _decimal_pattern(low, high)}, number]}


def _scalar_schema(field: FieldDescriptor) -> JsonSchema:
    """The JSON form of a scalar (not enum, not message) field, without rules."""
    cpp_type = field.cpp_type
    if cpp_type in _FLOAT_BOUNDS:
        return _float_schema(cpp_type)
    if cpp_type in _INTEGER_BOUNDS:
        return _integer_schema(cpp_type)
    if cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return {"type": "boolean"}
    if field.type == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
    return {"type": "string"}


def _numeric_rules(field: FieldDescriptor, rules: Any) -> JsonSchema:
    """A number field's JSON forms under its range, ``const``, ``in`` and ``not_in`` rules."""
    cpp_type = field.cpp_type
    floating = cpp_type in _FLOAT_BOUNDS
    number: JsonSchema
    if floating:
        number = {"type": "number", "minimum": -_FLOAT_BOUNDS[cpp_type]}
        number["maximum"] = _FLOAT_BOUNDS[cpp_type]
    else:
        low_bound, high_bound = _INTEGER_BOUNDS[cpp_type]
        number = {"type": "integer", "minimum": low_bound, "maximum": high_bound}
    low = ("exclusiveMinimum", rules.gt) if _has(rules, "gt") else None
    low = ("minimum", rules.gte) if _has(rules, "gte") else low
    high = ("exclusiveMaximum", rules.lt) if _has(rules, "lt") else None
    high = ("maximum", rules.lte) if _has(rules, "lte") else high
    outside = low is not None and high is not None and high[1] < low[1]
    if outside and low is not None and high is not None:
        # An exclusive range: the value lies above the lower bound or below the upper one.
        number["anyOf"] = [{low[0]: low[1]}, {high[0]: high[1]}]
    else:
        for keyword, value in (bound for bound in (low, high) if bound is not None):
            if keyword.startswith("exclusive"):
                number.pop(keyword.replace("exclusiveM", "m"))
            number[keyword] = value
    if _has(rules, "const"):
        number["const"] = rules.const
    if getattr(rules, "in"):
        number["enum"] = list(getattr(rules, "in"))
    if rules.not_in:
        number["not"] = {"enum": list(rules.not_in)}
    if floating:
        # NaN and the infinities fail every range (and are refused by `finite`).
        if getattr(rules, "finite", False) or low or high or "const" in number or "enum" in number:
            return number
        return {"anyOf": [number, {"type": "string", "enum": list(_FLOAT_SPECIALS)}]}
    if cpp_type not in _SIXTY_FOUR_BIT:
        return number
    # The string form of a 64-bit integer: digits, within the bounds (but for an exclusive
    # range, which a pattern would not say shortly, within the type's bounds).
    first, last = _INTEGER_BOUNDS[cpp_type]
    if not outside:
        if low is not None:
            first = max(first, int(low[1]) + (low[0] == "exclusiveMinimum"))
        if high is not None:
            last = min(last, int(high[1]) - (high[0] == "exclusiveMaximum"))
    digits = _decimal_pattern(first, last)
    text: JsonSchema = {"type": "string", "pattern": digits}
    if "enum" in number:
        text["enum"] = [str(value) for value in number["enum"]]
    if "const" in number:
        text["const"] = str(number["const"])
    return {"anyOf": [text, number]}


def _string_rules(rules: validate_pb2.StringRules) -> JsonSchema:
    """A string field's JSON form under its rules."""
    schema: JsonSchema = {"type": "string"}
    patterns: list[str] = []
    extra: list[JsonSchema] = []
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
        extra.append({"not": {"pattern": _pattern_literal(rules.not_contains)}})
    if getattr(rules, "in"):
        schema["enum"] = list(getattr(rules, "in"))
    if rules.not_in:
        extra.append({"not": {"enum": list(rules.not_in)}})
    well_known = rules.WhichOneof("well_known")
    if well_known is not None and well_known in _STRING_FORMATS:
        if getattr(rules, well_known):
            schema["format"] = _STRING_FORMATS[well_known]
            schema["minLength"] = max(schema.get("minLength", 0), 1)  # and not empty
    elif well_known is not None:
        lines.append(f"Must be a valid `{well_known}` (`{_text(rules)}`).")
    for rule in ("len_bytes", "min_bytes", "max_bytes"):
        if _has(rules, rule):
            lines.append(f"`{rule}`: {getattr(rules, rule)} (UTF-8 bytes)")
    if patterns:
        schema["pattern"] = patterns[0]
        extra.extend({"pattern": pattern} for pattern in patterns[1:])
    if extra:
        schema["allOf"] = extra
    return _describe(schema, lines)


def _field_mask_rules(rules: validate_pb2.FieldMaskRules) -> JsonSchema:
    """A FieldMask field's JSON form under its rules."""
    schema: JsonSchema = {"type": "string"}
    lines: list[str] = []
    if _has(rules, "const"):
        schema["const"] = ",".join(_camel(path) for path in rules.const.paths)
    allowed = [_camel(path) for path in getattr(rules, "in")]
    if allowed:
        # Every path is an allowed one or a sub-path of one.
        choice = "|".join(_pattern_literal(path) for path in allowed)
        path = rf"({choice})(\.{_MASK_SEGMENT})*"
        schema["pattern"] = rf"^({path}(,{path})*)?$"
        lines.append("Allowed paths (and their sub-paths): " + ", ".join(f"`{p}`" for p in allowed))
    else:
        schema["pattern"] = _WELL_KNOWN["google.protobuf.FieldMask"]["pattern"]
    if rules.not_in:
        barred = ", ".join(f"`{_camel(path)}`" for path in rules.not_in)
        lines.append(f"Forbidden paths (and their sub-paths): {barred}")
    schema["description"] = "Field paths in lowerCamelCase, separated by commas."
    return _describe(schema, lines)


def _zero(field: FieldDescriptor) -> JsonSchema:
    """The JSON forms of a field's zero value ({} for a message field: it has none)."""
    if field.is_repeated:
        return {"maxProperties": 0} if _is_map(field) else {"maxItems": 0}
    if field.enum_type is not None:
        return {"enum": [field.enum_type.values_by_number[0].name, 0]}
    if field.cpp_type in _INTEGER_BOUNDS or field.cpp_type in _FLOAT_BOUNDS:
        return {"enum": [0, "0"]}
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return {"const": False}
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return {"const": ""}
    return {}


class _SchemaBuilder:
    """Builds the component schemas of messages and enums on demand, each once."""

    def __init__(self, *, rules: bool) -> None:
        self.rules = rules
        self.schemas: dict[str, JsonSchema] = {}

    def message(self, descriptor: Descriptor) -> JsonSchema:
        """A reference to the message's schema, built (with what it reaches) when first met."""
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # a placeholder: the message may reach itself
            self.schemas[name] = self._message_schema(descriptor)
        return schema_ref(name)

    def enum(self, descriptor: EnumDescriptor) -> JsonSchema:
        """A reference to the enum's schema: a value's name, or any 32-bit number."""
        name = descriptor.full_name
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        if name not in self.schemas:
            self.schemas[name] = {
                "title": name,
                "anyOf": [
                    {"type": "string", "enum": [value.name for value in descriptor.values]},
                    {"type": "integer", "minimum": _INT32_MIN, "maximum": _INT32_MAX},
                ],
                "description": "A value by name (numbers are accepted, and unknown numbers "
                "written, too).",
            }
        return schema_ref(name)

    def _message_schema(self, descriptor: Descriptor) -> JsonSchema:
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return {"title": name, **_WELL_KNOWN[name]}
        if name in _WRAPPERS:
            return {"title": name, **_scalar_schema(descriptor.fields_by_name["value"])}
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for field in descriptor.fields:
            rules = _field_rules(field) if self.rules else None
            properties[field.json_name] = self._field(field, rules)
            if rules is not None and rules.required:
                required.append(field.json_name)
        schema: JsonSchema = {
            "title": name,
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        oneofs = [constraint for constraint in map(self._oneof, descriptor.oneofs) if constraint]
        if oneofs:
            schema["allOf"] = oneofs
        options = descriptor.GetOptions()
        if self.rules and options.HasExtension(validate_pb2.message):
            message_rules: validate_pb2.MessageRules = options.Extensions[validate_pb2.message]
            _describe(schema, _cel(message_rules.cel, message_rules.cel_expression))
        return schema

    def _oneof(self, oneof: OneofDescriptor) -> JsonSchema:
        """At most one member of a oneof is set (and, if the oneof is required, one is)."""
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
        required = self.rules and options.HasExtension(validate_pb2.oneof)
        if required and options.Extensions[validate_pb2.oneof].required:
            constraint["anyOf"] = [{"required": [name]} for name in names]
        return constraint

    def _field(self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None) -> JsonSchema:
        if _is_map(field):
            schema = self._map(field, rules)
        elif field.is_repeated:
            schema = self._repeated(field, rules)
        else:
            schema = self._single(field, rules)
            zero = _zero(field)
            if rules is not None and rules.required and not field.has_presence and zero:
                # A required field without presence must not hold its zero value.
                schema = {"allOf": [schema, {"not": zero}]}
        if rules is None:
            return schema
        lines = _cel(rules.cel, rules.cel_expression)
        if rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE and not field.has_presence:
            schema = {"anyOf": [_zero(field), schema]}
            lines.insert(0, "The zero value is exempt from the rules.")
        return _describe(schema, lines)

    def _repeated(
        self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None
    ) -> JsonSchema:
        repeated = rules.repeated if rules is not None and rules.HasField("repeated") else None
        items = repeated.items if repeated is not None and repeated.HasField("items") else None
        schema: JsonSchema = {"type": "array", "items": self._single(field, items)}
        if rules is not None and rules.required:
            schema["minItems"] = 1
        if repeated is not None:
            if _has(repeated, "min_items"):
                schema["minItems"] = max(schema.get("minItems", 0), repeated.min_items)
            if _has(repeated, "max_items"):
                schema["maxItems"] = repeated.max_items
            if repeated.unique and field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
                schema["uniqueItems"] = True
            elif repeated.unique:
                # An enum value (or a number) has several JSON spellings (a name or a number;
                # a number or a string): JSON's uniqueItems compares spellings, not values.
                return _describe(schema, ["The items must be unique (compared by value)."])
        return schema

    def _map(self, field: FieldDescriptor, rules: validate_pb2.FieldRules | None) -> JsonSchema:
        entry = field.message_type
        assert entry is not None
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        map_rules = rules.map if rules is not None and rules.HasField("map") else None
        keys = map_rules.keys if map_rules is not None and map_rules.HasField("keys") else None
        values = (
            map_rules.values if map_rules is not None and map_rules.HasField("values") else None
        )
        schema: JsonSchema = {"type": "object", "additionalProperties": self._single(value, values)}
        # Map keys are JSON strings, whatever their proto type.
        if key.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            schema["propertyNames"] = {"enum": ["true", "false"]}
        elif key.cpp_type in _INTEGER_BOUNDS:
            schema["propertyNames"] = {"pattern": _decimal_pattern(*_INTEGER_BOUNDS[key.cpp_type])}
        elif keys is not None and keys.HasField("string"):
            names = _string_rules(keys.string)
            del names["type"]
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
        """One value of the field (one element of a repeated field) under ``rules``."""
        if field.message_type is not None:
            return self._message_value(field.message_type, rules)
        if field.enum_type is not None:
            if rules is None or not rules.HasField("enum"):
                return self.enum(field.enum_type)
            return self._enum_rules(field.enum_type, rules.enum)
        kind = _RULES_OF_TYPE[field.type]
        if rules is None or not _has(rules, kind):
            return _scalar_schema(field)
        typed_rules = getattr(rules, kind)
        if field.type == FieldDescriptor.TYPE_STRING:
            return _string_rules(typed_rules)
        if field.type == FieldDescriptor.TYPE_BYTES:
            return _describe(_scalar_schema(field), [f"Rules: `{_text(typed_rules)}`"])
        if field.type == FieldDescriptor.TYPE_BOOL:
            const = {"const": typed_rules.const} if _has(typed_rules, "const") else {}
            return {**_scalar_schema(field), **const}
        return _numeric_rules(field, typed_rules)

    def _message_value(
        self, descriptor: Descriptor, rules: validate_pb2.FieldRules | None
    ) -> JsonSchema:
        ref = self.message(descriptor)
        name = descriptor.full_name
        if rules is None:
            return ref
        if name in _WRAPPERS:
            return self._single(descriptor.fields_by_name["value"], rules)
        if name == "google.protobuf.FieldMask" and rules.HasField("field_mask"):
            return _field_mask_rules(rules.field_mask)
        for kind in ("duration", "timestamp", "any"):
            if rules.HasField(kind):
                return {**ref, "description": f"Rules: `{_text(getattr(rules, kind))}`"}
        return ref

    def _enum_rules(self, descriptor: EnumDescriptor, rules: validate_pb2.EnumRules) -> JsonSchema:
        """An enum field's JSON forms (name or number) under its rules."""
        self.enum(descriptor)  # documented on its own too
        values = list(descriptor.values)
        if _has(rules, "const"):
            values = [value for value in values if value.number == rules.const]
        if getattr(rules, "in"):
            allowed = set(getattr(rules, "in"))
            values = [value for value in values if value.number in allowed]
        if rules.not_in:
            values = [value for value in values if value.number not in set(rules.not_in)]
        closed = rules.defined_only or _has(rules, "const") or bool(getattr(rules, "in"))
        number: JsonSchema = {"type": "integer"}
        if closed:
            number["enum"] = sorted({value.number for value in values})
        else:
            number.update(minimum=_INT32_MIN, maximum=_INT32_MAX)
            if rules.not_in:
                number["not"] = {"enum": sorted(set(rules.not_in))}
        return {
            "anyOf": [{"type": "string", "enum": [value.name for value in values]}, number],
            "description": f"A {descriptor.full_name} by name (or number).",
        }


def message_schemas(
    messages: Iterable[type[Message]], *, rules: bool = True
) -> dict[str, JsonSchema]:
    """The JSON Schemas of the ``messages`` types and of every message and enum they reach.

    Keyed by full proto name; references between them point at
    ``#/components/schemas/<full name>``. With ``rules`` false, the schemas are the bare proto3
    JSON mapping, without the protovalidate rules.
    """
    builder = _SchemaBuilder(rules=rules)
    for message in messages:
        builder.message(_descriptor(message))
    return copy.deepcopy(dict(sorted(builder.schemas.items())))  # no part shared with another


def _summary(method: str) -> str:
    """``"GetCustomer360"`` → ``"Get customer 360"``."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*|[0-9]+|[a-z]+", method)
    text = " ".join(word if len(word) > 1 and word.isupper() else word.lower() for word in words)
    return text[:1].upper() + text[1:]


def _description(route: Route) -> str:
    if route.backend is None:
        lines = ["Answered by the gateway itself."]
    else:
        lines = [f"Calls `{route.backend_path.lstrip('/')}` of the {route.backend} service."]
    lines.append(f"Needs the permission `{route.permission}`.")
    if route.read_only:
        lines.append("It has no side effects; the gateway retries it on transient failures.")
    if route.client_streaming:
        lines.append("The body is a JSON array of request messages (the client stream).")
    if route.server_streaming:
        lines.append(
            f"The answer is `{NDJSON_MEDIA_TYPE}`: one response message per line, as the "
            "stream goes."
        )
    return " ".join(lines)


def _operation(route: Route) -> JsonSchema:
    request = schema_ref(route.request_type.DESCRIPTOR.full_name)
    body: JsonSchema = {"type": "array", "items": request} if route.client_streaming else request
    reply = schema_ref(route.response_type.DESCRIPTOR.full_name)
    answer: JsonSchema = {
        "description": "The response message.",
        "content": {JSON_MEDIA_TYPE: {"schema": reply}},
    }
    if route.document_media_type:
        answer = {
            "description": "The response message; with `Accept: "
            f"{route.document_media_type}` the file itself (as a download).",
            "content": {
                JSON_MEDIA_TYPE: {"schema": reply},
                route.document_media_type: _file_schema(route),
            },
        }
    if route.server_streaming:
        # The schema of each line: a response message, or the error that ends the stream.
        line = {"anyOf": [reply, schema_ref(_STREAM_ERROR_SCHEMA)]}
        answer = {
            "description": "The response messages, one JSON object per line, as the stream goes; "
            "a failure after the first line ends the stream with an `error` line.",
            "content": {NDJSON_MEDIA_TYPE: {"schema": line}},
        }
    responses: JsonSchema = {"200": answer}
    for status in ERROR_RESPONSES:
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    return {
        "operationId": f"{route.service}_{route.method}",
        "tags": [route.service],
        "summary": _summary(route.method),
        "description": _description(route),
        "requestBody": {
            "required": True,
            "description": "The request message"
            + (
                "s, in the order the stream sends them."
                if route.client_streaming
                else " (an empty body is the empty message)."
            ),
            "content": {JSON_MEDIA_TYPE: {"schema": body}},
        },
        "responses": responses,
        "x-grpc-method": route.path,
        "x-permission": route.permission,
        "x-read-only": route.read_only,
    }


def _file_schema(route: Route) -> JsonSchema:
    return {"schema": {"type": "string", "contentMediaType": route.document_media_type}}


def _download_operation(route: Route, schemas: Mapping[str, JsonSchema]) -> JsonSchema:
    """``GET`` of a document-answering operation: the request's scalar fields as query
    parameters (their schemas as in the request message's), the file as the answer."""
    request = schemas[route.request_type.DESCRIPTOR.full_name]
    required = set(request.get("required", ()))
    parameters: list[JsonSchema] = []
    for field in route.request_type.DESCRIPTOR.fields:
        if field.message_type is not None or field.is_repeated:
            continue
        parameters.append(
            {
                "name": field.json_name,
                "in": "query",
                "required": field.json_name in required,
                "schema": copy.deepcopy(request["properties"][field.json_name]),
            }
        )
    responses: JsonSchema = {
        "200": {
            "description": "The file, as a download (`Content-Disposition: attachment`).",
            "content": {route.document_media_type: _file_schema(route)},
        }
    }
    for status in ERROR_RESPONSES:
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    return {
        "operationId": f"{route.service}_{route.method}_download",
        "tags": [route.service],
        "summary": _summary(route.method) + " (the file)",
        "description": _description(route)
        + " The request's fields are the query parameters; the answer is the file itself.",
        "parameters": parameters,
        "responses": responses,
        "x-grpc-method": route.path,
        "x-permission": route.permission,
        "x-read-only": route.read_only,
    }


def _error_schemas() -> dict[str, JsonSchema]:
    details = message_schemas(_ERROR_DETAIL_TYPES)
    known = [
        {
            "if": {
                "required": ["@type"],
                "properties": {
                    "@type": {"const": _TYPE_URL_PREFIX + _descriptor(message).full_name}
                },
            },
            "then": {
                "properties": {
                    "@type": {"type": "string"},
                    **details[_descriptor(message).full_name]["properties"],
                },
                "additionalProperties": False,
            },
        }
        for message in _ERROR_DETAIL_TYPES
    ]
    codes = [name for name in code_pb2.Code.keys() if name != "OK"]  # noqa: SIM118 (an enum)
    return {
        **details,
        _ERROR_SCHEMA: {
            "title": _ERROR_SCHEMA,
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": codes, "description": "The gRPC status code."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": schema_ref(_ERROR_DETAIL_SCHEMA)},
            },
            "description": "A failed call: its gRPC status code, message and status details.",
        },
        _STREAM_ERROR_SCHEMA: {
            "title": _STREAM_ERROR_SCHEMA,
            "type": "object",
            "required": ["error"],
            "properties": {"error": schema_ref(_ERROR_SCHEMA)},
            "additionalProperties": False,
            "description": "The last line of a server stream that failed after it began.",
        },
        _ERROR_DETAIL_SCHEMA: {
            "title": _ERROR_DETAIL_SCHEMA,
            "type": "object",
            "required": ["@type"],
            "properties": {"@type": {"type": "string"}},
            "allOf": known,
            "description": "A status detail as a google.protobuf.Any: `@type` and its fields, "
            "e.g. "
            + ", ".join(_descriptor(message).full_name for message in _ERROR_DETAIL_TYPES)
            + ".",
        },
    }


def _error_responses() -> dict[str, JsonSchema]:
    responses: dict[str, JsonSchema] = {}
    for status, (description, codes) in ERROR_RESPONSES.items():
        response: JsonSchema = {
            "description": description + (f" ({', '.join(codes)})" if codes else ""),
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
    """The plain GET endpoints beside the API (no credential needed)."""
    status: JsonSchema = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }

    def get(name: str, summary: str, responses: JsonSchema) -> JsonSchema:
        operation = {"operationId": f"Meta_{name}", "tags": ["Meta"], "summary": summary}
        return {"get": {**operation, "security": [], "responses": responses}}

    def answer(
        description: str, schema: JsonSchema, media_type: str = JSON_MEDIA_TYPE
    ) -> JsonSchema:
        return {"description": description, "content": {media_type: {"schema": schema}}}

    return {
        "/openapi.json": get(
            "OpenApi", "This document", {"200": answer("The document.", {"type": "object"})}
        ),
        "/healthz": get("Liveness", "Liveness", {"200": answer("The process is alive.", status)}),
        "/readyz": get(
            "Readiness",
            "Readiness: every backend answers",
            {
                "200": answer("Ready to serve, with details.", status),
                "503": answer("Not ready (yet, or any more), with details.", status),
            },
        ),
        "/dashboard": get(
            "Dashboard",
            "The live KPI dashboard (it asks for a credential itself)",
            {
                "200": answer("The page.", {"type": "string"}, "text/html"),
                "404": answer("The dashboard is not installed.", schema_ref(_ERROR_SCHEMA)),
            },
        ),
    }


def _installed_version() -> str:
    try:
        return metadata.version("crm-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - only outside an installation
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
        server_url: The base URL clients call, listed under ``servers``; by default none is
            listed (clients call the document's own origin).

    Returns:
        The document, as fresh JSON-compatible dicts and lists.
    """
    messages: list[type[Message]] = []
    tags: dict[str, JsonSchema] = {}
    paths: dict[str, JsonSchema] = {}
    for route in routes:
        messages += [route.request_type, route.response_type]
        if route.service not in tags:
            backend_service = route.backend_path.lstrip("/").split("/")[0]
            tags[route.service] = {
                "name": route.service,
                "description": f"The public operations of `{backend_service}`."
                if route.backend is not None
                else "Answered by the gateway.",
            }
        paths[route.http_path] = {"post": _operation(route)}
    schemas = message_schemas(messages)
    for route in routes:
        if route.document_media_type:
            paths[route.http_path]["get"] = _download_operation(route, schemas)
    paths.update(_meta_paths())
    tags["Meta"] = {"name": "Meta", "description": "Health, readiness and this document."}
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version if version is not None else _installed_version(),
            "summary": "The one public API of the CRM, over JSON/HTTP.",
            "description": (
                "Every operation is `POST /v1/<Service>/<Method>` with the request message as "
                "its JSON body and the response message as its answer, in the proto3 JSON "
                "mapping (lowerCamelCase field names; the original names are accepted too; "
                "unknown fields are refused). Authenticate with `Authorization: Bearer <JWT>` "
                "or `X-API-Key: <key>`: the tenant comes from the credential. A failed call "
                "answers `{code, message, details}`, with the gRPC status code's name."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": list(tags.values()),
        "paths": paths,
        "components": {
            "schemas": {**schemas, **_error_schemas()},
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
    return copy.deepcopy(document)  # no part shared with another call's, or within
