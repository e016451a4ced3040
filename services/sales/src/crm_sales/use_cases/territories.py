"""Territory use cases: the rules (create, update, delete, reads, the dry run) and their
application to leads and opportunities.

A lead or an opportunity created without an owner is assigned in its create's transaction
(:meth:`TerritoryAssigner.on_create`), with the rules as of that transaction; an existing one is
re-evaluated with the current rules by :meth:`TerritoryAssigner.assign_lead` /
:meth:`TerritoryAssigner.assign_opportunity`, which replace it only if it is still at the
version read (so an assignment racing another change of the record fails rather than losing
it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from crm_platform.clock import Clock
from crm_platform.context import CallContext
from crm_platform.errors import FailedPrecondition, InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_platform.paging import PageQuery
from crm_platform.rules import check_version
from crm_platform.unit_of_work import Transaction, UnitOfWork
from crm_sales import territories_events as events
from crm_sales.domain.lead import Lead
from crm_sales.domain.opportunity import Opportunity
from crm_sales.domain.territories import (
    NO_TERRITORY_RULE_MATCHES,
    CompanyProfile,
    RecordKind,
    TerritoryAssignment,
    TerritoryDecision,
    TerritoryRule,
    TerritoryRuleInput,
    assign,
    evaluate,
    reassigned,
)
from crm_sales.storage import SalesStore
from crm_sales.territories_storage import Session, TerritoryStore
from crm_sales.use_cases._common import WRITE_RETRIES, new_id, now_ms, publish_on_key

OPERATION = "territory_rule"
"""The idempotency records' operation for rule creates."""

R = TypeVar("R", Lead, Opportunity)


class TerritoryRules:
    """The territory rule use cases of every tenant; ``clock`` stamps the changes."""

    def __init__(self, rules: TerritoryStore, unit_of_work: UnitOfWork, clock: Clock) -> None:
        self.rules = rules
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def create(
        self, call: CallContext, fields: TerritoryRuleInput, request: IdempotentRequest | None
    ) -> TerritoryRule:
        """Version 1 of a new rule, or, for a retry of ``request``, the first result."""
        rule = TerritoryRule.create(
            rule_id=new_id(), tenant_id=call.tenant_id, fields=fields, now=now_ms(self.clock)
        )
        event = events.rule_created(rule, call)

        async def create(tx: Transaction) -> TerritoryRule:
            if (earlier := await tx.earlier_result(request)) is not None:
                return await self.rules.get_rule_version(call.tenant_id, earlier, 1, tx.session)
            await self.rules.insert_rule(rule, tx.session)
            await tx.remember(request, rule.rule_id, rule.create_time)
            tx.publish([event], sequence=rule.version)
            return rule

        return await self.unit_of_work.run(create, retries=WRITE_RETRIES)

    async def update(
        self,
        call: CallContext,
        rule_id: str,
        changes: TerritoryRuleInput,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> TerritoryRule:
        """A new version with the fields ``paths`` names replaced (none if nothing changes)."""

        async def update(tx: Transaction) -> TerritoryRule:
            current = await self.rules.get_rule(call.tenant_id, rule_id, tx.session)
            revision = current.revised(changes, paths, expected_version, now_ms(self.clock))
            if not revision.changed_paths:
                return current
            await self.rules.replace_rule(current.version, revision.rule, tx.session)
            tx.publish(
                [events.rule_updated(revision, current.version, call)],
                sequence=revision.rule.version,
            )
            return revision.rule

        return await self.unit_of_work.run(update, retries=WRITE_RETRIES)

    async def delete(
        self, call: CallContext, rule_id: str, expected_version: int | None
    ) -> TerritoryRule:
        """The rule's deletion version (it no longer applies; its versions stay readable)."""

        async def delete(tx: Transaction) -> TerritoryRule:
            current = await self.rules.get_rule(call.tenant_id, rule_id, tx.session)
            deleted = current.deleted_version(expected_version, now_ms(self.clock))
            await self.rules.replace_rule(current.version, deleted, tx.session)
            tx.publish(
                [events.rule_deleted(deleted, current.version, call)], sequence=deleted.version
            )
            return deleted

        return await self.unit_of_work.run(delete, retries=WRITE_RETRIES)

    async def get(self, tenant_id: str, rule_id: str, version: int | None) -> TerritoryRule:
        """The rule at ``version`` (``None``: the current one, not deleted), or ``NotFound``."""
        if version is None:
            return await self.rules.get_rule(tenant_id, rule_id)
        return await self.rules.get_rule_version(tenant_id, rule_id, version)

    async def list_rules(
        self, tenant_id: str, page_size: int, page_token: str
    ) -> tuple[list[TerritoryRule], str]:
        """A page of the tenant's rules in evaluation order, and the next page's token."""
        query = PageQuery.of(
            {"op": "ListTerritoryRules", "tenant": tenant_id}, page_size, page_token
        )
        after: tuple[int, str] | None = None
        if query.after:
            match query.after:
                case (int(position), str(rule_id)):
                    after = (position, rule_id)
                case _:
                    raise InvalidArgument.single("page_token", "is not a token of this list")
        found = await self.rules.list_rules(tenant_id, after, query.limit)
        return query.page(found, lambda rule: [rule.position, rule.rule_id])

    async def evaluate(
        self, tenant_id: str, kind: RecordKind, profile: CompanyProfile
    ) -> TerritoryDecision | None:
        """What the current rules decide for a record of ``kind`` with ``profile`` (a dry
        run: nothing is written)."""
        return evaluate(await self.rules.active_rules(tenant_id), kind, profile)


class TerritoryAssigner:
    """Applies the rules to leads and opportunities."""

    def __init__(
        self, rules: TerritoryStore, store: SalesStore, unit_of_work: UnitOfWork, clock: Clock
    ) -> None:
        self.rules = rules
        self.store = store
        self.unit_of_work = unit_of_work
        self.clock = clock

    async def decide(
        self,
        tenant_id: str,
        kind: RecordKind,
        profile: CompanyProfile,
        at: datetime,
        session: Session,
    ) -> TerritoryAssignment | None:
        """The assignment the rules (as of ``session``) make at ``at``, if one matches."""
        decision = evaluate(await self.rules.active_rules(tenant_id, session), kind, profile)
        return None if decision is None else TerritoryAssignment.of(decision, at)

    async def on_create(self, record: R, session: Session) -> R:
        """A new record assigned by the rules when it has no owner and a rule matches (its
        version unchanged: it is still being created); else as it is."""
        if record.owner_id:
            return record
        kind, profile = _facts(record)
        assignment = await self.decide(record.tenant_id, kind, profile, record.create_time, session)
        return record if assignment is None else assign(record, assignment)

    async def assign_lead(
        self, call: CallContext, lead_id: str, expected_version: int | None
    ) -> tuple[Lead, bool]:
        """The lead re-evaluated with the current rules, and whether it changed."""

        async def work(tx: Transaction) -> tuple[Lead, bool]:
            current = await self.store.get_lead(call.tenant_id, lead_id, tx.session)
            changed = await self._reassigned(current, expected_version, tx.session)
            if changed is None:
                return current, False
            await self.store.replace_lead(current.version, changed, tx.session)
            event = events.lead_territory_assigned(changed, current.version, current.owner_id, call)
            await publish_on_key(tx, self.store, [event])
            return changed, True

        return await self.unit_of_work.run(work, retries=WRITE_RETRIES)

    async def assign_opportunity(
        self, call: CallContext, opportunity_id: str, expected_version: int | None
    ) -> tuple[Opportunity, bool]:
        """The opportunity re-evaluated with the current rules, and whether it changed."""

        async def work(tx: Transaction) -> tuple[Opportunity, bool]:
            current = await self.store.get_opportunity(call.tenant_id, opportunity_id, tx.session)
            changed = await self._reassigned(current, expected_version, tx.session)
            if changed is None:
                return current, False
            await self.store.replace_opportunity(current.version, changed, tx.session)
            event = events.opportunity_territory_assigned(
                changed, current.version, current.owner_id, call
            )
            await publish_on_key(tx, self.store, [event])
            return changed, True

        return await self.unit_of_work.run(work, retries=WRITE_RETRIES)

    async def _reassigned(
        self, record: R, expected_version: int | None, session: Session
    ) -> R | None:
        check_version(record.subject, expected_version, record.version)
        now = now_ms(self.clock)
        kind, profile = _facts(record)
        assignment = await self.decide(record.tenant_id, kind, profile, now, session)
        if assignment is None:
            raise FailedPrecondition(
                NO_TERRITORY_RULE_MATCHES,
                record.subject,
                "no enabled territory rule matches its company profile",
            )
        return reassigned(record, assignment, expected_version, now)


def _facts(record: Lead | Opportunity) -> tuple[RecordKind, CompanyProfile]:
    if isinstance(record, Lead):
        return RecordKind.LEAD, record.company_profile
    return RecordKind.OPPORTUNITY, record.account_profile
