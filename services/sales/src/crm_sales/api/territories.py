"""``crm.sales.v1.TerritoryService``: requests in, territory use cases
(:mod:`crm_sales.use_cases.territories`), responses out.

Requests arrive already validated against the proto rules, with the caller's tenant and actor
in the call context; domain errors become gRPC statuses in the interceptors. The request
messages are read in :mod:`crm_sales.territories_contract`.
"""

from __future__ import annotations

from typing import Any

from crm.sales.v1 import territories_pb2 as pb
from crm.sales.v1 import territories_pb2_grpc
from crm.sales.v1 import territories_types_pb2 as types_pb
from crm_platform.context import current_call
from crm_platform.errors import FieldViolation, InvalidArgument
from crm_platform.idempotency import IdempotentRequest
from crm_sales import contract
from crm_sales.domain.territories import CompanyProfile, clean_profile
from crm_sales.territories_contract import (
    assignment_to_pb,
    decision_to_pb,
    kind_of,
    profile_from_pb,
    rule_input,
    rule_to_pb,
)
from crm_sales.use_cases.territories import OPERATION as RULE_CREATES
from crm_sales.use_cases.territories import TerritoryAssigner, TerritoryRules

Context = Any  # grpc.aio.ServicerContext; the handlers do not use it


class TerritoryService(territories_pb2_grpc.TerritoryServiceServicer):
    """The handlers: a request becomes domain inputs and one use case call, its result the
    response."""

    def __init__(self, rules: TerritoryRules, assigner: TerritoryAssigner) -> None:
        self.rules = rules
        self.assigner = assigner

    async def CreateTerritoryRule(
        self, request: pb.CreateTerritoryRuleRequest, context: Context
    ) -> pb.CreateTerritoryRuleResponse:
        call = current_call()
        saved = await self.rules.create(
            call,
            rule_input(request.rule),
            IdempotentRequest.of(call.tenant_id, RULE_CREATES, request.request_id, request),
        )
        return pb.CreateTerritoryRuleResponse(rule=rule_to_pb(saved))

    async def GetTerritoryRule(
        self, request: pb.GetTerritoryRuleRequest, context: Context
    ) -> pb.GetTerritoryRuleResponse:
        rule = await self.rules.get(current_call().tenant_id, request.id, request.version or None)
        return pb.GetTerritoryRuleResponse(rule=rule_to_pb(rule))

    async def ListTerritoryRules(
        self, request: pb.ListTerritoryRulesRequest, context: Context
    ) -> pb.ListTerritoryRulesResponse:
        found, token = await self.rules.list_rules(
            current_call().tenant_id, request.page_size, request.page_token
        )
        return pb.ListTerritoryRulesResponse(
            rules=[rule_to_pb(rule) for rule in found], next_page_token=token
        )

    async def UpdateTerritoryRule(
        self, request: pb.UpdateTerritoryRuleRequest, context: Context
    ) -> pb.UpdateTerritoryRuleResponse:
        saved = await self.rules.update(
            current_call(),
            request.rule.id,
            rule_input(request.rule),
            list(request.update_mask.paths),
            request.expected_version or None,
        )
        return pb.UpdateTerritoryRuleResponse(rule=rule_to_pb(saved))

    async def DeleteTerritoryRule(
        self, request: pb.DeleteTerritoryRuleRequest, context: Context
    ) -> pb.DeleteTerritoryRuleResponse:
        deleted = await self.rules.delete(
            current_call(), request.id, request.expected_version or None
        )
        return pb.DeleteTerritoryRuleResponse(rule=rule_to_pb(deleted))

    async def EvaluateTerritory(
        self, request: pb.EvaluateTerritoryRequest, context: Context
    ) -> pb.EvaluateTerritoryResponse:
        kind = kind_of(request.kind)
        if kind is None:  # the proto rules refuse it first
            raise InvalidArgument.single("kind", "is required")
        decision = await self.rules.evaluate(
            current_call().tenant_id, kind, _profile(request.profile, "profile")
        )
        if decision is None:
            return pb.EvaluateTerritoryResponse(matched=False)
        return pb.EvaluateTerritoryResponse(matched=True, decision=decision_to_pb(decision))

    async def AssignTerritory(
        self, request: pb.AssignTerritoryRequest, context: Context
    ) -> pb.AssignTerritoryResponse:
        call = current_call()
        expected = request.expected_version or None
        target = request.WhichOneof("target")
        if target == "lead_id":
            lead, changed = await self.assigner.assign_lead(call, request.lead_id, expected)
            return pb.AssignTerritoryResponse(
                lead=contract.lead_to_pb(lead),
                assignment=assignment_to_pb(lead.territory),
                changed=changed,
            )
        if target == "opportunity_id":
            opportunity, changed = await self.assigner.assign_opportunity(
                call, request.opportunity_id, expected
            )
            return pb.AssignTerritoryResponse(
                opportunity=contract.opportunity_to_pb(opportunity),
                assignment=assignment_to_pb(opportunity.territory),
                changed=changed,
            )
        raise InvalidArgument.single("target", "name a lead_id or an opportunity_id")


def _profile(message: types_pb.CompanyProfile, field: str) -> CompanyProfile:
    """A dry run's facts, cleaned and checked like a record's."""
    violations: list[FieldViolation] = []
    profile = clean_profile(profile_from_pb(message), violations, field)
    if violations:
        raise InvalidArgument(violations)
    return profile
