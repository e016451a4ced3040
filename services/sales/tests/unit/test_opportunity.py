"""Opportunity rules: create in an open stage, stage changes against the pipeline version
(won → open only via reopen), updates with masks and versions, money, the event key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import FailedPrecondition, InvalidArgument, StaleVersion
from crm_sales.domain.opportunity import (
    ILLEGAL_STAGE_CHANGE,
    BuyingCentreMember,
    BuyingRole,
    LineItem,
    Opportunity,
    OpportunityInput,
)
from crm_sales.domain.pipeline import Pipeline, PipelineInput, Stage, StageKind

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ACTOR = "agent:alice"
OPEN, WON, LOST = StageKind.OPEN, StageKind.WON, StageKind.LOST

PIPELINE = Pipeline.create(
    id="p1",
    tenant_id="acme",
    fields=PipelineInput(
        "Direct",
        (
            Stage("qualify", "Qualify", 10, OPEN),
            Stage("proposal", "Proposal", 50, OPEN),
            Stage("won", "Won", 100, WON),
            Stage("lost", "Lost", 0, LOST),
            Stage("lost_no_budget", "Lost: no budget", 0, LOST),
        ),
    ),
    now=T0,
)
DEAL = OpportunityInput(
    name="200 seats",
    account_id="org-1",
    primary_contact_id="c-1",
    buying_centre=(BuyingCentreMember("c-1", (BuyingRole.DECISION_MAKER,)),),
    amount_minor=1_250_000,
    currency="EUR",
    expected_close_date="2026-06-30",
    pipeline_id="p1",
)


def _create(fields: OpportunityInput = DEAL, pipeline: Pipeline = PIPELINE) -> Opportunity:
    return Opportunity.create(
        id="o1", tenant_id="acme", fields=fields, pipeline=pipeline, now=T0, actor=ACTOR
    )


def _fields(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_created_opportunity_starts_in_the_first_open_stage_with_one_history_entry() -> None:
    o = _create()
    assert (o.stage_id, o.status, o.version, o.pipeline_version) == ("qualify", OPEN, 1, 1)
    [entry] = o.stage_history
    assert (entry.from_stage_id, entry.to_stage_id, entry.win_probability_percent) == (
        "",
        "qualify",
        10,
    )
    assert entry.change_time == T0
    assert entry.actor == ACTOR


def test_opportunity_can_be_created_in_a_named_open_stage_but_not_a_closed_one() -> None:
    assert _create(replace(DEAL, stage_id="proposal")).stage_id == ("proposal")
    with pytest.raises(InvalidArgument) as error:
        _create(replace(DEAL, stage_id="won"))
    assert _fields(error) == {"opportunity.stage_id"}


def test_bad_money_date_and_buying_centre_are_all_reported() -> None:
    bad = replace(
        DEAL,
        amount_minor=-5,
        currency="ZZZ",
        expected_close_date="2026-02-30",
        buying_centre=(
            BuyingCentreMember("c-1", (BuyingRole.USER,)),
            BuyingCentreMember("c-1", (BuyingRole.BLOCKER,)),
        ),
        line_items=(LineItem("sku-1", "", 0, -1),),
    )
    with pytest.raises(InvalidArgument) as error:
        _create(bad)
    assert _fields(error) == {
        "opportunity.amount_minor",
        "opportunity.currency",
        "opportunity.expected_close_date",
        "opportunity.buying_centre[1].contact_id",
        "opportunity.line_items[0].quantity",
        "opportunity.line_items[0].unit_price_minor",
    }


def test_events_are_keyed_by_the_primary_contact_else_the_account_else_the_opportunity() -> None:
    assert _create().event_key == "c-1"
    no_contact = replace(DEAL, primary_contact_id="")
    assert _create(no_contact).event_key == "org-1"
    neither = replace(DEAL, primary_contact_id="", account_id="")
    assert _create(neither).event_key == "o1"


def test_moving_between_open_stages_records_the_change_with_its_time() -> None:
    moved = _create().move_to("proposal", PIPELINE, 1, _at(5), "agent:bob")
    assert moved.change is not None
    o = moved.opportunity
    assert (o.stage_id, o.version, o.update_time) == ("proposal", 2, _at(5))
    assert [(c.from_stage_id, c.to_stage_id) for c in o.stage_history] == [
        ("", "qualify"),
        ("qualify", "proposal"),
    ]
    assert o.stage_history[-1].actor == "agent:bob"
    assert o.stage_history[-1].win_probability_percent == 50


def test_moving_to_the_current_stage_changes_nothing() -> None:
    o = _create()
    assert o.move_to("qualify", PIPELINE, None, _at(1), ACTOR) == (
        o.move_to("qualify", PIPELINE, None, _at(1), ACTOR)
    )
    assert o.move_to("qualify", PIPELINE, None, _at(1), ACTOR).change is None


def test_unknown_stage_is_an_invalid_argument_on_stage_id() -> None:
    with pytest.raises(InvalidArgument) as error:
        _create().move_to("negotiation", PIPELINE, None, _at(1), ACTOR)
    assert _fields(error) == {"stage_id"}


def test_move_cannot_close_an_opportunity() -> None:
    with pytest.raises(InvalidArgument) as error:
        _create().move_to("won", PIPELINE, None, _at(1), ACTOR)
    assert "won stage" in error.value.violations[0].description


def test_win_closes_in_the_first_won_stage_with_reason_and_time() -> None:
    won = _create().win("", "best price", PIPELINE, 1, _at(9), ACTOR).opportunity
    assert (won.stage_id, won.status, won.close_reason, won.close_time) == (
        "won",
        WON,
        "best price",
        _at(9),
    )


def test_a_loss_needs_a_reason_and_a_lost_stage() -> None:
    with pytest.raises(InvalidArgument) as error:
        _create().lose("won", " ", PIPELINE, None, _at(1), ACTOR)
    assert _fields(error) == {"reason", "stage_id"}
    lost = _create().lose("lost_no_budget", "no budget", PIPELINE, None, _at(1), ACTOR)
    assert lost.opportunity.stage_id == "lost_no_budget"
    assert lost.opportunity.status is LOST


def test_won_goes_back_to_open_only_through_reopen() -> None:
    won = _create().win("", "", PIPELINE, None, _at(1), ACTOR).opportunity
    with pytest.raises(FailedPrecondition) as error:
        won.move_to("proposal", PIPELINE, None, _at(2), ACTOR)
    assert error.value.violation_type == ILLEGAL_STAGE_CHANGE
    with pytest.raises(FailedPrecondition):
        won.lose("", "changed their mind", PIPELINE, None, _at(2), ACTOR)
    reopened = won.reopen("proposal", "budget came back", PIPELINE, None, _at(3), ACTOR)
    o = reopened.opportunity
    assert (o.stage_id, o.status, o.close_reason, o.close_time) == ("proposal", OPEN, "", None)
    assert o.stage_history[-1].reason == "budget came back"
    assert len(o.stage_history) == 3


def test_an_open_opportunity_cannot_be_reopened() -> None:
    with pytest.raises(FailedPrecondition):
        _create().reopen("proposal", "", PIPELINE, None, _at(1), ACTOR)


def test_a_stale_expected_version_is_refused_before_the_state_is_judged() -> None:
    won = _create().win("", "", PIPELINE, None, _at(1), ACTOR).opportunity
    with pytest.raises(StaleVersion):
        won.move_to("proposal", PIPELINE, 1, _at(2), ACTOR)


def test_stages_come_from_the_version_the_opportunity_was_created_under() -> None:
    o = _create()
    v2 = PIPELINE.revise(
        PipelineInput(stages=(*PIPELINE.stages, Stage("negotiation", "Negotiation", 80, OPEN))),
        ["stages"],
        None,
        _at(1),
    ).pipeline
    with pytest.raises(InvalidArgument):
        o.move_to("negotiation", PIPELINE, None, _at(2), ACTOR)
    assert _create(pipeline=v2).pipeline_version == 2


def test_update_replaces_only_masked_fields_and_reports_what_changed() -> None:
    o = _create()
    changes = OpportunityInput(amount_minor=990_000, currency="USD", name="ignored")
    update = o.apply_update(changes, ["amount_minor", "currency"], 1, _at(1))
    assert update.changed_paths == ("amount_minor", "currency")
    assert (update.opportunity.amount_minor, update.opportunity.currency) == (990_000, "USD")
    assert update.opportunity.name == "200 seats"
    assert update.opportunity.version == 2
    assert update.opportunity.event_key == o.event_key


def test_update_with_unknown_currency_or_stale_version_is_refused() -> None:
    o = _create()
    with pytest.raises(InvalidArgument) as error:
        o.apply_update(OpportunityInput(currency="ABC"), ["currency"], None, _at(1))
    assert _fields(error) == {"opportunity.currency"}
    with pytest.raises(StaleVersion):
        o.apply_update(OpportunityInput(owner_id="bob"), ["owner_id"], 7, _at(1))
    with pytest.raises(InvalidArgument) as mask_error:
        o.apply_update(OpportunityInput(stage_id="won"), ["stage_id"], None, _at(1))
    assert _fields(mask_error) == {"update_mask"}
