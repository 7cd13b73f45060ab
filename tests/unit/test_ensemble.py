"""Greedy ensemble selection, the assembled soft vote, and its export with parity."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keel.config import ProjectConfig
from keel.data.triage import TriageOptions, triage
from keel.evaluation.metrics import metric_value
from keel.exporting.onnx_convert import convert_pipeline
from keel.exporting.parity import check_parity
from keel.training.ensemble import assemble, blend, select_weights
from keel.training.fit import predict
from keel.training.prepare import prepare
from keel.training.search import SearchSettings, refit, search


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (3, 60), elements=st.floats(-5, 5)),
    arrays(np.float64, 60, elements=st.floats(-5, 5)),
)
def test_selection_weights_sum_to_one_and_never_lose_to_the_best_member(members: np.ndarray, y: np.ndarray) -> None:
    predictions = {name: members[i] for i, name in enumerate(("a", "b", "c"))}
    weights = select_weights(predictions, y, "rmse", greater_is_better=False)
    assert abs(sum(weights.values()) - 1) < 1e-9 and all(w > 0 for w in weights.values())
    best_single = min(metric_value("rmse", y, p) for p in predictions.values())
    assert metric_value("rmse", y, blend(predictions, weights)) <= best_single + 1e-9


def test_a_useless_member_gets_little_weight(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 500)
    good = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(scale=0.8, size=500))))
    noise = rng.uniform(size=500)
    predictions = {f: np.column_stack([1 - p, p]) for f, p in (("good", good), ("noise", noise))}
    weights = select_weights(predictions, y, "roc_auc", greater_is_better=True)
    assert weights["good"] >= 0.9  # noise may break a tie or two on the rows it is weighed on


@pytest.fixture
def data(rng: np.random.Generator):
    n = 2000
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)})
    signal = frame["x"] + np.sin(3 * frame["z"]) + (frame["c"] == "a") + rng.normal(scale=0.8, size=n)
    frame["y"] = np.where(signal > 0.5, "yes", "no")
    config = ProjectConfig(
        name="m",
        data=Path("d.parquet"),
        target="y",
        train={"families": ["linear", "lightgbm"]},
        split={"strategy": "stratified"},  # a validation split (below 5,000 rows triage advises k-fold)
    )
    return prepare(frame, config, "synthetic", triage(frame, TriageOptions(target="y")))


def test_the_assembled_vote_is_the_blend_and_exports_with_parity(data, tmp_path: Path) -> None:
    options = SearchSettings(f"sqlite:///{tmp_path / 'optuna.db'}", "m|test|s1", seed=1, threads=1)
    searched = {
        family: search(family, data, data.valid, data.search_train, time.monotonic() + 2, options)
        for family in ("linear", "lightgbm")
    }
    for result in searched.values():  # the best trial's validation predictions are kept
        assert result.predictions is not None and result.predictions.shape == (len(data.valid), 2)
        assert metric_value("roc_auc", data.y[data.valid], result.predictions) == pytest.approx(result.best_value)
    weights = {"linear": 0.4, "lightgbm": 0.6}
    members = [
        (f, refit(f, searched[f].best_params, data, data.search_train, data.valid, options).pipeline, w)
        for f, w in weights.items()
    ]
    model = assemble(members, classification=True)
    each = {f: predict(pipeline, data, data.test) for f, pipeline, _ in members}
    np.testing.assert_allclose(predict(model, data, data.test), blend(each, weights), atol=1e-12)
    graph, schema = convert_pipeline(model, data.schema, classification=True)
    parity = check_parity(model, graph, schema, data.rows(data.test), classification=True, tolerance=1e-5)
    assert parity.passed, parity


def test_text_encoder_families_stay_out_of_the_ensemble(data) -> None:
    """An ensemble is exported as one scikit-learn graph, so a transformer family never joins
    one. Here linear and embeddings each know half of the rows, so a vote of the two would be
    chosen; with embeddings left out, one family remains and there is no ensemble."""
    from keel.api.train import _ensemble
    from keel.training.search import SearchResult

    rows = data.search_train if data.valid is None else data.valid
    truth = np.eye(2)[data.y[rows]]
    half = (np.arange(len(rows)) % 2 == 0)[:, None]
    confident, unsure = 0.95 * truth + 0.025, np.full_like(truth, 0.5)
    predictions = {"linear": np.where(half, confident, unsure), "embeddings": np.where(half, unsure, confident)}
    searched = {f: SearchResult(f, "study", {}, 0.9, 1, 1, 0.1, p) for f, p in predictions.items()}
    weights = select_weights(predictions, data.y[rows], data.plan.metric, data.plan.greater_is_better)
    assert set(weights) == {"linear", "embeddings"}  # without the rule, these two would be assembled
    assert _ensemble(searched, [], data, lambda _message: None) is None
