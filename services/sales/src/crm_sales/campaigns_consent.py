"""The contacts service's consent, as the campaign interactions need it, over gRPC.

The contacts service keeps a contact's consent on the contact (``crm.contacts.v1.Consent``:
e-mail, SMS and phone marketing, data processing, and when any of them last changed): it is read
with ``GetContact`` and one flag is withdrawn with ``UpdateContact`` and the field mask
``consent.<flag>`` (which publishes the contact's ``ContactUpdated``). Calls carry the caller's
tenant, actor and deadline (crm_platform.clients).
"""

from __future__ import annotations

from datetime import UTC

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.contacts.v1 import contacts_pb2_grpc
from crm_platform.clients import error_from_rpc
from crm_platform.errors import NotFound
from crm_sales.domain.campaign import ConsentFlag, ContactConsent


class GrpcConsentDirectory:
    """:class:`~crm_sales.use_cases.campaign_interactions.ConsentDirectory` over the contacts
    service (on the channel of :class:`crm_sales.contacts_directory.GrpcContactDirectory`)."""

    def __init__(self, stub: contacts_pb2_grpc.ContactsServiceAsyncStub) -> None:
        self.stub = stub

    async def consent_of(self, contact_id: str) -> ContactConsent | None:
        """The contact's consent, or ``None`` if the tenant has no such contact."""
        try:
            response = await self.stub.GetContact(cpb.GetContactRequest(id=contact_id))
        except grpc.aio.AioRpcError as exc:
            error = error_from_rpc(exc)
            if isinstance(error, NotFound):
                return None
            raise error from None
        consent = response.contact.consent
        flags = frozenset(flag for flag in ConsentFlag if getattr(consent, flag.value))
        since = None
        if consent.HasField("update_time"):
            since = consent.update_time.ToDatetime(tzinfo=UTC)
        return ContactConsent(flags, since)

    async def withdraw(self, contact_id: str, flag: ConsentFlag) -> None:
        """Set one consent of the contact to false (a no-op for the contacts service when it is
        false already)."""
        request = cpb.UpdateContactRequest(
            contact=cpb.Contact(id=contact_id, consent=cpb.Consent()),
            update_mask=FieldMask(paths=[f"consent.{flag.value}"]),
        )
        try:
            await self.stub.UpdateContact(request)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
