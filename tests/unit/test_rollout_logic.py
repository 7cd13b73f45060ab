"""The rollout's plan and its online checks: what they catch and how often they cry wolf."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import ConfigError
from keel.monitoring import online
from keel.profile import ColumnProfile
from keel.registry.rollout import CANARY, FULL, SHADOW, Step, parse_plan, step_elapsed


def test_a_plan_parses_into_steps_and_back() -> None:
    steps = parse_plan("shadow:10m, canary:5%:10m,canary:25%:90s,full")
    assert steps == [Step(SHADOW, 0.0, 600), Step(CANARY, 0.05, 600), Step(CANARY, 0.25, 90), Step(FULL)]
    assert parse_plan(",".join(s.token() for s in steps)) == steps
    assert [s.describe() for s in steps] == ["shadow 10m", "canary 5% 10m", "canary 25% 90s", "full"]


@given(
    st.lists(
        st.one_of(
            st.builds(lambda s: Step(SHADOW, 0.0, s), st.integers(1, 10_000)),
            st.builds(lambda p, s: Step(CANARY, p / 100, s), st.integers(1, 99), st.integers(1, 10_000)),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_plan_round_trips(steps: list[Step]) -> None:
    plan = [*steps, Step(FULL)]
    parsed = parse_plan(",".join(s.token() for s in plan))
    assert [(s.kind, round(s.share, 6), s.seconds) for s in parsed] == [
        (s.kind, round(s.share, 6), s.seconds) for s in plan
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "full",
        "shadow:10m",
        "canary:5:10m,full",
        "canary:0%:1m,full",
        "canary:100%:1m,full",
        "shadow:-1m,full",
        "full,shadow:1m",
        "ramp:1m,full",
        "shadow:10x,full",
    ],
)
def test_a_bad_plan_is_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_plan(text)
    assert "shadow:10m" in (error.value.hint or "")


def test_a_paused_step_does_not_age() -> None:
    state = {"status": "paused", "step_started": 100.0, "paused_seconds": 5.0, "paused_at": 120.0}
    assert step_elapsed(state, now=130.0) == pytest.approx(15.0)  # 30 s, less 5 paused before, less 10 now
    assert step_elapsed(state | {"status": "running"}, now=130.0) == pytest.approx(25.0)


def test_counters_add_up_across_a_server_restart() -> None:
    window = online.advance({}, {"canary": {"requests": 100}}, {"canary": {"requests": 150, "errors": 2}})
    assert window["canary"] == {"requests": 50, "errors": 2}
    restarted = online.advance(window, {"canary": {"requests": 150, "errors": 2}}, {"canary": {"requests": 30}})
    assert restarted["canary"]["requests"] == 80  # the restart's 30 are all new


def counts(requests: int, errors: int) -> dict[str, float]:
    return {"requests": requests - errors, "errors": errors}


def test_two_percent_errors_on_the_canary_fail_and_equal_rates_pass() -> None:
    alpha = online.looks_alpha(0.05, 100)
    bad = {"champion": counts(2000, 0), "canary": counts(600, 12)}
    assert not online.errors_check(bad, "canary", alpha, 100).passed
    same = {"champion": counts(2000, 20), "canary": counts(600, 6)}
    assert online.errors_check(same, "canary", alpha, 100).passed
    few = online.errors_check({"champion": counts(2000, 0), "canary": counts(30, 5)}, "canary", alpha, 100)
    assert few.passed and few.numbers["enough"] is False  # too little traffic: wait, do not judge


def test_the_errors_test_rejects_no_more_often_than_its_level_when_rates_are_equal() -> None:
    rng = np.random.default_rng(0)
    rejections = 0
    trials = 400
    for _ in range(trials):
        rate = rng.uniform(0.001, 0.05)
        window = {
            "champion": counts(3000, int(rng.binomial(3000, rate))),
            "canary": counts(1000, int(rng.binomial(1000, rate))),
        }
        rejections += not online.errors_check(window, "canary", 0.05, 100).passed
    assert rejections / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)


def histogram(latencies: np.ndarray, bounds: tuple[float, ...]) -> dict[str, float]:
    out = {f"le:{b}": float(np.sum(latencies <= b)) for b in bounds}
    out["le:+Inf"] = float(len(latencies))
    return out


def test_latency_fails_only_a_challenger_slower_than_the_budget_and_the_champion() -> None:
    from keel.serving.metrics import latency_buckets

    bounds = latency_buckets(0.01)
    rng = np.random.default_rng(1)
    fast = rng.exponential(0.001, 2000)
    slow = rng.exponential(0.006, 800)  # about 19% over 10 ms
    alpha = 0.001
    window = {"champion": histogram(fast, bounds), "canary": histogram(slow, bounds)}
    assert not online.latency_check(window, "canary", 0.01, alpha, 100).passed
    busy = {"champion": histogram(slow[:400] * 1.1, bounds), "canary": histogram(slow[400:], bounds)}
    assert online.latency_check(busy, "canary", 0.01, alpha, 100).passed  # the machine, not the model
    quick = {"champion": histogram(fast, bounds), "canary": histogram(fast[:800], bounds)}
    assert online.latency_check(quick, "canary", 0.01, alpha, 100).passed


def test_the_p99_is_interpolated_within_its_bucket() -> None:
    hist = {"le:0.001": 50.0, "le:0.002": 90.0, "le:0.005": 100.0, "le:+Inf": 100.0}
    assert online.quantile(hist, 0.5) == pytest.approx(0.001)
    assert online.quantile(hist, 0.99) == pytest.approx(0.002 + 0.003 * 0.9)
    assert online.quantile({"le:+Inf": 0.0}, 0.99) is None


def test_agreement_catches_a_shadow_that_disagrees_and_passes_a_close_one() -> None:
    rng = np.random.default_rng(2)
    labels = rng.choice(["a", "b"], 1000)
    champion = {"label": labels, "score": rng.uniform(size=1000)}
    flipped = np.where(labels == "a", "b", "a")
    close = {"label": np.where(rng.uniform(size=1000) < 0.05, flipped, labels), "score": champion["score"]}
    far = {"label": np.where(rng.uniform(size=1000) < 0.4, flipped, labels), "score": champion["score"]}
    assert online.agreement_check("binary", champion, close, 1.0, 0.001, 100, 0.2, 0.5).passed
    assert not online.agreement_check("binary", champion, far, 1.0, 0.001, 100, 0.2, 0.5).passed
    values = rng.normal(size=1000)
    assert online.agreement_check(
        "regression", {"score": values}, {"score": values + 0.1}, 1.0, 0.001, 100, 0.2, 0.5
    ).passed
    assert not online.agreement_check(
        "regression", {"score": values}, {"score": values + 1.0}, 1.0, 0.001, 100, 0.2, 0.5
    ).passed


def score_profile(mean: float, std: float, count: int = 2000) -> ColumnProfile:
    return ColumnProfile("keel_score", "numeric", count, [1.0, 0.0], [], [], mean, std)


def test_score_drift_fails_a_challenger_whose_scores_moved_away_from_the_champions() -> None:
    rng = np.random.default_rng(3)
    profile = score_profile(0.3, 0.2)
    same = pa.chunked_array([rng.normal(0.3, 0.2, 1000)])
    shifted = pa.chunked_array([rng.normal(0.45, 0.2, 1000)])  # 0.75 sd
    assert online.score_drift_check(profile, same, profile, same, 0.001, 100, 0.25).passed
    assert not online.score_drift_check(profile, shifted, profile, same, 0.001, 100, 0.25).passed
    # the traffic moved and both models followed: not the challenger's fault
    assert online.score_drift_check(profile, shifted, profile, shifted, 0.001, 100, 0.25).passed
    # without the champion's scores on the same traffic there is nothing to compare with: wait
    alone = online.score_drift_check(profile, shifted, profile, shifted[:10], 0.001, 100, 0.25)
    assert alone.passed and alone.numbers["enough"] is False


def test_the_metric_check_rolls_back_a_worse_model_and_keeps_an_equal_one() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 1500)
    good = np.clip(y * 0.6 + rng.uniform(0, 0.4, 1500), 0, 1)
    worse = np.where(rng.uniform(size=1500) < 0.5, rng.uniform(size=1500), good)

    def proba(p: np.ndarray) -> np.ndarray:
        return np.column_stack([1 - p, p])

    champion = (y[:1000], proba(good[:1000]))
    assert online.metric_check("roc_auc", True, champion, (y[1000:], proba(good[1000:])), 0.001, 30).passed
    failed = online.metric_check("roc_auc", True, champion, (y[1000:], proba(worse[1000:])), 0.001, 30)
    assert not failed.passed and failed.numbers["difference"] < 0
    waiting = online.metric_check("roc_auc", True, champion, (y[:10], proba(good[:10])), 0.001, 30)
    assert waiting.passed and waiting.numbers["enough"] is False
