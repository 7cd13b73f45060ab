"""The monitoring statistics hold their nominal false-alarm rates when both sides are samples,
decay is judged on the metrics users watch, the label-free estimate is withheld when it is
known to be unreliable, and corrupted labels are told from honest ones.

Rates here are checked loosely on synthetic draws; bench/false_alarms.py measures them on
the shared data sets (docs/monitoring.md has the table)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from keel.evaluation.gate import baseline_check
from keel.evaluation.labels import label_quality_check, self_agreement
from keel.evaluation.watched import estimate_error, watched_bootstrap, watched_values
from keel.monitoring.domain import auc_sd
from keel.monitoring.drift import ColumnDrift, Thresholds, drift_rank, family_alpha, homogeneity_p, prediction_shift
from keel.monitoring.embedding import weighted_chi2_tail
from keel.monitoring.performance import LOG_TRUTH, Target, performance
from keel.profile import ColumnProfile
from keel.schema import LOG_LABEL, LOG_SCORE


def test_the_homogeneity_test_holds_its_size_on_sparse_categories() -> None:
    """100-row windows over 50 categories (most bins nearly empty): the pooled test stays near
    its nominal 1% where an unpooled one sees chance in every empty bin."""
    rng = np.random.default_rng(0)
    shares = rng.dirichlet(np.full(50, 0.3))
    p_values = []
    for _ in range(300):
        reference = rng.multinomial(3000, shares)
        window = rng.multinomial(100, shares)
        p_values.append(homogeneity_p(reference, window)[0])
    assert np.mean(np.array(p_values) < 0.01) <= 0.03
    assert np.mean(np.array(p_values) < 0.05) <= 0.09
    moved = rng.multinomial(100, np.roll(shares, 1))  # every category takes its neighbour's share
    assert homogeneity_p(rng.multinomial(3000, shares), moved)[0] < 1e-6


def score_profile(scores: np.ndarray) -> ColumnProfile:
    return ColumnProfile(
        LOG_SCORE, "numeric", len(scores), [1.0, 0.0], mean=float(scores.mean()), std=float(scores.std())
    )


def test_the_prediction_chart_counts_the_reference_error_too() -> None:
    """The issue's case: a reference mean from 2,000 hold-out rows and quiet windows of 2,000 rows.
    Treating the reference as exact alarms far more often than 1 in 20 at 2 sigma."""
    rng = np.random.default_rng(1)
    old = new = 0
    trials = 300
    for _ in range(trials):
        profile = score_profile(rng.beta(2, 5, 2000))
        window = pa.chunked_array([rng.beta(2, 5, 2000)])
        shift = prediction_shift(profile, window, 2.0, alert_alpha=0.05)
        assert shift is not None and shift.reference_rows == 2000
        new += abs(shift.sigmas) > 2
        old += abs((shift.mean_current - profile.mean) / (profile.std / math.sqrt(2000))) > 2  # type: ignore[operator]
    assert new / trials <= 0.08 < old / trials


def test_the_family_wise_share_and_ranking() -> None:
    assert family_alpha(0.01, 30 * 7) == pytest.approx(0.01 / 210)
    assert Thresholds().alert_alpha <= Thresholds().alpha
    assert auc_sd(5000, 5000) == pytest.approx(math.sqrt(5001 / (12 * 2500 * 2500)))

    def column(name: str, value: float, importance: float) -> ColumnDrift:
        return ColumnDrift(name, "numeric", 100, value, 0.1, 0.01, "drift", 1e-6, 0, 0, importance=importance)

    ranked = sorted([column("a", 0.01, 0.0), column("b", 0.2, 0.0), column("c", 0.05, 0.5)], key=drift_rank)
    assert [c.column for c in ranked] == ["c", "b", "a"]  # importance ties at 0: most drifted first


def test_the_weighted_chi_square_tail_matches_simulation() -> None:
    rng = np.random.default_rng(2)
    weights = np.r_[5.0, 2.0, rng.uniform(0, 0.3, 60)]
    draws = (rng.standard_normal((200_000, len(weights))) ** 2) @ weights
    for q in (0.9, 0.99, 0.999):
        value = float(np.quantile(draws, q))
        p_value, _ = weighted_chi2_tail(value, weights, 0.001)
        assert p_value == pytest.approx(1 - q, rel=0.25)


def calibrated(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(0.6, 0.6, size=n)
    return p, (rng.random(n) < p).astype(np.int64)


def test_watched_metrics_at_the_threshold() -> None:
    rng = np.random.default_rng(3)
    p, y = calibrated(3000, rng)
    values = watched_values("binary", "roc_auc", y, np.column_stack([1 - p, p]), threshold=0.7)
    assert values["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert values["precision"] == pytest.approx(precision_score(y, p >= 0.7))
    assert values["recall"] == pytest.approx(recall_score(y, p >= 0.7))
    assert values["accuracy"] == pytest.approx(np.mean((p >= 0.7) == y))
    measured = watched_bootstrap("binary", "roc_auc", y, np.column_stack([1 - p, p]), 0.7, resamples=100)
    assert all(m.se > 0 and m.low <= m.value <= m.high for m in measured.values())
    regression = watched_values("regression", "r2", y.astype(float), p)
    assert set(regression) == {"r2", "rmse", "mae"}


def binary_target(measured: dict, **kwargs) -> Target:
    return Target("binary", "roc_auc", True, ["0", "1"], {}, measured_reference=measured, **kwargs)


def log_table(p: np.ndarray, truth: np.ndarray | None) -> pa.Table:
    cols = {LOG_SCORE: pa.array(p), LOG_LABEL: pa.array(np.where(p >= 0.5, "1", "0"))}
    if truth is not None:
        cols[LOG_TRUTH] = pa.array(truth.astype(str))
    return pa.table(cols)


def test_accuracy_decay_is_found_when_the_ranking_holds() -> None:
    """The issue's case: the scores fall (the model calls almost everything negative) while the
    ranking, and so ROC AUC, is unchanged; accuracy drops and that is decay."""
    rng = np.random.default_rng(4)
    p, y = calibrated(4000, rng)
    reference = watched_bootstrap("binary", "roc_auc", y[:2000], np.column_stack([1 - p[:2000], p[:2000]]))
    target = binary_target({k: v.to_dict() for k, v in reference.items()}, alert_alpha=0.001)
    quiet = performance(target, log_table(p[2000:], y[2000:]))
    assert quiet is not None and not quiet.decayed and quiet.watched[0].metric == "roc_auc"
    squashed = p[2000:] * 0.2  # same order, every row now under 0.5
    window = performance(target, log_table(squashed, y[2000:]))
    assert window is not None and window.decayed
    verdicts = {w.metric: w.decayed for w in window.watched}
    assert not verdicts["roc_auc"] and verdicts["accuracy"] and verdicts["recall"]
    assert "accuracy" in window.describe() and "DECAYED" in window.describe()


def test_the_estimate_is_withheld_under_shift_or_when_it_was_off() -> None:
    rng = np.random.default_rng(5)
    p, _ = calibrated(1000, rng)
    good = performance(
        binary_target({}, estimate_error={"accuracy": {"mean_abs": 0.01, "windows": 10}}), log_table(p, None)
    )
    assert good is not None and set(good.estimated) == {"accuracy", "roc_auc"} and "off by 0.010" in good.describe()
    shifted = performance(binary_target({}), log_table(p, None), shifted="the domain classifier tells them apart")
    assert shifted is not None and not shifted.estimated and "domain classifier" in shifted.estimate_hidden
    off = binary_target({}, estimate_error={"accuracy": {"mean_abs": 0.12, "windows": 10}})
    unreliable = performance(off, log_table(p, None))
    assert unreliable is not None and not unreliable.estimated and "0.120" in unreliable.estimate_hidden


def test_estimate_error_on_held_out_windows() -> None:
    rng = np.random.default_rng(6)
    p, y = calibrated(4000, rng)
    honest = estimate_error("binary", y, p, 10)
    assert honest["accuracy"]["windows"] == 10 and honest["accuracy"]["mean_abs"] < 0.04
    overconfident = estimate_error("binary", y, np.clip(np.where(p > 0.5, p + 0.3, p - 0.3), 0, 1), 10)
    assert overconfident["accuracy"]["mean_abs"] > 0.1 and overconfident["accuracy"]["bias"] > 0.1


def labelled_rows(n: int, rng: np.random.Generator, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose label follows ``a`` and ``b`` (a different rule when ``shift``: concept drift)."""
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(np.array(["x", "y", "z"], dtype=object), n)}
    )
    logit = 3 * frame["a"] + (2 + shift) * frame["b"] * (1 - 2 * (shift > 0)) + (frame["c"] == "x") * 1.0
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(np.int64)


KINDS = {"a": "numeric", "b": "numeric", "c": "categorical"}


@pytest.mark.parametrize("flip", [0.2, 0.3, 0.5])  # 10% is caught about 2 times in 3 (bench/label_quality.py)
def test_flipped_labels_fail_the_label_quality_check(flip: float) -> None:
    rng = np.random.default_rng(7)
    golden, golden_y = labelled_rows(3000, rng)
    new, new_y = labelled_rows(3000, rng)
    noisy = np.where(rng.random(3000) < flip, 1 - new_y, new_y)
    check = label_quality_check(self_agreement(golden, KINDS, golden_y, 3000), self_agreement(new, KINDS, noisy, 3000))
    assert not check.passed and "look corrupted" in check.detail
    assert check.numbers["noise_estimate"] == pytest.approx(flip, abs=0.08)


def test_honest_labels_pass_even_when_the_world_changed() -> None:
    """Concept drift (the label's relation to ``b`` reversed) is not label noise: each set is
    judged from within."""
    rng = np.random.default_rng(8)
    golden, golden_y = labelled_rows(3000, rng)
    new, new_y = labelled_rows(3000, rng, shift=1.0)
    check = label_quality_check(self_agreement(golden, KINDS, golden_y, 3000), self_agreement(new, KINDS, new_y, 3000))
    assert check.passed and check.name == "label quality"


def test_a_constant_model_does_not_beat_the_baseline() -> None:
    rng = np.random.default_rng(9)
    p, y = calibrated(2000, rng)
    prior = [float(np.mean(y == 0)), float(np.mean(y == 1))]
    constant = np.tile(prior, (2000, 1))
    assert not baseline_check("roc_auc", True, y, constant, prior, resamples=50).passed
    assert baseline_check("roc_auc", True, y, np.column_stack([1 - p, p]), prior, resamples=50).passed
    values = rng.normal(size=500)
    assert not baseline_check("rmse", False, values, np.full(500, values.mean()), values.mean(), resamples=50).passed
