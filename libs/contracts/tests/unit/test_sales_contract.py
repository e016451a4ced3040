"""The crm.sales.v1 request rules: what the proto refuses before a handler runs (rule id and
field path, as the services report them), and what it must let through to the server's checks
(e.g. a masked update that leaves other fields empty)."""

from __future__ import annotations

import protovalidate
import pytest
from buf.validate import validate_pb2
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from crm.sales.v1 import sales_pb2 as pb


def _path(violation: validate_pb2.Violation) -> str:
    parts = []
    for element in violation.field.elements:
        index = f"[{element.index}]" if element.WhichOneof("subscript") == "index" else ""
        parts.append(element.field_name + index)
    return ".".join(parts)


def violations(message: Message) -> list[tuple[str, str]]:
    """(field path, rule id) of every violation."""
    found = []
    for violation in protovalidate.collect_violations(message):
        proto = validate_pb2.Violation.FromString(violation.proto.to_binary())
        found.append((_path(proto), proto.rule_id))
    return sorted(found)


def _opportunity(**fields: object) -> pb.CreateOpportunityRequest:
    values: dict[str, object] = {
        "name": "200 seats",
        "pipeline_id": "p1",
        "amount_minor": 1_250_000,
        "currency": "EUR",
        "expected_close_date": "2026-06-30",
        "buying_centre": [
            pb.BuyingCentreMember(contact_id="c1", roles=[pb.BUYING_ROLE_DECISION_MAKER])
        ],
        "line_items": [pb.LineItem(product_id="sku-1", quantity=2, unit_price_minor=625_000)],
    }
    values.update(fields)
    return pb.CreateOpportunityRequest(opportunity=pb.Opportunity(**values))  # type: ignore[arg-type]


def test_a_complete_opportunity_create_is_valid() -> None:
    assert violations(_opportunity()) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"amount_minor": -1}, ("opportunity.amount_minor", "int64.gte")),
        ({"currency": "eur"}, ("opportunity.currency", "string.pattern")),
        (
            {"expected_close_date": "30.06.2026"},
            ("opportunity.expected_close_date", "string.pattern"),
        ),
        ({"name": " "}, ("opportunity", "opportunity.name_required")),
        ({"pipeline_id": ""}, ("opportunity", "opportunity.pipeline_required")),
        (
            {"buying_centre": [pb.BuyingCentreMember(contact_id="c1", roles=[0])]},
            ("opportunity.buying_centre[0].roles[0]", "enum.not_in"),
        ),
        (
            {"line_items": [pb.LineItem(product_id="sku", quantity=0)]},
            ("opportunity.line_items[0].quantity", "int64.gte_lte"),
        ),
    ],
)
def test_opportunity_create_rules(fields: dict[str, object], expected: tuple[str, str]) -> None:
    assert expected in violations(_opportunity(**fields))


def test_a_masked_update_with_the_other_fields_empty_is_valid() -> None:
    update = pb.UpdateOpportunityRequest(
        opportunity=pb.Opportunity(id="o1", amount_minor=5),
        update_mask=field_mask_pb2.FieldMask(paths=["amount_minor"]),
        expected_version=2,
    )
    assert violations(update) == []
    renamed = pb.UpdatePipelineRequest(
        pipeline=pb.Pipeline(id="p1", name="Renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )
    assert violations(renamed) == []


def test_the_stage_is_not_in_the_update_mask() -> None:
    update = pb.UpdateOpportunityRequest(
        opportunity=pb.Opportunity(id="o1", stage_id="won"),
        update_mask=field_mask_pb2.FieldMask(paths=["stage_id"]),
    )
    assert ("update_mask", "field_mask.in") in violations(update)


def test_stage_rules() -> None:
    request = pb.CreatePipelineRequest(
        pipeline=pb.Pipeline(
            name="P",
            stages=[
                pb.Stage(id="Qualify", name="Q", win_probability_percent=101),
            ],
        )
    )
    assert violations(request) == [
        ("pipeline.stages[0].id", "string.pattern"),
        ("pipeline.stages[0].kind", "required"),
        ("pipeline.stages[0].win_probability_percent", "int32.gte_lte"),
    ]


def test_a_loss_and_a_disqualification_need_a_reason() -> None:
    assert ("reason", "string.min_len") in violations(pb.LoseOpportunityRequest(id="o1"))
    assert ("reason", "string.min_len") in violations(pb.DisqualifyLeadRequest(id="l1"))


def test_a_conversion_needs_the_lead_and_an_opportunity_with_name_and_pipeline() -> None:
    assert violations(pb.ConvertLeadRequest()) == [("id", "required"), ("opportunity", "required")]
    request = pb.ConvertLeadRequest(id="l1", opportunity=pb.Opportunity(currency="EUR"))
    assert violations(request) == [
        ("opportunity", "opportunity.name_required"),
        ("opportunity", "opportunity.pipeline_required"),
    ]


def test_a_lead_needs_someone_and_a_source() -> None:
    assert violations(pb.CreateLeadRequest(lead=pb.Lead())) == [
        ("lead", "lead.someone_required"),
        ("lead.source", "required"),
    ]
    assert (
        violations(
            pb.CreateLeadRequest(lead=pb.Lead(email="a@example.com", source=pb.LEAD_SOURCE_IMPORT))
        )
        == []
    )


def test_product_and_quote_creates_leave_the_amount_checks_to_the_server() -> None:
    # Negative prices, zero quantities and odd currencies are the server's to name (with the
    # domain's field paths), so the proto lets them through.
    product = pb.CreateProductRequest(
        product=pb.Product(
            sku="S1", name="Seat", prices=[pb.Price(currency="ZZZ", unit_price_minor=-1)]
        )
    )
    assert violations(product) == []
    quote = pb.CreateQuoteRequest(
        quote=pb.Quote(
            opportunity_id="o1",
            currency="EUR",
            lines=[pb.QuoteLine(product_id="p1", quantity=0, discount_basis_points=-1)],
        )
    )
    assert violations(quote) == []


def test_a_quote_line_tells_an_unset_unit_price_from_zero() -> None:
    line = pb.QuoteLine(product_id="p1", quantity=1)
    assert not line.HasField("unit_price_minor")
    line.unit_price_minor = 0
    assert line.HasField("unit_price_minor")


def test_quote_and_product_update_masks_name_only_their_updatable_fields() -> None:
    quote = pb.UpdateQuoteRequest(
        quote=pb.Quote(id="q1"), update_mask=field_mask_pb2.FieldMask(paths=["status"])
    )
    assert ("update_mask", "field_mask.in") in violations(quote)
    product = pb.UpdateProductRequest(
        product=pb.Product(id="p1"), update_mask=field_mask_pb2.FieldMask(paths=["sku"])
    )
    assert ("update_mask", "field_mask.in") in violations(product)
    assert ("product", "product.id_required") in violations(
        pb.UpdateProductRequest(
            product=pb.Product(name="x"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
        )
    )
    ok = pb.UpdateQuoteRequest(
        quote=pb.Quote(id="q1"),
        update_mask=field_mask_pb2.FieldMask(paths=["valid_until", "lines"]),
        expected_version=3,
    )
    assert violations(ok) == []


def test_quote_status_rpcs_need_the_quote_id() -> None:
    for request in (pb.SendQuoteRequest(), pb.AcceptQuoteRequest(), pb.RejectQuoteRequest()):
        assert ("id", "required") in violations(request)
