"""The contracts: generated code is current, buf is happy, and the protovalidate rules hold.

The validation tests pin the rule id and the field path of each violation, because the
services turn exactly these into `google.rpc.BadRequest` field violations for their callers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import protovalidate
import pytest
from buf.validate import validate_pb2
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from crm.common.v1 import common_pb2
from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc, events_pb2

ROOT = Path(__file__).resolve().parents[4]
PROTO_SH = ROOT / "scripts" / "proto.sh"


def run_proto_sh(
    *args: str, cwd: Path = ROOT, script: Path = PROTO_SH
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(ROOT / ".venv")}
    return subprocess.run(
        ["bash", str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def field_path(violation: validate_pb2.Violation) -> str:
    """Formats a violation's field path the way protovalidate prints it: a.b[0].c["key"]."""
    parts: list[str] = []
    for element in violation.field.elements:
        part = element.field_name
        subscript = element.WhichOneof("subscript")
        if subscript == "index":
            part += f"[{element.index}]"
        elif subscript == "string_key":
            part += f"[{json.dumps(element.string_key)}]"
        elif subscript is not None:
            part += f"[{getattr(element, subscript)}]"
        parts.append(part)
    return ".".join(parts)


def violations(message: Message) -> list[tuple[str, str]]:
    """(field path, rule id) of every violation, converted to the generated buf.validate types."""
    found = []
    for violation in protovalidate.collect_violations(message):
        proto = validate_pb2.Violation.FromString(violation.proto.to_binary())
        found.append((field_path(proto), proto.rule_id))
    return sorted(found)


def valid_create_contact_request() -> contacts_pb2.CreateContactRequest:
    return contacts_pb2.CreateContactRequest(
        contact=contacts_pb2.Contact(
            given_name="Ada",
            family_name="Lovelace",
            lifecycle_stage=contacts_pb2.LIFECYCLE_STAGE_CUSTOMER,
            tier=contacts_pb2.VALUE_TIER_GOLD,
            segments=["analytical-engine"],
            consent=contacts_pb2.Consent(email_marketing=True, data_processing=True),
            custom_attributes={"favourite_number": "42"},
            identities=[
                contacts_pb2.Identity(
                    kind=contacts_pb2.IDENTITY_KIND_EMAIL, value="ada@example.com", primary=True
                ),
                contacts_pb2.Identity(
                    kind=contacts_pb2.IDENTITY_KIND_PHONE, value="+44 20 7946 0000"
                ),
                contacts_pb2.Identity(
                    kind=contacts_pb2.IDENTITY_KIND_SOCIAL,
                    network=contacts_pb2.SOCIAL_NETWORK_MASTODON,
                    value="@ada@example.social",
                ),
            ],
        ),
        request_id="5f0c6f5e-3b1a-4f7e-9a57-0d3c4b1e2f10",
    )


def valid_update_contact_request() -> contacts_pb2.UpdateContactRequest:
    return contacts_pb2.UpdateContactRequest(
        contact=contacts_pb2.Contact(id="c-1", job_title="Analyst"),
        update_mask=field_mask_pb2.FieldMask(paths=["job_title"]),
        expected_version=3,
    )


# --- toolchain ---------------------------------------------------------------------------------


def test_generated_code_is_current() -> None:
    result = run_proto_sh("check")
    assert result.returncode == 0, result.stderr


def test_buf_lint_passes() -> None:
    result = run_proto_sh("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_protos_are_buf_formatted() -> None:
    result = run_proto_sh("format-check")
    assert result.returncode == 0, result.stdout + result.stderr


def _copy_toolchain(tmp_path: Path) -> Path:
    """A throwaway copy of the parts of the repository the script works on."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", root / "proto")
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copytree(
        ROOT / "libs" / "contracts" / "src",
        root / "libs" / "contracts" / "src",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


def test_check_fails_with_a_clear_message_when_generated_code_is_stale(tmp_path: Path) -> None:
    root = _copy_toolchain(tmp_path)
    contacts_proto = root / "proto" / "crm" / "contacts" / "v1" / "contacts.proto"
    contacts_proto.write_text(
        contacts_proto.read_text().replace(
            "  bool verified = 5;\n", "  bool verified = 5;\n  string note = 6;\n"
        )
    )

    result = run_proto_sh("check", script=root / "scripts" / "proto.sh", cwd=tmp_path)

    assert result.returncode == 1
    assert "stale" in result.stderr
    assert "contacts_pb2.py" in result.stderr
    assert "make proto" in result.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_breaking_rejects_a_removed_field_compared_with_main(tmp_path: Path) -> None:
    root = _copy_toolchain(tmp_path)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
            cwd=root,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", "proto")
    git("commit", "-q", "-m", "contracts")
    script = root / "scripts" / "proto.sh"
    assert run_proto_sh("breaking", script=script, cwd=root).returncode == 0

    contacts_proto = root / "proto" / "crm" / "contacts" / "v1" / "contacts.proto"
    contacts_proto.write_text(contacts_proto.read_text().replace("  bool verified = 5;\n", ""))
    result = run_proto_sh("breaking", script=script, cwd=tmp_path)

    assert result.returncode == 1
    assert 'Previously present field "5" with name "verified"' in result.stdout
    assert "proto/crm/contacts/v1/contacts.proto" in result.stdout


def test_breaking_is_skipped_outside_a_git_work_tree(tmp_path: Path) -> None:
    root = _copy_toolchain(tmp_path)

    result = run_proto_sh("breaking", script=root / "scripts" / "proto.sh", cwd=tmp_path)

    assert result.returncode == 0
    assert "skipping buf breaking" in result.stderr


# --- generated modules -------------------------------------------------------------------------


def test_service_and_event_names_are_stable() -> None:
    service = contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"]
    assert service.full_name == "crm.contacts.v1.ContactsService"
    assert callable(contacts_pb2_grpc.add_ContactsServiceServicer_to_server)
    # The CloudEvents `type` of an event is its payload's full message name.
    assert [
        m.DESCRIPTOR.full_name
        for m in (
            events_pb2.ContactCreated,
            events_pb2.ContactUpdated,
            events_pb2.OrganizationCreated,
            events_pb2.OrganizationUpdated,
        )
    ] == [
        "crm.contacts.v1.ContactCreated",
        "crm.contacts.v1.ContactUpdated",
        "crm.contacts.v1.OrganizationCreated",
        "crm.contacts.v1.OrganizationUpdated",
    ]


# --- protovalidate rules -----------------------------------------------------------------------


def test_valid_create_contact_request_passes() -> None:
    protovalidate.validate(valid_create_contact_request())


def test_a_contact_with_only_a_display_name_is_valid() -> None:
    request = contacts_pb2.CreateContactRequest(contact=contacts_pb2.Contact(display_name="Ada"))

    assert violations(request) == []


def test_validation_error_lists_every_violation() -> None:
    request = valid_create_contact_request()
    request.contact.given_name = "x" * 201
    request.request_id = "r" * 129

    with pytest.raises(protovalidate.ValidationError) as raised:
        protovalidate.validate(request)

    assert len(raised.value.violations) == 2


def _blank_names(r: contacts_pb2.CreateContactRequest) -> None:
    r.contact.given_name = " "
    r.contact.family_name = "\t"
    r.contact.display_name = ""


def _social_without_network(r: contacts_pb2.CreateContactRequest) -> None:
    r.contact.identities[2].network = contacts_pb2.SOCIAL_NETWORK_UNSPECIFIED


def _network_on_email(r: contacts_pb2.CreateContactRequest) -> None:
    r.contact.identities[0].network = contacts_pb2.SOCIAL_NETWORK_X


def _two_primary_emails(r: contacts_pb2.CreateContactRequest) -> None:
    r.contact.identities.add(
        kind=contacts_pb2.IDENTITY_KIND_EMAIL, value="a@b.example", primary=True
    )


def _too_many_identities(r: contacts_pb2.CreateContactRequest) -> None:
    for i in range(48):
        r.contact.identities.add(kind=contacts_pb2.IDENTITY_KIND_EMAIL, value=f"{i}@example.com")


def _too_many_attributes(r: contacts_pb2.CreateContactRequest) -> None:
    r.contact.custom_attributes.update({f"k{i}": "v" for i in range(100)})


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda r: r.ClearField("contact"), ("contact", "required"), id="contact-missing"
        ),
        pytest.param(_blank_names, ("contact", "contact.name_required"), id="all-names-blank"),
        pytest.param(
            lambda r: setattr(r.contact, "given_name", "x" * 201),
            ("contact.given_name", "string.max_len"),
            id="given-name-too-long",
        ),
        pytest.param(
            lambda r: setattr(r.contact, "display_name", "x" * 201),
            ("contact.display_name", "string.max_len"),
            id="display-name-too-long",
        ),
        pytest.param(
            lambda r: setattr(r.contact, "lifecycle_stage", 99),
            ("contact.lifecycle_stage", "enum.defined_only"),
            id="undefined-lifecycle-stage",
        ),
        pytest.param(
            lambda r: setattr(r.contact, "tier", 42),
            ("contact.tier", "enum.defined_only"),
            id="undefined-tier",
        ),
        pytest.param(
            lambda r: r.contact.segments.append("analytical-engine"),
            ("contact.segments", "repeated.unique"),
            id="duplicate-segment",
        ),
        pytest.param(
            lambda r: r.contact.segments.append(""),
            ("contact.segments[1]", "string.min_len"),
            id="empty-segment",
        ),
        pytest.param(
            _too_many_identities,
            ("contact.identities", "repeated.max_items"),
            id="too-many-identities",
        ),
        pytest.param(
            lambda r: setattr(
                r.contact.identities[1], "kind", contacts_pb2.IDENTITY_KIND_UNSPECIFIED
            ),
            ("contact.identities[1].kind", "required"),
            id="identity-kind-missing",
        ),
        pytest.param(
            lambda r: setattr(r.contact.identities[0], "value", ""),
            ("contact.identities[0].value", "string.min_len"),
            id="identity-value-empty",
        ),
        pytest.param(
            lambda r: setattr(r.contact.identities[0], "value", "a" * 513),
            ("contact.identities[0].value", "string.max_len"),
            id="identity-value-too-long",
        ),
        pytest.param(
            _social_without_network,
            ("contact.identities[2]", "identity.network_required_for_social"),
            id="social-identity-without-network",
        ),
        pytest.param(
            _network_on_email,
            ("contact.identities[0]", "identity.network_only_for_social"),
            id="network-on-email-identity",
        ),
        pytest.param(
            _two_primary_emails,
            ("contact", "contact.one_primary_identity_per_kind"),
            id="two-primary-emails",
        ),
        pytest.param(
            _too_many_attributes,
            ("contact.custom_attributes", "map.max_pairs"),
            id="too-many-custom-attributes",
        ),
        pytest.param(
            lambda r: r.contact.custom_attributes.update({"$where": "1"}),
            ('contact.custom_attributes["$where"]', "string.pattern"),
            id="custom-attribute-key-not-an-identifier",
        ),
        pytest.param(
            lambda r: r.contact.custom_attributes.update({"k": "v" * 1025}),
            ('contact.custom_attributes["k"]', "string.max_len"),
            id="custom-attribute-value-too-long",
        ),
        pytest.param(
            lambda r: setattr(r, "request_id", "r" * 129),
            ("request_id", "string.max_len"),
            id="request-id-too-long",
        ),
    ],
)
def test_create_contact_request_rule(
    mutate: Callable[[contacts_pb2.CreateContactRequest], object], expected: tuple[str, str]
) -> None:
    request = valid_create_contact_request()
    mutate(request)

    assert violations(request) == [expected]


def test_valid_update_contact_request_passes() -> None:
    assert violations(valid_update_contact_request()) == []


def test_update_contact_ignores_name_rule_for_fields_outside_the_mask() -> None:
    # Only job_title is sent and masked: the blank names are not part of the update.
    request = valid_update_contact_request()

    assert request.contact.given_name == ""
    assert violations(request) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda r: setattr(r.contact, "id", ""), ("contact", "contact.id_required"), id="no-id"
        ),
        pytest.param(
            lambda r: setattr(r.contact, "id", "c" * 65),
            ("contact.id", "string.max_len"),
            id="long-id",
        ),
        pytest.param(
            lambda r: r.ClearField("update_mask"), ("update_mask", "required"), id="no-mask"
        ),
        pytest.param(
            lambda r: r.update_mask.paths.append("version"),
            ("update_mask", "field_mask.in"),
            id="output-only-field-in-mask",
        ),
        pytest.param(
            lambda r: setattr(r, "expected_version", -1),
            ("expected_version", "int64.gte"),
            id="negative-expected-version",
        ),
    ],
)
def test_update_contact_request_rule(
    mutate: Callable[[contacts_pb2.UpdateContactRequest], object], expected: tuple[str, str]
) -> None:
    request = valid_update_contact_request()
    mutate(request)

    assert violations(request) == [expected]


@pytest.mark.parametrize("path", ["consent.sms_marketing", "custom_attributes.vip_since", "*"])
def test_update_mask_accepts_sub_paths_and_the_wildcard(path: str) -> None:
    request = valid_update_contact_request()
    request.update_mask.paths.append(path)

    assert violations(request) == []


@pytest.mark.parametrize(
    ("request_message", "expected"),
    [
        pytest.param(contacts_pb2.GetContactRequest(), [("id", "required")], id="get-no-id"),
        pytest.param(
            contacts_pb2.GetContactRequest(id="c" * 65),
            [("id", "string.max_len")],
            id="get-long-id",
        ),
        pytest.param(contacts_pb2.ListContactsRequest(page_size=500), [], id="list-max-page"),
        pytest.param(
            contacts_pb2.ListContactsRequest(page_size=501),
            [("page_size", "int32.gte_lte")],
            id="list-page-too-big",
        ),
        pytest.param(
            contacts_pb2.ListContactsRequest(page_size=-1),
            [("page_size", "int32.gte_lte")],
            id="list-page-negative",
        ),
        pytest.param(
            contacts_pb2.SearchContactsRequest(),
            [("name_prefix", "string.min_len")],
            id="search-no-prefix",
        ),
        pytest.param(
            contacts_pb2.SearchContactsRequest(name_prefix="a" * 101),
            [("name_prefix", "string.max_len")],
            id="search-prefix-too-long",
        ),
        pytest.param(
            contacts_pb2.LookupContactByIdentityRequest(),
            [("identity", "required")],
            id="lookup-no-identity",
        ),
        pytest.param(
            contacts_pb2.LookupContactByIdentityRequest(
                identity=contacts_pb2.Identity(kind=contacts_pb2.IDENTITY_KIND_PHONE, value="+1555")
            ),
            [],
            id="lookup-phone",
        ),
        pytest.param(
            contacts_pb2.CreateOrganizationRequest(
                organization=contacts_pb2.Organization(name="Acme", domain="acme.example")
            ),
            [],
            id="create-organization",
        ),
        pytest.param(
            contacts_pb2.CreateOrganizationRequest(
                organization=contacts_pb2.Organization(name=" ", domain="not a host name")
            ),
            [
                ("organization", "organization.name_required"),
                ("organization.domain", "string.hostname"),
            ],
            id="create-organization-blank-name-bad-domain",
        ),
        pytest.param(
            contacts_pb2.UpdateOrganizationRequest(
                organization=contacts_pb2.Organization(name="Acme"),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "tenant_id"]),
            ),
            [
                ("organization", "organization.id_required"),
                ("update_mask", "field_mask.in"),
            ],
            id="update-organization",
        ),
        pytest.param(
            events_pb2.ContactUpdated(),
            [("contact", "required"), ("previous_version", "int64.gte")],
            id="contact-updated-event",
        ),
        pytest.param(
            common_pb2.Actor(id="agent-7"), [("type", "required")], id="actor-without-type"
        ),
        pytest.param(
            common_pb2.Money(currency_code="EUR", units=-1, nanos=500_000_000),
            [("", "money.sign_consistent")],
            id="money-mixed-signs",
        ),
    ],
)
def test_request_rules(request_message: Message, expected: list[tuple[str, str]]) -> None:
    assert violations(request_message) == expected
