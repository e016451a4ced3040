"""Territory rules: conditions on the company's facts, validation, versions, and the first
matching rule in position order deciding (with its id and version)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_platform.errors import InvalidArgument, StaleVersion
from crm_sales.domain.lead import Lead, LeadInput, LeadSource
from crm_sales.domain.territories import (
    CompanyProfile,
    CompanySize,
    RecordKind,
    TerritoryAssignment,
    TerritoryCondition,
    TerritoryRule,
    TerritoryRuleInput,
    assign,
    evaluate,
    reassigned,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
BOTH = ("lead", "opportunity")


def _rule(rule_id: str = "r1", **fields: object) -> TerritoryRule:
    values: dict[str, object] = {
        "name": "DACH",
        "applies_to": BOTH,
        "territory_id": "dach",
        "owner_id": "rep-1",
    }
    values.update(fields)
    return TerritoryRule.create(
        rule_id=rule_id,
        tenant_id="acme",
        fields=TerritoryRuleInput(**values),  # type: ignore[arg-type]
        now=NOW,
    )


def _violations(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


# --- conditions --------------------------------------------------------------------------


def test_empty_condition_matches_everything_even_an_unknown_company() -> None:
    assert TerritoryCondition().matches(CompanyProfile())


def test_each_field_is_and_each_list_is_or() -> None:
    condition = TerritoryCondition(
        countries=frozenset({"DE", "AT"}),
        sizes=frozenset({CompanySize.LARGE, CompanySize.ENTERPRISE}),
    )
    assert condition.matches(CompanyProfile(country="AT", size=CompanySize.LARGE))
    assert not condition.matches(CompanyProfile(country="AT", size=CompanySize.SMALL))
    assert not condition.matches(CompanyProfile(country="FR", size=CompanySize.LARGE))
    assert not condition.matches(CompanyProfile(country="AT"))  # unknown size


def test_text_facts_ignore_case_and_postal_codes_match_by_prefix_without_blanks() -> None:
    condition = TerritoryCondition(
        regions=frozenset({"Bavaria"}),
        industries=frozenset({"Manufacturing"}),
        tiers=frozenset({"Gold"}),
        postal_prefixes=frozenset({"80", "SW1"}),
    )
    company = CompanyProfile(region="BAVARIA", industry="manufacturing", tier="gold")
    assert condition.matches(replace(company, postal_code="80331"))
    assert condition.matches(replace(company, postal_code="sw1a 1aa"))
    assert not condition.matches(replace(company, postal_code="81675"))
    assert not condition.matches(company)  # no postal code


# --- validation ----------------------------------------------------------------------------


def test_a_rule_is_version_1_with_cleaned_values() -> None:
    rule = _rule(
        condition=TerritoryCondition(
            countries=frozenset({" de "}), postal_prefixes=frozenset({"sw1 a"})
        )
    )
    assert rule.version == 1
    assert rule.applies_to == {RecordKind.LEAD, RecordKind.OPPORTUNITY}
    assert rule.condition.countries == {"DE"}
    assert rule.condition.postal_prefixes == {"SW1A"}


def test_a_bad_rule_is_refused_with_every_violation() -> None:
    with pytest.raises(InvalidArgument) as error:
        _rule(
            name=" ",
            applies_to=(),
            position=-1,
            territory_id="",
            owner_id="",
            team_id="",
            condition=TerritoryCondition(countries=frozenset({"XX", "Germany"})),
        )
    assert _violations(error) == {
        "rule.name",
        "rule.applies_to",
        "rule.position",
        "rule.territory_id",
        "rule.owner_id",
        "rule.condition.countries",
    }


def test_an_unknown_record_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        _rule(applies_to=("lead", "ticket"))
    assert _violations(error) == {"rule.applies_to"}


def test_a_company_profile_with_an_unknown_country_is_refused_on_the_lead() -> None:
    with pytest.raises(InvalidArgument) as error:
        Lead.create(
            id="l1",
            tenant_id="acme",
            fields=LeadInput(
                person_name="Ann",
                source=LeadSource.WEB_FORM,
                company_profile=CompanyProfile(country="QQ", region="x\x07"),
            ),
            now=NOW,
        )
    assert _violations(error) == {"lead.company_profile.country", "lead.company_profile.region"}


# --- versions ------------------------------------------------------------------------------


def test_an_update_is_the_next_version_and_no_change_no_version() -> None:
    rule = _rule()
    revision = rule.revised(TerritoryRuleInput(position=5), ["position"], 1, LATER)
    assert (revision.rule.version, revision.rule.position) == (2, 5)
    assert revision.changed_paths == ("position",)
    assert revision.rule.update_time == LATER
    same = revision.rule.revised(TerritoryRuleInput(position=5), ["position"], None, LATER)
    assert same.changed_paths == ()
    assert same.rule is revision.rule


def test_a_stale_update_or_delete_is_refused() -> None:
    rule = _rule()
    with pytest.raises(StaleVersion):
        rule.revised(TerritoryRuleInput(position=5), ["position"], 2, LATER)
    with pytest.raises(StaleVersion):
        rule.deleted_version(7, LATER)


def test_a_bad_update_mask_or_value_is_invalid_before_the_version_is_checked() -> None:
    rule = _rule()
    with pytest.raises(InvalidArgument) as error:
        rule.revised(TerritoryRuleInput(), ["version", "name"], 9, LATER)
    assert _violations(error) == {"update_mask", "rule.name"}


def test_a_deleted_rule_never_decides() -> None:
    deleted = _rule().deleted_version(1, LATER)
    assert (deleted.deleted, deleted.version) == (True, 2)
    assert evaluate([deleted], RecordKind.LEAD, CompanyProfile()) is None


# --- evaluation ----------------------------------------------------------------------------


def test_the_first_rule_by_position_decides_and_names_its_version() -> None:
    catch_all = _rule("z", position=100, territory_id="rest", owner_id="", team_id="inside")
    dach = _rule("a", position=10, condition=TerritoryCondition(countries=frozenset({"DE"})))
    dach = dach.revised(TerritoryRuleInput(owner_id="rep-2"), ["owner_id"], 1, LATER).rule
    german = evaluate([catch_all, dach], RecordKind.LEAD, CompanyProfile(country="DE"))
    assert german is not None
    assert (german.rule_id, german.rule_version, german.action.owner_id) == ("a", 2, "rep-2")
    french = evaluate([catch_all, dach], RecordKind.LEAD, CompanyProfile(country="FR"))
    assert french is not None
    assert (french.rule_id, french.action.team_id) == ("z", "inside")


def test_rules_apply_only_to_their_kinds_and_when_enabled() -> None:
    leads_only = _rule("a", applies_to=("lead",))
    disabled = _rule("b", enabled=False)
    assert evaluate([leads_only, disabled], RecordKind.OPPORTUNITY, CompanyProfile()) is None
    found = evaluate([leads_only, disabled], RecordKind.LEAD, CompanyProfile())
    assert found is not None
    assert found.rule_id == "a"


_countries = st.sampled_from(["DE", "AT", "FR"])
_sizes = st.sampled_from(list(CompanySize))
_conditions = st.builds(
    TerritoryCondition,
    countries=st.frozensets(_countries, max_size=2),
    sizes=st.frozensets(_sizes, max_size=2),
    tiers=st.frozensets(st.sampled_from(["gold", "silver"]), max_size=1),
)
_profiles = st.builds(
    CompanyProfile,
    country=_countries | st.just(""),
    size=st.none() | _sizes,
    tier=st.sampled_from(["gold", "Silver", ""]),
)


@st.composite
def _rule_sets(draw: st.DrawFn) -> list[TerritoryRule]:
    count = draw(st.integers(0, 8))
    rules = []
    for index in range(count):
        rule = _rule(
            f"r{draw(st.integers(0, 99)):02d}-{index}",
            position=draw(st.integers(0, 4)),
            enabled=draw(st.booleans()),
            applies_to=draw(st.sampled_from([("lead",), ("opportunity",), BOTH])),
            condition=draw(_conditions),
            territory_id=f"t{index}",
        )
        for _ in range(draw(st.integers(0, 2))):  # some later versions
            rule = rule.revised(
                TerritoryRuleInput(name=f"v{rule.version + 1}"), ["name"], None, LATER
            ).rule
        if draw(st.booleans()) and draw(st.booleans()):
            rule = rule.deleted_version(None, LATER)
        rules.append(rule)
    return draw(st.permutations(rules))


@given(_rule_sets(), st.sampled_from(list(RecordKind)), _profiles)
def test_property_the_first_matching_rule_in_position_order_decides(
    rules: list[TerritoryRule], kind: RecordKind, profile: CompanyProfile
) -> None:
    decision = evaluate(rules, kind, profile)
    # Oracle: walk the rules in (position, id) order by hand.
    ordered = sorted(rules, key=lambda r: (r.position, r.rule_id))
    expected = next(
        (
            r
            for r in ordered
            if r.enabled and not r.deleted and kind in r.applies_to
            and r.condition.matches(profile)
        ),
        None,
    )  # fmt: skip
    if expected is None:
        assert decision is None
        return
    assert decision is not None
    # The decision always names an existing rule at its existing version, and its target.
    named = {(r.rule_id, r.version): r for r in rules}
    assert (decision.rule_id, decision.rule_version) in named
    assert named[(decision.rule_id, decision.rule_version)] is expected
    assert decision.action == expected.target
    # Every rule before it in order either did not apply or did not match.
    for rule in ordered[: ordered.index(expected)]:
        applies = rule.enabled and not rule.deleted and kind in rule.applies_to
        assert not (applies and rule.condition.matches(profile))


# --- applying a decision --------------------------------------------------------------------


def _assignment(owner: str = "", team: str = "", territory: str = "t") -> TerritoryAssignment:
    return TerritoryAssignment(territory, owner, team, "r1", 1, NOW)


def _new_lead(owner: str = "") -> Lead:
    return Lead.create(
        id="l1",
        tenant_id="acme",
        fields=LeadInput(person_name="Ann", source=LeadSource.WEB_FORM, owner_id=owner),
        now=NOW,
    )


def test_the_rules_owner_wins_and_a_team_change_drops_the_old_owner() -> None:
    lead = assign(_new_lead(), _assignment(owner="rep-1", team="north"))
    assert (lead.owner_id, lead.territory, lead.version) == (
        "rep-1",
        _assignment(owner="rep-1", team="north"),
        1,
    )
    same_team = assign(lead, _assignment(team="north"))
    assert same_team.owner_id == "rep-1"
    other_team = assign(lead, _assignment(team="south"))
    assert other_team.owner_id == ""


def test_reassigning_the_same_decision_changes_nothing() -> None:
    lead = assign(_new_lead(), _assignment(owner="rep-1"))
    assert (
        reassigned(lead, replace(_assignment(owner="rep-1"), decide_time=LATER), 1, LATER) is None
    )
    moved = reassigned(lead, _assignment(owner="rep-2"), None, LATER)
    assert moved is not None
    assert (moved.owner_id, moved.version, moved.update_time) == ("rep-2", 2, LATER)
    with pytest.raises(StaleVersion):
        reassigned(lead, _assignment(owner="rep-2"), 5, LATER)
