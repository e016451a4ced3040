"""Social listening: mentions ingested once each, scored and linked to their authors; rules
may open a ticket from a mention (at most one per mention)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument
from crm_platform.unit_of_work import Retries, Transaction
from crm_servicedesk import events
from crm_servicedesk.domain.mention import Mention
from crm_servicedesk.domain.routing import (
    ActionKind,
    Decision,
    Trigger,
    action_to_document,
    evaluate,
)
from crm_servicedesk.domain.ticket import Interaction, RoutingRecord
from crm_servicedesk.domain.values import Channel, InteractionKind, TicketType
from crm_servicedesk.storage import ServiceDeskStore
from crm_servicedesk.use_cases.changes import TicketChange, TicketChanges
from crm_servicedesk.use_cases.contacts import ContactDirectory, ContactRef, SocialAuthor
from crm_servicedesk.use_cases.routing import mention_facts
from crm_servicedesk.use_cases.tickets import TicketDraft, Tickets

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MentionDraft:
    """One mention as ingested (validated into a :class:`Mention`)."""

    network: str
    post_id: str
    author_handle: str
    author_followers: int
    text: str
    url: str
    posted_at: datetime
    in_reply_to: str
    brand: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of one batch of mentions."""

    mentions: tuple[Mention, ...]
    duplicates: frozenset[str]
    tickets_opened: int


def _subject_of(mention: Mention) -> str:
    text = " ".join(mention.text.split())
    subject = f"@{mention.author_handle} on {mention.network}: {text}"
    return subject if len(subject) <= 120 else subject[:117] + "..."


def _ticket_draft(mention: Mention, opener: Decision) -> TicketDraft:
    """The ticket a rule opens from a mention."""
    return TicketDraft(
        type=opener.action.ticket_type or TicketType.COMPLAINT,
        channel=Channel.SOCIAL,
        priority=None,
        subject=_subject_of(mention),
        description=mention.text,
        assignee_id="",
        team_id="",
        tags=("social",),
        category="",
        product="",
        first_touch_at=mention.posted_at,
        interactions=(
            Interaction(
                kind=InteractionKind.SOCIAL_MENTION,
                channel=Channel.SOCIAL,
                occurred_at=mention.posted_at,
                reference=mention.mention_id,
                note=mention.url,
            ),
        ),
    )


class SocialListening:
    """The social listening use cases of the caller's tenant."""

    def __init__(
        self,
        store: ServiceDeskStore,
        changes: TicketChanges,
        tickets: Tickets,
        contacts: ContactDirectory,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.changes = changes
        self.tickets = tickets
        self.contacts = contacts
        self.now = now

    async def ingest_mentions(self, drafts: Sequence[MentionDraft]) -> IngestResult:
        """Store a batch of mentions once each, scored, linked to their authors; rules may open
        a ticket from a mention (at most one per mention)."""
        call = current_call()
        at = self.now()
        batch: dict[str, Mention] = {}
        for index, draft in enumerate(drafts):
            mention = Mention.ingest(
                tenant_id=call.tenant_id,
                network=draft.network,
                post_id=draft.post_id,
                author_handle=draft.author_handle,
                author_followers=draft.author_followers,
                text=draft.text,
                url=draft.url,
                posted_at=draft.posted_at,
                in_reply_to=draft.in_reply_to,
                brand=draft.brand,
                at=at,
                field_prefix=f"mentions[{index}]",
            )
            batch.setdefault(mention.mention_id, mention)
        known = await self.store.existing_mentions(call.tenant_id, list(batch), None)
        fresh = [m for ident, m in batch.items() if ident not in known]
        authors = (
            await self.contacts.lookup_authors(
                list({SocialAuthor(m.network, m.author_handle) for m in fresh})
            )
            if fresh
            else {}
        )
        rules = await self.store.routing_rules(call.tenant_id)
        openers: dict[str, Decision] = {}
        for mention in fresh:
            decisions = evaluate(rules, Trigger.MENTION_RECEIVED, mention_facts(mention, at))
            opener = next((d for d in decisions if d.action.kind is ActionKind.OPEN_TICKET), None)
            if opener is not None:
                openers[mention.mention_id] = opener
        requesters: dict[str, ContactRef] = {}
        for mention in fresh:
            author = SocialAuthor(mention.network, mention.author_handle)
            if author in authors:
                requesters[mention.mention_id] = authors[author]
            elif mention.mention_id in openers:
                try:
                    ref = await self.contacts.create_for_author(
                        author, f"mention:{mention.mention_id}"
                    )
                except InvalidArgument as exc:
                    # The contacts service does not take this handle as an identity: the
                    # mention is stored, but no ticket can have it as requester.
                    log.warning(
                        "mention %s: author %s cannot become a contact (%s); no ticket opened",
                        mention.mention_id,
                        mention.author_key,
                        exc.message,
                    )
                    del openers[mention.mention_id]
                    continue
                authors[author] = ref
                requesters[mention.mention_id] = ref
        linked = [
            m.linked(contact_id=requesters[m.mention_id].contact_id)
            if m.mention_id in requesters
            else m
            for m in fresh
        ]

        async def work(tx: Transaction) -> IngestResult:
            again = await self.store.existing_mentions(
                call.tenant_id, [m.mention_id for m in linked], tx.session
            )
            new = [m for m in linked if m.mention_id not in again]
            stored: list[Mention] = []
            opened = 0
            for mention in new:
                opener = openers.get(mention.mention_id)
                if opener is None:
                    stored.append(mention)
                    continue
                change = TicketChange()
                ticket = await self.tickets.open_ticket(
                    _ticket_draft(mention, opener),
                    requesters[mention.mention_id],
                    at,
                    mention.mention_id,
                    tx.session,
                    change,
                )
                ticket = ticket.record_routing(
                    [
                        RoutingRecord(
                            rule_id=opener.rule_id,
                            rule_version=opener.rule_version,
                            trigger=Trigger.MENTION_RECEIVED.value,
                            action=action_to_document(opener.action),
                            assigned_agent_id="",
                            decided_at=at,
                        )
                    ],
                    at,
                )
                mention = mention.linked(ticket_id=ticket.ticket_id)
                stored.append(mention)
                await self.changes.record(tx, None, ticket, change)
                opened += 1
            await self.store.insert_mentions(stored, tx.session)
            tx.publish([events.mention_received(m) for m in stored])
            duplicates = frozenset(known) | frozenset(again)
            return IngestResult(tuple(stored), duplicates, opened)

        # A concurrent ingest of the same post won: read again.
        result = await self.changes.commit(work, retries=Retries(duplicate_keys=1))
        return IngestResult(
            result.mentions,
            result.duplicates | frozenset(known),
            result.tickets_opened,
        )

    async def get_mention(self, mention_id: str) -> Mention:
        """A mention of the caller's tenant."""
        return await self.store.mention(current_call().tenant_id, mention_id)

    async def list_mentions(
        self, author_contact_id: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[Mention]:
        """Mentions newest first (by post time), of one author if given."""
        return await self.store.list_mentions(
            current_call().tenant_id, author_contact_id, limit, after
        )
