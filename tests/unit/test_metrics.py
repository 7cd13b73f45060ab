"""The fast binary ROC AUC agrees with scikit-learn's on any scores, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from keel.evaluation.metrics import binary_auc, metric_value


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, 1.0]) | st.floats(0, 1)),
        min_size=2,
        max_size=200,
    )
)
def test_binary_auc_equals_scikit_learns(rows: list[tuple[int, float]]) -> None:
    y = np.array([label for label, _ in rows])
    score = np.array([value for _, value in rows])
    if len(set(y)) < 2:
        with pytest.raises(ValueError, match="Only one class present"):
            binary_auc(y, score)
        return
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_metric_value_uses_it_for_two_class_probabilities(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    proba = np.column_stack([1 - p, p])
    assert metric_value("roc_auc", y, proba) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def sklearn_suite(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The classification suite as scikit-learn computes it (what keel's numpy code replaced)."""
    from sklearn.metrics import accuracy_score, average_precision_score, log_loss, precision_recall_fscore_support

    from keel.evaluation.metrics import normalized

    k = proba.shape[1]
    labels, predicted = np.arange(k), proba.argmax(axis=1)
    out = {"accuracy": accuracy_score(y, predicted)}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, predicted, labels=labels, average=average, zero_division=0)
        out |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    out["log_loss"] = log_loss(y, normalized(proba), labels=labels)
    if len(np.unique(y)) == k:
        onehot = np.eye(k)[y]
        if k == 2:
            out["f1"] = precision_recall_fscore_support(y, predicted, average="binary", zero_division=0)[2]
            out |= {"roc_auc": roc_auc_score(y, proba[:, 1]), "pr_auc": average_precision_score(y, proba[:, 1])}
        else:
            out["roc_auc"] = roc_auc_score(y, proba, multi_class="ovr", labels=labels)
            out["pr_auc"] = average_precision_score(onehot, proba, average="macro")
    return out


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(2, 4),
    n=st.integers(1, 60),
    coarse=st.booleans(),  # scores on a coarse grid: many ties, and rows with equal top classes
    seed=st.integers(0, 2**32 - 1),
)
def test_the_classification_suite_equals_scikit_learns(k: int, n: int, coarse: bool, seed: int) -> None:
    from keel.evaluation.suite import scalar_metrics

    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    raw = rng.integers(0, 3, (n, k)) + 0.5 if coarse else rng.random((n, k)) + 1e-3
    proba = raw / raw.sum(axis=1, keepdims=True)
    ours, theirs = scalar_metrics(y, proba), sklearn_suite(y, proba)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name
    if len(np.unique(y)) < k:
        assert np.isnan(ours["roc_auc"]) and np.isnan(ours["pr_auc"])
