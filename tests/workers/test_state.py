"""RolloutState: JSON records that read back equal, strict reading, and when a look is due."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.run import RunTally
from analyzer.verdict import Outcome
from tests.workers.rollout_driver import SPEC
from workers.spec import RolloutSpec
from workers.state import AnalysisRequest, Awaited, AwaitToken, Phase, RolloutState, VerdictSummary

times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
maybe_times = st.none() | times
text = st.text(max_size=20)
counts = st.integers(min_value=0, max_value=1000)

specs = st.builds(
    RolloutSpec,
    version=text,
    image=text,
    platform=text,
    baseline_selector=text,
    canary_selector=text,
    args=st.dictionaries(text, text, max_size=3).map(lambda args: tuple(sorted(args.items()))),
)
verdicts = st.builds(
    VerdictSummary,
    outcome=st.sampled_from(Outcome),
    reason=text,
    decided_by=st.lists(text, max_size=3).map(tuple),
    score=st.none() | st.floats(min_value=0, max_value=100),
    window_start=maybe_times,
    window_end=maybe_times,
    final=st.booleans(),
)
states = st.builds(
    RolloutState,
    id=text,
    app=text,
    namespace=text,
    policy=text,
    spec=specs,
    created_at=times,
    updated_at=times,
    phase=st.sampled_from(Phase),
    attempt=st.integers(min_value=1, max_value=50),
    stage_index=counts,
    canary_weight=st.integers(min_value=0, max_value=100),
    stage_started_at=maybe_times,
    stage_ends_at=maybe_times,
    window_start=maybe_times,
    next_look_at=maybe_times,
    last_look_at=maybe_times,
    final_look_at=maybe_times,
    extensions=counts,
    stage_failures=counts,
    tally=st.builds(RunTally, looks=counts, failures=counts, consecutive_errors=counts),
    awaiting=st.none() | text,
    pause_reason=st.none() | text,
    abort_reason=st.none() | text,
    last_verdict=st.none() | verdicts,
    next_due_at=maybe_times,
    supersedes=st.none() | text,
    superseded_by=st.none() | text,
)


@given(states)
def test_a_record_survives_json_and_reads_back_equal(state: RolloutState) -> None:
    record = json.loads(json.dumps(state.to_record(), allow_nan=False))
    assert RolloutState.from_record(record) == state


def fresh(**changes: Any) -> RolloutState:
    state = RolloutState.new("r1", app="a", namespace="n", policy="p", spec=SPEC, now=10.0)
    return replace(state, **changes)


def test_a_new_rollout_is_pending_at_its_first_stage() -> None:
    state = fresh()
    assert (state.phase, state.attempt, state.stage_index, state.canary_weight) == (
        Phase.PENDING,
        1,
        0,
        0,
    )
    assert state.created_at == state.updated_at == 10.0
    assert state.to_record()["spec"]["args"] == {"route": "/api/.*"}


def test_whole_seconds_read_back_as_floats() -> None:
    record = fresh().to_record() | {"created_at": 10, "window_start": 70}
    state = RolloutState.from_record(record)
    assert isinstance(state.created_at, float) and state.window_start == 70.0


def test_a_rollout_judged_against_the_stable_fleet_is_written_as_the_release_before_read_it() -> (
    None
):
    record = fresh().to_record()
    assert record["format"] == 1 and "fresh_baseline_selector" not in record["spec"]


@pytest.mark.parametrize(
    "change",
    [
        {"fresh_baseline_selector": 'app="checkout",pod=~"checkout-baseline-.+"'},
        {"from_manifest": True},
    ],
)
def test_a_spec_the_release_before_could_not_honour_says_format_2(change: dict[str, Any]) -> None:
    state = fresh(spec=replace(SPEC, **change))
    record = json.loads(json.dumps(state.to_record()))
    assert record["format"] == 2  # the release before refuses it by name instead of misreading
    assert RolloutState.from_record(record) == state


DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize("fresh_baseline", ["", 'app="checkout",pod=~"checkout-baseline-.+"'])
def test_a_rollout_that_pinned_its_policy_says_format_3_and_reads_back_equal(
    fresh_baseline: str,
) -> None:
    spec = replace(SPEC, fresh_baseline_selector=fresh_baseline)
    state = replace(fresh(spec=spec), policy_digest=DIGEST)
    record = json.loads(json.dumps(state.to_record()))
    assert record["format"] == 3 and record["policy_digest"] == DIGEST
    assert RolloutState.from_record(record) == state
    unpinned = replace(state, policy_digest=None).to_record()  # read by name, as ever
    assert unpinned["format"] == (2 if fresh_baseline else 1)
    assert "policy_digest" not in unpinned


@pytest.mark.parametrize("digest", ["abc", DIGEST.upper(), 42])
def test_a_pinned_digest_that_is_no_sha256_is_refused(digest: object) -> None:
    record = replace(fresh(), policy_digest=DIGEST).to_record() | {"policy_digest": digest}
    with pytest.raises(ValueError, match="policy_digest must be 64 hex digits"):
        RolloutState.from_record(record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 7}, r"format 7 is not \[1, 2, 3, 4, 5, 6\]"),
        ({"colour": "blue"}, "unknown fields: colour"),
        ({"phase": "sleeping"}, "'sleeping' is not a valid Phase"),
        ({"attempt": "1"}, "attempt must be int"),
        ({"attempt": True}, "attempt must be int"),
        ({"window_start": "soon"}, "window_start must be a number"),
        ({"id": None}, "id must be str"),
        ({"spec": {**fresh().to_record()["spec"], "args": ["x"]}}, "spec.args must be a mapping"),
        ({"tally": {"looks": 1, "fails": 2}}, "bad rollout record"),
    ],
)
def test_a_bad_record_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutState.from_record(fresh().to_record() | change)


def test_no_look_is_due_outside_an_active_phase_or_while_the_platform_works() -> None:
    looking = fresh(phase=Phase.PROGRESSING, window_start=100.0, next_look_at=160.0)
    assert looking.analysis_due(200.0) is not None
    for phase in (Phase.PENDING, Phase.PROMOTING, Phase.ABORTING, Phase.ABORTED, Phase.FAILED):
        assert replace(looking, phase=phase).analysis_due(200.0) is None
    assert replace(looking, awaiting="1:0:stage").analysis_due(200.0) is None
    assert replace(looking, window_start=None).analysis_due(200.0) is None
    assert replace(looking, next_look_at=None).analysis_due(200.0) is None


def test_a_look_is_due_at_its_time_and_the_last_look_of_a_step_is_final() -> None:
    state = fresh(
        phase=Phase.PROGRESSING,
        stage_index=1,
        window_start=100.0,
        next_look_at=160.0,
        final_look_at=700.0,
    )
    assert state.analysis_due(159.0) is None
    assert state.analysis_due(160.0) == AnalysisRequest("r1", 1, 1, 100.0, 160.0, final=False)
    assert state.analysis_due(700.0) == AnalysisRequest("r1", 1, 1, 100.0, 700.0, final=True)
    # a person paused it: background looks go on, the step's last look waits for a resume
    paused = replace(state, phase=Phase.PAUSED)
    assert paused.analysis_due(700.0) == AnalysisRequest("r1", 1, 1, 100.0, 700.0, final=False)
    assert replace(paused, next_look_at=None).analysis_due(700.0) is None


def test_a_result_is_expected_only_for_the_look_the_state_waits_for() -> None:
    state = fresh(
        phase=Phase.PROGRESSING,
        stage_index=1,
        window_start=100.0,
        next_look_at=160.0,
        final_look_at=700.0,
    )
    look = AnalysisRequest("r1", 1, 1, 100.0, 160.0, final=False)
    assert state.expects(look)
    assert state.expects(replace(look, window_end=700.0, final=True))
    stale = [
        replace(look, rollout_id="r0"),
        replace(look, attempt=2),
        replace(look, stage_index=0),
        replace(look, window_start=40.0),
        replace(look, window_end=159.0),  # early
        replace(look, window_end=699.0, final=True),  # not yet the last look
    ]
    assert not any(state.expects(request) for request in stale)
    assert not replace(state, last_look_at=160.0).expects(look)  # already counted
    assert not replace(state, awaiting="1:1:stage").expects(look)
    assert not replace(state, phase=Phase.ABORTING).expects(look)


def test_wake_up_times_are_derived_from_the_stage_and_the_window() -> None:
    state = fresh(phase=Phase.PROGRESSING, window_start=100.0, final_look_at=700.0)
    watched = state.scheduled(now=50.0, interval=60.0, watching=True, poll=10.0)
    assert (watched.next_look_at, watched.next_due_at) == (160.0, 160.0)
    looked = replace(state, last_look_at=400.0).scheduled(50.0, 60.0, True, 10.0)
    assert looked.next_look_at == 460.0
    unwatched = state.scheduled(50.0, 60.0, watching=False, poll=10.0)
    assert (unwatched.next_look_at, unwatched.next_due_at) == (None, 700.0)
    timed = replace(state, final_look_at=None, stage_ends_at=130.0)
    assert timed.scheduled(50.0, 60.0, True, 10.0).next_due_at == 130.0
    waiting = replace(state, awaiting="1:0:stage").scheduled(50.0, 60.0, True, 10.0)
    assert (waiting.next_look_at, waiting.next_due_at) == (None, 60.0)
    paused = replace(state, phase=Phase.PAUSED).scheduled(50.0, 60.0, False, 10.0)
    assert paused.final_look_at == 700.0  # kept for the resume
    assert paused.next_due_at == 110.0  # no look, but the platform is watched every interval
    done = replace(state, phase=Phase.PROMOTED, stage_ends_at=5.0).scheduled(50.0, 60.0, True, 10.0)
    assert (done.next_due_at, done.final_look_at, done.stage_ends_at) == (None, None, None)


@given(st.integers(0, 10**6), st.integers(0, 10**3), st.sampled_from(Awaited))
def test_an_awaiting_token_reads_back_from_the_string_stored(
    attempt: int, stage: int, awaited: Awaited
) -> None:
    token = AwaitToken(attempt, stage, awaited)
    assert AwaitToken.parse(token.format()) == token
    assert replace(fresh(), awaiting=token.format()).awaited == token


def test_the_awaiting_token_keeps_the_form_stored_by_earlier_releases() -> None:
    assert AwaitToken(2, 3, Awaited.ROLLBACK).format() == "2:3:rollback"
    assert AwaitToken.parse("1:0:stage") == AwaitToken(1, 0, Awaited.STAGE)
    assert fresh().awaited is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:0", "no awaiting token"),
        ("1:0:stage:extra", "no awaiting token"),
        ("one:0:stage", "no awaiting token"),
        ("1:-1:stage", "no awaiting token"),
        ("1:0:rollbacks", "awaits 'rollbacks', not one of stage, promote, rollback, repair"),
    ],
)
def test_a_string_that_is_no_awaiting_token_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AwaitToken.parse(text)
