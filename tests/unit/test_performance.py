"""Performance in production: the label-free estimate agrees with the truth when the model is
calibrated, measured decay is found with its interval, and the domain classifier sees a
change in how columns move together that no single column shows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from keel.evaluation.metrics import estimated_metrics, expected_auc
from keel.monitoring.domain import DomainLimits, chance_auc, domain_check
from keel.monitoring.performance import LOG_TRUTH, Target, performance
from keel.schema import CATEGORICAL, LOG_LABEL, LOG_SCORE, NUMERIC


def calibrated(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(0.6, 0.6, size=n)
    return p, (rng.random(n) < p).astype(np.int64)


def test_expected_auc_matches_the_realised_auc_of_calibrated_scores() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        p, y = calibrated(20_000, rng)
        assert abs(expected_auc(p) - roc_auc_score(y, p)) < 0.01
        assert abs(estimated_metrics("binary", p)["accuracy"] - np.mean((p > 0.5) == y)) < 0.01


@given(st.lists(st.floats(0, 1), min_size=2, max_size=60))
@settings(max_examples=60, deadline=None)
def test_expected_auc_equals_the_pairwise_definition(values: list[float]) -> None:
    p = np.array(values)
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            w = p[i] * (1 - p[j])
            den += w
            num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    got = expected_auc(p)
    if den > 1e-12:
        assert got == pytest.approx(num / den, abs=1e-9)


def binary_target(reference: float) -> Target:
    return Target("binary", "roc_auc", True, ["0", "1"], {"roc_auc": reference, "accuracy": 0.8}, drop=0.05)


def log_table(p: np.ndarray, truth: list | None) -> pa.Table:
    cols = {LOG_SCORE: pa.array(p), LOG_LABEL: pa.array(np.where(p > 0.5, "1", "0"))}
    if truth is not None:
        cols[LOG_TRUTH] = pa.array(truth)
    return pa.table(cols)


def test_measured_performance_and_decay() -> None:
    rng = np.random.default_rng(5)
    p, y = calibrated(5000, rng)
    good = performance(binary_target(roc_auc_score(y, p)), log_table(p, y.tolist()))
    assert good is not None and good.value == pytest.approx(roc_auc_score(y, p))
    assert good.low < good.value < good.high and not good.decayed
    noisy = np.where(rng.random(5000) < 0.3, 1 - y, y)  # labels the model no longer predicts well
    worse = performance(binary_target(roc_auc_score(y, p)), log_table(p, noisy.tolist()))
    assert worse is not None and worse.decayed and worse.high < worse.tolerated


def test_partial_labels_and_too_few() -> None:
    rng = np.random.default_rng(6)
    p, y = calibrated(1000, rng)
    truth = [int(v) if i % 4 == 0 else None for i, v in enumerate(y)]
    part = performance(binary_target(0.8), log_table(p, truth))
    assert part is not None and part.labelled == 250 and part.value is not None
    few = performance(binary_target(0.8), log_table(p, [int(y[0])] + [None] * 999))
    assert few is not None and few.value is None and few.estimated and "too few" in few.describe()


def test_multiclass_accuracy_and_unknown_labels() -> None:
    from keel.errors import MonitorError

    target = Target("multiclass", "log_loss", False, ["a", "b", "c"], {"accuracy": 0.9})
    labels = np.array(["a", "b", "c", "a"] * 50, dtype=object)
    table = pa.table({LOG_SCORE: pa.array(np.full(200, 0.9)), LOG_LABEL: pa.array(labels), LOG_TRUTH: pa.array(labels)})
    result = performance(target, table)
    assert result is not None and result.metric == "accuracy" and result.value == 1.0
    assert result.estimated["accuracy"] == pytest.approx(0.9)
    bad = table.set_column(2, LOG_TRUTH, pa.array(np.array(["a", "z"] * 100, dtype=object)))
    with pytest.raises(MonitorError, match="z"):
        performance(target, bad)


def test_regression_decay_in_lower_is_better_metric() -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=2000)
    target = Target("regression", "rmse", False, None, {"rmse": 0.1}, drop=0.05)
    fine = performance(target, pa.table({LOG_SCORE: pa.array(y + rng.normal(0, 0.1, 2000)), LOG_TRUTH: pa.array(y)}))
    off = performance(target, pa.table({LOG_SCORE: pa.array(y + rng.normal(0, 0.3, 2000)), LOG_TRUTH: pa.array(y)}))
    assert fine is not None and not fine.decayed and not fine.estimated
    assert off is not None and off.decayed and off.low > off.tolerated


def correlated(n: int, rho: float, rng: np.random.Generator) -> pa.Table:
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return pa.table({"a": a, "b": b, "c": rng.choice(np.array(["x", "y"], dtype=object), n)})


KINDS = {"a": NUMERIC, "b": NUMERIC, "c": CATEGORICAL}


def test_domain_classifier_quiet_on_the_same_distribution() -> None:
    rng = np.random.default_rng(11)
    check = domain_check(correlated(5000, 0.8, rng), correlated(20_000, 0.8, rng), KINDS, DomainLimits())
    assert check is not None and check.status == "ok" and check.auc < check.chance
    assert check.chance == pytest.approx(chance_auc(5000, 5000, 0.001))


def test_domain_classifier_sees_a_joint_change_the_marginals_hide() -> None:
    """Same marginals (standard normal a and b), correlation 0.8 -> -0.8: only the joint moved."""
    rng = np.random.default_rng(12)
    check = domain_check(correlated(5000, 0.8, rng), correlated(5000, -0.8, rng), KINDS, DomainLimits())
    assert check is not None and check.status == "alert" and check.auc > 0.8
    assert {c["column"] for c in check.columns[:2]} == {"a", "b"}
    assert domain_check(correlated(30, 0.8, rng), correlated(30, 0.8, rng), KINDS, DomainLimits()) is None


def test_slices_keep_training_groups_and_show_which_group_moved() -> None:
    from keel.monitoring.slices import slice_drift, slice_profile

    rng = np.random.default_rng(21)
    n = 4000
    sex = rng.choice(np.array(["F", "M"], dtype=object), n)
    age = rng.uniform(20, 70, n)
    score = np.clip(rng.normal(0.3, 0.1, n), 0, 1)
    profile = slice_profile({"sex": (CATEGORICAL, sex), "age": (NUMERIC, age)}, score)
    assert set(profile["sex"]["groups"]) == {"F", "M"} and len(profile["age"]["edges"]) == 3

    now_sex = rng.choice(np.array(["F", "M", "X"], dtype=object), n, p=[0.45, 0.45, 0.1])
    now_score = np.clip(rng.normal(0.3, 0.1, n), 0, 1)
    now_score[now_sex == "F"] += 0.05  # only one group's predictions moved
    truth = (rng.random(n) < now_score).astype(int)
    table = pa.table({"sex": now_sex, "age": rng.uniform(20, 70, n), LOG_SCORE: now_score, LOG_TRUTH: truth})
    groups = {(g.column, g.group): g for g in slice_drift(profile, table, binary_target(0.7), 2.0)}
    assert groups[("sex", "F")].shifted and not groups[("sex", "M")].shifted
    assert groups[("sex", "X")].share_reference == 0 and groups[("sex", "X")].mean_reference is None
    assert groups[("sex", "F")].value is not None and groups[("sex", "F")].labelled == (now_sex == "F").sum()
    quartiles = [g for g in groups.values() if g.column == "age"]
    assert len(quartiles) == 4 and all(abs(g.share_current - 0.25) < 0.03 for g in quartiles)  # the stored edges
