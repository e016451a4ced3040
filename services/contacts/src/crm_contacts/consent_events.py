"""The consent events the contacts service publishes (``crm.contacts.v1.ConsentChanged``)."""

from __future__ import annotations

from crm.contacts.v1 import consent_events_pb2 as events
from crm_contacts import consent_contract
from crm_contacts.domain.consent import ConsentEntry
from crm_contacts.events import SOURCE
from crm_platform.context import CallContext
from crm_platform.events import Event


def consent_changed(entry: ConsentEntry, state: ConsentEntry, call: CallContext) -> Event:
    """``ConsentChanged`` for a recorded ``entry``; ``state`` is its pair's latest entry after it
    (``entry`` itself unless it was recorded out of order). Key: the contact id, like every
    event about the contact."""
    payload = events.ConsentChanged(
        contact_id=entry.contact_id,
        entry=consent_contract.entry_to_pb(entry),
        current=state.id == entry.id,
        state=consent_contract.state_to_pb(state),
    )
    return Event.of(
        payload,
        source=SOURCE,
        subject=f"contacts/{entry.contact_id}",
        key=entry.contact_id,
        call=call,
        time=entry.record_time,
    )
