"""Domain enums map to and from their proto enums by name."""

from enum import StrEnum

from crm.contacts.v1 import contacts_pb2 as pb
from crm_platform.proto_enums import ProtoEnums


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    SOCIAL = "social"


class Stage(StrEnum):
    PROSPECT = "prospect"
    CUSTOMER = "customer"


ENUMS = ProtoEnums(
    pb.DESCRIPTOR,
    {IdentityKind: "IDENTITY_KIND_", Stage: "LIFECYCLE_STAGE_"},
    names={Stage: "LifecycleStage"},
)


def test_every_member_round_trips_through_its_proto_value() -> None:
    for kind in (IdentityKind, Stage):
        for member in kind:
            assert ENUMS.from_pb(kind, ENUMS.to_pb(member)) is member
    assert ENUMS.to_pb(IdentityKind.PHONE) == pb.IDENTITY_KIND_PHONE
    assert ENUMS.to_pb(Stage.CUSTOMER) == pb.LIFECYCLE_STAGE_CUSTOMER


def test_unspecified_and_unknown_values_are_none() -> None:
    assert ENUMS.from_pb(IdentityKind, 0) is None
    assert ENUMS.from_pb(IdentityKind, 999) is None
    assert ENUMS.to_pb(None) == 0
