"""Ingesting a stream of campaign interactions: each item judged on its own, the accepted ones
written in batches, one unit of work per batch.

For each batch (:data:`BATCH_SIZE` items, or what is left at the end of the stream):

1. outside any transaction, the batch's campaigns are read (one query) and the consent of its
   contacts is asked of the contacts service (once per contact per stream: a small cache, kept
   current with the stream's own unsubscribes);
2. one transaction reads which of the batch's interactions are recorded already (one query by
   id: the id is derived from the idempotency key), the contacts' last unsubscribes and their
   open leads; judges every item in stream order; inserts the accepted ones in one command,
   appends a touch to each open lead of their contacts, and queues the events through the
   outbox (``CampaignInteractionRecorded`` on the contact's key, ``LeadCampaignTouched`` on the
   lead's), in one command, with one sequence after every earlier event of each of the keys
   (:meth:`crm_sales.campaigns_storage.CampaignStore.next_shared_sequence`). A concurrent stream
   recording one of the same interactions makes one of the two transactions fail on the
   duplicate key; it is rerun and finds the winner's records, so an interaction is recorded,
   and its event published, exactly once;
3. after the commit, each accepted unsubscribe withdraws the channel's consent in the contacts
   service (e-mail and phone marketing; the other channels have no consent of their own
   there). The unsubscribe is recorded in any case and refuses later sends on the channel: for
   e-mail and phone while no consent was given after it (so a failed withdrawal refuses them
   too), for the other channels for good (see :func:`crm_sales.domain.campaign.refusal`).

The summary's counts are taken only from committed batches (a rerun does not count twice).
An item's refusal reasons, in the order they are looked at: invalid (field rules) → campaign
not found (also another tenant's) → duplicate (recorded already: a resent stream gives
duplicates only, whatever changed since) → the campaign's status, the contact's existence and,
for a send, its consent (:func:`crm_sales.domain.campaign.refusal`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import FieldViolation
from crm_platform.events import Event
from crm_platform.unit_of_work import Retries, Transaction, UnitOfWork
from crm_sales import campaigns_events as events
from crm_sales.campaigns_storage import CampaignStore
from crm_sales.domain.campaign import (
    CHANNEL_CONSENT,
    UNSUBSCRIBE_WITHDRAWS,
    CampaignTouch,
    ConsentFlag,
    ContactConsent,
    IngestRefusal,
    Interaction,
    InteractionInput,
    InteractionKind,
    check_interaction,
    interaction_id,
    refusal,
)
from crm_sales.domain.lead import Lead
from crm_sales.use_cases._common import now_ms

log = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Items per unit of work."""
MAX_LISTED_ERRORS = 1000
"""Refused items listed in a summary (all are counted)."""
CONSENT_LOOKUPS = 16
"""Consent look-ups in flight at once, per stream."""
INGEST_RETRIES = Retries(concurrent_updates=3, duplicate_keys=3)
"""A concurrent stream may record the same interactions, or touch the same lead: rerun."""


class ConsentDirectory(Protocol):
    """The contacts service as the ingestion uses it
    (:class:`crm_sales.campaigns_consent.GrpcConsentDirectory`)."""

    async def consent_of(self, contact_id: str) -> ContactConsent | None:
        """The contact's consent; ``None`` when the tenant has no such contact."""
        ...

    async def withdraw(self, contact_id: str, flag: ConsentFlag) -> None:
        """Withdraw one consent of the contact."""
        ...


@dataclass(frozen=True, slots=True)
class ItemError:
    """A refused item: its position in the stream, why, and its bad fields."""

    index: int
    reason: IngestRefusal
    violations: tuple[FieldViolation, ...] = ()
    message: str = ""


@dataclass(slots=True)
class IngestOutcome:
    """What a stream did (the summary)."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[IngestRefusal] = field(default_factory=Counter)
    errors: list[ItemError] = field(default_factory=list)
    errors_truncated: bool = False
    lead_touches: int = 0

    def refuse(self, error: ItemError) -> None:
        """Count a refused item (and list it while there is room)."""
        self.refused[error.reason] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(error)
        else:
            self.errors_truncated = True


@dataclass(frozen=True, slots=True)
class _Item:
    index: int
    input: InteractionInput
    kind: InteractionKind
    occur_time: datetime


@dataclass(slots=True)
class _BatchResult:
    accepted: list[Interaction] = field(default_factory=list)
    duplicates: int = 0
    refused: list[ItemError] = field(default_factory=list)
    lead_touches: int = 0


class CampaignInteractions:
    """The interaction ingestion of every tenant."""

    def __init__(
        self,
        store: CampaignStore,
        unit_of_work: UnitOfWork,
        clock: Clock,
        consent: ConsentDirectory,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.consent = consent
        self.batch_size = batch_size

    def stream(self, call: CallContext) -> InteractionStream:
        """A new stream of the caller's interactions."""
        return InteractionStream(self, call)


class InteractionStream:
    """One client stream: add items in order, then :meth:`finish` for the summary."""

    def __init__(self, ingestion: CampaignInteractions, call: CallContext) -> None:
        self._ingestion = ingestion
        self._call = call
        self._pending: list[_Item] = []
        self._consents: dict[str, ContactConsent | None] = {}
        self._invalid: list[ItemError] = []
        """Invalid items since the last batch: counted with it, so errors stay in stream order."""
        self.outcome = IngestOutcome()

    def refuse_invalid(
        self, index: int, violations: Sequence[FieldViolation], message: str
    ) -> None:
        """Count an item the proto rules refused."""
        self.outcome.received += 1
        self._invalid.append(ItemError(index, IngestRefusal.INVALID, tuple(violations), message))

    async def add(self, index: int, item: InteractionInput) -> None:
        """Take the next item (its domain checks now; written with its batch)."""
        self.outcome.received += 1
        problems = check_interaction(item)
        if problems.items:
            self._invalid.append(
                ItemError(index, IngestRefusal.INVALID, tuple(problems.items), "invalid item")
            )
            return
        assert item.kind is not None
        assert item.occur_time is not None
        occur = item.occur_time.replace(microsecond=item.occur_time.microsecond // 1000 * 1000)
        self._pending.append(_Item(index, item, item.kind, occur))
        if len(self._pending) >= self._ingestion.batch_size:
            await self._flush()

    async def finish(self) -> IngestOutcome:
        """Write what is left; the stream's summary."""
        await self._flush()
        return self.outcome

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        invalid, self._invalid = self._invalid, []
        if not batch:
            for error in invalid:
                self.outcome.refuse(error)
            return
        ingestion, call = self._ingestion, self._call
        campaigns = await ingestion.store.campaigns_by_id(
            call.tenant_id, {item.input.campaign_id for item in batch}
        )
        await self._look_up_consents(
            {item.input.contact_id for item in batch if item.input.campaign_id in campaigns}
        )
        now = now_ms(ingestion.clock)

        async def write(tx: Transaction) -> _BatchResult:
            result = _BatchResult()
            known = [item for item in batch if item.input.campaign_id in campaigns]
            ids = {
                item.index: interaction_id(
                    call.tenant_id,
                    item.input.campaign_id,
                    item.input.contact_id,
                    item.kind,
                    item.input.external_id,
                )
                for item in known
            }
            recorded = await ingestion.store.recorded_interactions(
                call.tenant_id, list(ids.values()), tx.session
            )
            unsubscribed = await ingestion.store.last_unsubscribes(
                call.tenant_id,
                {i.input.contact_id for i in known if i.kind is InteractionKind.SENT},
                tx.session,
            )
            for item in batch:
                campaign = campaigns.get(item.input.campaign_id)
                if campaign is None:
                    result.refused.append(
                        ItemError(
                            item.index,
                            IngestRefusal.CAMPAIGN_NOT_FOUND,
                            message=f"campaign {item.input.campaign_id!r} not found",
                        )
                    )
                    continue
                the_id = ids[item.index]
                if the_id in recorded:
                    result.duplicates += 1
                    continue
                contact_id = item.input.contact_id
                channel = campaign.channel
                why = refusal(
                    item.kind,
                    campaign,
                    self._consents.get(contact_id),
                    unsubscribed.get((contact_id, channel)),
                )
                if why is not None:
                    result.refused.append(ItemError(item.index, why, message=_explain(why)))
                    continue
                recorded.add(the_id)
                if item.kind is InteractionKind.UNSUBSCRIBED:
                    unsubscribed[(contact_id, channel)] = now
                result.accepted.append(
                    Interaction(
                        id=the_id,
                        tenant_id=call.tenant_id,
                        campaign_id=campaign.id,
                        contact_id=contact_id,
                        kind=item.kind,
                        external_id=item.input.external_id,
                        channel=channel,
                        occur_time=item.occur_time,
                        record_time=now,
                    )
                )
            await ingestion.store.insert_interactions(result.accepted, tx.session)
            result.lead_touches = await self._touch_leads(tx, result.accepted, now)
            return result

        result = await ingestion.unit_of_work.run(write, retries=INGEST_RETRIES)
        self.outcome.accepted += len(result.accepted)
        self.outcome.duplicates += result.duplicates
        self.outcome.lead_touches += result.lead_touches
        for error in sorted([*invalid, *result.refused], key=lambda e: e.index):
            self.outcome.refuse(error)
        await self._withdraw_consents(result.accepted)

    async def _touch_leads(
        self, tx: Transaction, accepted: Sequence[Interaction], now: datetime
    ) -> int:
        """Append a touch to every open lead of the accepted interactions' contacts, and queue
        every event of the batch with its key's sequence; how many touches."""
        store, call = self._ingestion.store, self._call
        leads: dict[str, list[Lead]] = defaultdict(list)
        for lead in await store.open_leads_of(
            call.tenant_id, {i.contact_id for i in accepted}, tx.session
        ):
            leads[lead.contact_id].append(lead)
        read_versions = {lead.id: lead.version for found in leads.values() for lead in found}
        by_key: dict[str, list[Event]] = defaultdict(list)
        touches = 0
        for interaction in accepted:
            touched: list[str] = []
            lead_events: list[Event] = []
            for position, lead in enumerate(leads.get(interaction.contact_id, ())):
                touch = CampaignTouch(
                    interaction.campaign_id,
                    interaction.kind,
                    interaction.id,
                    interaction.occur_time,
                )
                after = lead.touched(touch, now)
                leads[interaction.contact_id][position] = after
                touched.append(lead.id)
                lead_events.append(events.lead_campaign_touched(after, touch, lead.version, call))
            touches += len(touched)
            by_key[interaction.contact_id].append(
                events.interaction_recorded(interaction, touched, call)
            )
            for event in lead_events:
                by_key[event.key].append(event)
        for found in leads.values():
            for lead in found:
                if lead.version != read_versions[lead.id]:
                    await store.sales.replace_lead(read_versions[lead.id], lead, tx.session)
        if by_key:
            sequence = await store.next_shared_sequence(by_key, tx.session)
            tx.publish([e for queued in by_key.values() for e in queued], sequence=sequence)
        return touches

    async def _look_up_consents(self, contact_ids: Iterable[str]) -> None:
        missing = [c for c in contact_ids if c not in self._consents]
        if not missing:
            return
        limit = asyncio.Semaphore(CONSENT_LOOKUPS)
        directory = self._ingestion.consent

        async def look_up(contact_id: str) -> None:
            async with limit:
                self._consents[contact_id] = await directory.consent_of(contact_id)

        async with asyncio.TaskGroup() as group:
            for contact_id in missing:
                group.create_task(look_up(contact_id))

    async def _withdraw_consents(self, accepted: Sequence[Interaction]) -> None:
        for interaction in accepted:
            if interaction.kind is not InteractionKind.UNSUBSCRIBED:
                continue
            flag = CHANNEL_CONSENT[interaction.channel]
            if flag not in UNSUBSCRIBE_WITHDRAWS:
                continue
            current = self._consents.get(interaction.contact_id)
            if current is not None:
                self._consents[interaction.contact_id] = ContactConsent(
                    current.flags - {flag}, current.update_time
                )
            try:
                await self._ingestion.consent.withdraw(interaction.contact_id, flag)
            except Exception:  # recorded here already: later sends are refused without it
                log.warning(
                    "could not withdraw %s of contact %s after an unsubscribe",
                    flag.value,
                    interaction.contact_id,
                    exc_info=True,
                )


def _explain(reason: IngestRefusal) -> str:
    return {
        IngestRefusal.CONTACT_NOT_FOUND: "no contact of the tenant has this id",
        IngestRefusal.NO_CONSENT: "the contact has not consented to sends on the campaign's "
        "channel (or unsubscribed from it since)",
        IngestRefusal.CAMPAIGN_NOT_ACTIVE: "the campaign's status does not take this "
        "interaction (nothing while draft; sends only while active)",
    }.get(reason, reason.value)
