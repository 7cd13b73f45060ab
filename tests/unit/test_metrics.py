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
