"""The simulated company's pure parts: its customers, when things happen, how customers answer
surveys, the run's clock, and the KPI summary."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.contacts.v1 import contacts_pb2 as cpb
from crm.metrics.v1 import metrics_pb2 as mpb
from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm_contacts.domain.identity import (
    SocialNetwork,
    normalise_email,
    normalise_phone,
    normalise_social_handle,
)
from crm_devstack.demo import _duration, format_kpi_summary, history_days, plan_company_run
from crm_devstack.simulator import (
    TOPICS,
    CompanyProfile,
    Experience,
    Issue,
    OfficeHours,
    SimulationReport,
    activity,
    agent_time,
    customer_time,
    live_arrivals,
    plan_arrivals,
    plan_customers,
    survey_answer,
)
from crm_servicedesk.domain.sentiment import polarity

PROFILE = CompanyProfile()
CALENDAR = PROFILE.hours.calendar()
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
RULE_THRESHOLD = -0.4  # the listening rule opens a ticket below this sentiment

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


def test_customers_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    first, again = plan_customers(7, PROFILE), plan_customers(7, PROFILE)
    assert first == again
    assert plan_customers(8, PROFILE) != first
    assert PROFILE.customers[0] <= len(first) <= PROFILE.customers[1]


def test_customers_have_identities_the_contacts_service_accepts() -> None:
    customers = plan_customers(7, PROFILE)
    assert len({c.email for c in customers}) == len(customers)
    assert len({c.handle for c in customers if c.handle}) == len([c for c in customers if c.handle])
    for customer in customers:
        assert normalise_email(customer.email) == customer.email
        if customer.phone:
            assert normalise_phone(customer.phone) == customer.phone
        if customer.handle:
            assert normalise_social_handle(SocialNetwork.X, customer.handle) == customer.handle
        if customer.channel == pb.CHANNEL_SOCIAL:
            assert customer.handle, "a customer who prefers social media has a handle"
        contact = customer.to_proto()
        assert contact.identities[0].kind == cpb.IDENTITY_KIND_EMAIL
        assert 0.5 <= customer.patience <= 1.5


def test_arrivals_are_deterministic_inside_the_window_and_as_many_as_planned() -> None:
    end = MONDAY + timedelta(days=3)
    arrivals = plan_arrivals(7, MONDAY, end, 100, PROFILE)
    assert arrivals == plan_arrivals(7, MONDAY, end, 100, PROFILE)
    assert len(arrivals) == round(100 * PROFILE.issues_per_customer_day * 3)
    assert arrivals == sorted(arrivals)
    assert all(MONDAY <= a.at < end and 0 <= a.customer < 100 for a in arrivals)
    assert [a.number for a in arrivals] == list(range(1, len(arrivals) + 1))


def test_customers_write_more_by_day_than_at_night() -> None:
    arrivals = plan_arrivals(7, MONDAY, MONDAY + timedelta(days=5), 150, PROFILE)
    zone = PROFILE.hours.timezone
    assert activity(MONDAY.replace(hour=13), zone) > activity(MONDAY.replace(hour=2), zone)
    local_hours = [a.at.astimezone(ZoneInfo(PROFILE.hours.timezone)).hour for a in arrivals]
    day = sum(1 for hour in local_hours if 9 <= hour < 18)
    night = sum(1 for hour in local_hours if hour < 6)
    assert day > 5 * night


def test_live_arrivals_keep_coming_in_order() -> None:
    stream = live_arrivals(7, MONDAY, 50, PROFILE, first_number=200)
    taken = [next(stream) for _ in range(50)]
    assert [a.number for a in taken] == list(range(200, 250))
    assert all(earlier.at < later.at for earlier, later in itertools.pairwise(taken))
    assert taken[0].at > MONDAY


@given(instants, st.floats(min_value=0.5, max_value=600))
@settings(max_examples=200, deadline=None)
def test_agents_work_only_in_office_hours(after: datetime, median: float) -> None:
    rng = random.Random(1)
    done = agent_time(rng, CALENDAR, after, median)
    assert done > after
    # Finishing work means the office was open just before (the work's last minute).
    assert CALENDAR.is_open(done - timedelta(seconds=1))


@given(instants, st.floats(min_value=1, max_value=600), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_customers_act_after_the_fact(after: datetime, median: float, seed: int) -> None:
    assert customer_time(random.Random(seed), after, median, PROFILE.hours.timezone) > after


def test_customers_mostly_sleep_at_night() -> None:
    zone = ZoneInfo(PROFILE.hours.timezone)
    late = datetime(2026, 3, 2, 22, 50, tzinfo=zone)
    hours = [
        customer_time(random.Random(seed), late, 30.0, PROFILE.hours.timezone).astimezone(zone).hour
        for seed in range(200)
    ]
    awake = sum(1 for hour in hours if hour >= 7 or hour == 23)
    assert awake > 0.8 * len(hours)


def _mean_csat(waited: timedelta, *, reopened: bool = False) -> float:
    experience = Experience(pb.CHANNEL_EMAIL, waited, patience=1.0, reopened=reopened)
    return statistics.mean(
        survey_answer(random.Random(seed), experience).csat for seed in range(300)
    )


def test_satisfaction_falls_as_the_wait_grows_past_the_expectation() -> None:
    means = [_mean_csat(timedelta(hours=hours)) for hours in (1, 8, 16, 32, 72)]
    assert means == sorted(means, reverse=True)
    assert means[0] > 4.3
    assert means[-1] < 2.5
    assert _mean_csat(timedelta(hours=1), reopened=True) < means[0]


@given(
    st.sampled_from([pb.CHANNEL_EMAIL, pb.CHANNEL_SOCIAL, pb.CHANNEL_LIVE_CHAT]),
    st.floats(min_value=0, max_value=30 * 86400),
    st.floats(min_value=0.5, max_value=1.5),
    st.booleans(),
    st.integers(0, 5),
    st.integers(0, 10_000),
)
def test_survey_answers_are_valid(
    channel: int, waited: float, patience: float, reopened: bool, chasers: int, seed: int
) -> None:
    experience = Experience(channel, timedelta(seconds=waited), patience, reopened, chasers)
    answer = survey_answer(random.Random(seed), experience)
    assert 1 <= answer.csat <= 5
    assert 0 <= answer.nps <= 10
    assert 1 <= answer.effort <= 7
    assert 0 <= answer.perceived_wait_minutes <= 525_600
    assert answer.perceived_wait_minutes >= int(waited // 60) - 1
    assert answer.expected_wait_minutes > 0


def test_angry_posts_open_tickets_and_mild_ones_do_not() -> None:
    for topic in TOPICS:
        angry = topic.angry_post.format(order="12345", brand=PROFILE.brand)
        mild = topic.post.format(order="12345", brand=PROFILE.brand)
        assert polarity(angry) < RULE_THRESHOLD, angry
        assert polarity(mild) >= RULE_THRESHOLD, mild
        assert f"@{PROFILE.brand}" in angry


def test_each_step_of_an_issue_draws_from_its_own_stream() -> None:
    def issue() -> Issue:
        customer = plan_customers(7, PROFILE)[0]
        return Issue(1, customer, "c1", pb.CHANNEL_EMAIL, TOPICS[0], "7:issue:1", MONDAY)

    one, other = issue(), issue()
    # The same steps in another order draw the same numbers.
    first_reply, first_chase = one.stream("reply").random(), one.stream("chase").random()
    assert other.stream("chase").random() == first_chase
    assert other.stream("reply").random() == first_reply
    assert one.stream("reply").random() != first_reply  # the second reply has its own


def test_the_runs_clock_starts_the_simulated_days_when_the_stack_is_up() -> None:
    now = MONDAY.replace(day=4, hour=12).timestamp()  # a Wednesday noon
    run = plan_company_run(
        days=3, wall=timedelta(minutes=2), seed=7, now=now, startup=timedelta(seconds=25)
    )
    assert run.days == 3
    assert run.tenant.startswith("acme-")
    ready = run.clock.at_wall(now + 25)
    assert ready == datetime.fromtimestamp(now + 25, UTC) - timedelta(days=3)
    acceleration = run.clock.acceleration
    assert acceleration is not None
    caught_up = acceleration.caught_up_at()
    assert caught_up == pytest.approx(now + 25 + 120)
    env = run.service_env
    assert float(env["CRM_CLOCK_RATE"]) == pytest.approx(acceleration.rate)
    assert float(env["CRM_CLOCK_ORIGIN"]) == now
    assert "METRICS_TOPICS" not in env  # the metrics service reads every domain topic


def test_a_weekend_stretches_the_history_to_two_working_days() -> None:
    working_days = 2 * timedelta(hours=8)
    wednesday = MONDAY.replace(day=4, hour=12)
    sunday_night = MONDAY.replace(day=8, hour=22)
    monday_morning = MONDAY.replace(day=9, hour=8)
    assert history_days(wednesday, 3, CALENDAR, working_days) == 3
    assert history_days(sunday_night, 3, CALENDAR, working_days) == 4
    assert history_days(monday_morning, 3, CALENDAR, working_days) == 4
    never_open = OfficeHours(weekdays=(6,)).calendar()
    assert history_days(wednesday, 3, never_open, timedelta(days=30)) == 6


def _value(kpi: str, **fields: float) -> mpb.KpiValue:
    value = mpb.KpiValue(kpi=kpi, count=int(fields.pop("count", 0)))
    for name, number in fields.items():
        setattr(value, name, number)
    return value


def test_the_kpi_summary_shows_both_clocks_and_csat_by_wait() -> None:
    values = {
        "tickets_created": _value("tickets_created@1", value=120),
        "frt_business": _value("frt_business@1", p50=2700, p90=4 * 3600),
        "customer_wait": _value("customer_wait@1", p50=10 * 3600, p90=30 * 3600),
        "perception_gap": _value("perception_gap@1", p50=8 * 3600, p90=26 * 3600),
        "csat": _value("csat@1", value=71.4, count=42),
        "nps": _value("nps@1", value=12.0),
        "green_inside_red_outside": _value("green_inside_red_outside@1", value=31.0),
    }
    by_wait = {"<1h": {"csat": _value("csat@1", value=90, count=10)}}
    report = SimulationReport(contacts=90, tickets=120)
    lines = format_kpi_summary("Acme", MONDAY, MONDAY + timedelta(days=3), values, by_wait, report)
    text = "\n".join(lines)
    assert "120 created" in text
    assert "CSAT 71 % (42 answers)" in text
    assert "NPS +12" in text
    assert "<1h 90 % (10)" in text
    assert ">24h -" in text
    gap = next(line for line in lines if "perception_gap" in line)
    assert "8.0 h" in gap
    assert "26.0 h" in gap
    assert "45 min" in next(line for line in lines if "business clock" in line)
    assert "31 %" in text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(42, "42 s"), (2700, "45 min"), (3 * 3600, "3.0 h"), (3 * 86400, "3.0 d"), (-5400, "-1.5 h")],
)
def test_durations_read_naturally(seconds: float, shown: str) -> None:
    assert _duration(seconds) == shown
