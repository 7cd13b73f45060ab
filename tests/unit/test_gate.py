"""The promotion gate's checks and the evaluation suite, on synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.evaluation.gate import improvement_check, latency_check, parity_check, slice_check
from keel.evaluation.suite import evaluate_slices, evaluate_suite, expected_calibration_error, slice_groups


def proba(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])


@pytest.fixture
def binary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = 3000
    y = rng.integers(0, 2, n)
    group = rng.choice(np.array(["a", "b"]), n, p=[0.8, 0.2])
    weak = 1 / (1 + np.exp(-(2 * y - 1) * 0.8 - rng.normal(scale=1.2, size=n)))
    strong = 1 / (1 + np.exp(-(2 * y - 1) * 1.6 - rng.normal(scale=1.2, size=n)))
    return y, group, proba(weak), proba(strong)


def test_a_clearly_better_challenger_passes_and_a_worse_one_fails(binary) -> None:
    y, _, weak, strong = binary
    better = improvement_check("roc_auc", True, y, weak, strong, min_improvement=0.01, resamples=100)
    assert better.passed and better.numbers["low"] > 0 and better.numbers["gain"] > 0.05
    worse = improvement_check("roc_auc", True, y, strong, weak, min_improvement=0.0, resamples=100)
    assert not worse.passed and worse.numbers["high"] < 0
    same = improvement_check("roc_auc", True, y, strong, strong, min_improvement=0.0, resamples=50)
    assert not same.passed  # no gain: the interval is not above zero


def test_lower_is_better_metrics_count_a_drop_as_a_gain(rng: np.random.Generator) -> None:
    y = rng.normal(size=500)
    near, far = y + rng.normal(scale=0.1, size=500), y + rng.normal(scale=1.0, size=500)
    assert improvement_check("rmse", False, y, far, near, min_improvement=0.1, resamples=100).passed


def test_a_slice_that_regresses_is_named(binary, rng: np.random.Generator) -> None:
    y, group, weak, strong = binary
    broken = strong.copy()
    in_b = group == "b"
    broken[in_b] = proba(rng.uniform(size=in_b.sum()))  # the challenger guesses on group b
    check = slice_check("roc_auc", True, y, weak, broken, {"group": group}, min_rows=50, max_regression=0.02)
    assert not check.passed and "group=b" in check.detail and "group=a" not in check.detail
    fine = slice_check("roc_auc", True, y, weak, strong, {"group": group}, min_rows=50, max_regression=0.02)
    assert fine.passed
    tiny = slice_check("roc_auc", True, y, weak, broken, {"group": group}, min_rows=10_000, max_regression=0.02)
    assert tiny.passed  # groups below min_rows are not judged


def test_parity_and_latency_checks() -> None:
    assert parity_check({"passed": True, "max_diff": 1e-7, "tolerance": 1e-5, "label_agreement": 1.0}).passed
    assert not parity_check({"passed": False, "max_diff": 0.1, "tolerance": 1e-5}).passed
    assert latency_check({"single_row_p50_ms": 0.05, "single_row_p99_ms": 0.1}, 10).passed
    assert not latency_check({"single_row_p50_ms": 12.0, "single_row_p99_ms": 20.0}, 10).passed


def test_suite_has_every_metric_with_intervals(binary) -> None:
    y, group, _, strong = binary
    suite = evaluate_suite(y, strong, resamples=30)
    for name in ("precision_macro", "recall_weighted", "f1_macro", "roc_auc", "pr_auc", "log_loss", "brier"):
        assert suite.low[name] <= suite.metrics[name] <= suite.high[name], name
    assert "calibration_error" in suite.metrics
    assert np.sum(suite.confusion) == len(y)
    slices = evaluate_slices("roc_auc", y, strong, {"group": slice_groups(group, False)}, resamples=20)
    assert [g.group for g in slices.groups] == ["a", "b"]
    assert set(slices.fairness["group"]) == {"demographic_parity_difference", "equalized_odds_difference"}


def test_regression_suite_reports_residuals(rng: np.random.Generator) -> None:
    y = rng.normal(size=400) * 10
    suite = evaluate_suite(y, y + 1.0, resamples=20)
    assert suite.metrics["residual_mean"] == pytest.approx(-1.0)
    assert suite.metrics["mae"] == pytest.approx(1.0) and suite.confusion is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=5, max_size=200), st.integers(0, 2**31 - 1))
def test_calibration_error_is_between_zero_and_one(p: list[float], seed: int) -> None:
    y = np.random.default_rng(seed).integers(0, 2, len(p))
    assert 0.0 <= expected_calibration_error(y, proba(np.array(p))) <= 1.0


def test_numeric_slices_are_quartile_ranges() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, np.nan])
    groups = slice_groups(values, True)
    assert groups[-1] == "(missing)" and len(set(groups[:-1])) == 4
    assert groups[0].startswith("[-inf")
