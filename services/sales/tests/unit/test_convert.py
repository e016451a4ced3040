"""The API's enums and messages map one-to-one onto the domain's."""

from __future__ import annotations

from enum import StrEnum

import pytest

from crm.sales.v1 import sales_pb2 as pb
from crm_sales import contract
from crm_sales.api import convert
from crm_sales.domain.lead import LeadSource, LeadStatus
from crm_sales.domain.opportunity import BuyingRole
from crm_sales.domain.pipeline import StageKind


@pytest.mark.parametrize(
    ("kind", "proto"),
    [
        (StageKind, pb.StageKind),
        (BuyingRole, pb.BuyingRole),
        (LeadSource, pb.LeadSource),
        (LeadStatus, pb.LeadStatus),
    ],
)
def test_every_enum_member_has_exactly_one_proto_value(kind: type[StrEnum], proto: object) -> None:
    numbers = {contract.enum_to_pb(member) for member in kind}
    assert 0 not in numbers
    assert len(numbers) == len(kind) == len(proto.values()) - 1  # type: ignore[attr-defined]
    assert {contract.enum_from_pb(kind, n) for n in numbers} == set(kind)
    assert contract.enum_from_pb(kind, 0) is None
    assert contract.enum_from_pb(kind, 999) is None


def test_opportunity_message_fields_reach_the_domain_input() -> None:
    message = pb.Opportunity(
        name="Deal",
        account_id="org-1",
        primary_contact_id="c-1",
        buying_centre=[
            pb.BuyingCentreMember(
                contact_id="c-1",
                roles=[pb.BUYING_ROLE_CHAMPION, pb.BUYING_ROLE_USER],
            )
        ],
        amount_minor=12345,
        currency="JPY",
        pipeline_id="p1",
        line_items=[pb.LineItem(product_id="sku", quantity=3, unit_price_minor=4115)],
    )
    fields = convert.opportunity_input(message)
    assert fields.buying_centre[0].roles == (BuyingRole.CHAMPION, BuyingRole.USER)
    assert (fields.amount_minor, fields.currency) == (12345, "JPY")
    assert fields.line_items[0].quantity * fields.line_items[0].unit_price_minor == 12345
