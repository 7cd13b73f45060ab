"""ONNX conversion and parity for every family keel trains, on synthetic data (no MLflow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.exporting.converters import float32_floor
from keel.exporting.onnx_convert import convert_pipeline
from keel.exporting.parity import check_parity, measure_latency
from keel.features.build import build_pipeline, categorical_indices
from keel.planning.search_space import default_params
from keel.schema import CATEGORICAL, NUMERIC, Column, InputSchema, arrays_to_frame
from keel.training.families import make_estimator


def lgbm(classification: bool) -> object:
    return make_estimator("lightgbm", classification, {}, seed=1, threads=1).set_params(n_estimators=100)


SCHEMA = InputSchema((Column("num-a", NUMERIC), Column("num b", NUMERIC), Column("cat", CATEGORICAL)))


def data(rng: np.random.Generator, n: int = 600) -> tuple[dict[str, np.ndarray], np.ndarray]:
    a = rng.normal(size=n).astype(np.float32)
    a[::17] = np.nan
    b = rng.uniform(0, 100, size=n).astype(np.float32)
    cat = rng.choice(np.array(["red", "green", "blue", ""], dtype=object), size=n)
    signal = np.nan_to_num(a) + (cat == "red") * 1.5 + b / 50
    return SCHEMA.frame_to_arrays(pd.DataFrame({"num-a": a, "num b": b, "cat": cat})), signal


@pytest.mark.parametrize("family", ["baseline", "linear", "random_forest", "lightgbm", "xgboost"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_family_exports_with_parity(rng: np.random.Generator, family: str, task: str) -> None:
    arrays, signal = data(rng)
    if task == "binary":
        y = (signal > np.median(signal)).astype(np.int64)
    elif task == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [0.33, 0.66])).astype(np.int64)
    else:
        y = signal * 1000.0
    classification = task != "regression"
    params = default_params(family, task) | ({"n_estimators": 50} if family == "random_forest" else {})
    estimator = make_estimator(family, classification, params, seed=1, threads=1)
    if family == "xgboost":
        estimator.set_params(n_estimators=100, early_stopping_rounds=None)
    elif family == "lightgbm":
        estimator.set_params(n_estimators=100)
    pipeline = build_pipeline(SCHEMA, estimator, scale=family == "linear")
    pipeline.fit(arrays_to_frame(SCHEMA, arrays), y)
    model, schema = convert_pipeline(pipeline, SCHEMA, classification)
    assert [c.input_name for c in schema.columns] == ["num_a", "num_b", "cat"]
    parity = check_parity(pipeline, model, schema, arrays, classification, tolerance=1e-5)
    assert parity.passed, parity
    assert parity.rows == 600
    if classification:
        assert parity.label_agreement == 1.0


def test_parity_catches_a_graph_that_is_not_the_model(rng: np.random.Generator) -> None:
    arrays, signal = data(rng)
    y = (signal > np.median(signal)).astype(np.int64)
    frame = arrays_to_frame(SCHEMA, arrays)
    first = build_pipeline(SCHEMA, lgbm(True)).fit(frame, y)
    other = build_pipeline(SCHEMA, lgbm(True)).fit(frame, 1 - y)
    model, schema = convert_pipeline(other, SCHEMA, True)
    parity = check_parity(first, model, schema, arrays, True, tolerance=1e-5)
    assert not parity.passed
    assert parity.max_diff > 0.5


def test_latency_is_measured(rng: np.random.Generator) -> None:
    arrays, signal = data(rng, n=200)
    pipeline = build_pipeline(SCHEMA, lgbm(False))
    pipeline.fit(arrays_to_frame(SCHEMA, arrays), signal)
    model, schema = convert_pipeline(pipeline, SCHEMA, False)
    latency = measure_latency(model, schema, arrays, repeats=20)
    assert 0 < latency.single_row_p50_ms <= latency.single_row_p99_ms
    assert latency.batch_rows == 200 and latency.batch_rows_per_s > 0


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.floats(allow_nan=False, width=32))
def test_float32_floor_keeps_every_float32_comparison(threshold: float, x: float) -> None:
    floor = float32_floor(threshold)
    assert np.float32(floor) == floor  # representable in the graph
    assert (x <= threshold) == (x <= floor)


def test_lightgbm_regression_on_neighbouring_float32_values_keeps_parity(rng: np.random.Generator) -> None:
    """Neighbouring float32 values, as in california_housing's median_income (3.0489998 and
    3.049): LightGBM splits at their midpoint, which nearest rounding turns into the upper one."""
    n = 4000
    values = rng.uniform(0, 15, size=(n, 4)).round(2).astype(np.float32)
    values[::2] = np.nextafter(values[::2], np.float32(-np.inf))
    frame = pd.DataFrame({f"x{i}": values[:, i] for i in range(4)})
    schema = InputSchema(tuple(Column(name, NUMERIC) for name in frame.columns))
    arrays = schema.frame_to_arrays(frame)
    y = (frame.sum(axis=1).to_numpy() * 1e5 + rng.normal(size=n) * 1e4).astype(np.float64)
    estimator = make_estimator("lightgbm", False, {}, seed=1, threads=1)
    estimator.set_params(n_estimators=300, num_leaves=63, min_child_samples=2, learning_rate=0.1)
    pipeline = build_pipeline(schema, estimator).fit(arrays_to_frame(schema, arrays), y)
    model, schema = convert_pipeline(pipeline, schema, False)
    parity = check_parity(pipeline, model, schema, arrays, False, tolerance=1e-5)
    assert parity.passed, parity


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_lightgbm_native_categorical_splits_export_with_parity(rng: np.random.Generator, task: str) -> None:
    """Ordinal codes and LightGBM's categorical splits; an unseen category scores as missing in both."""
    arrays, signal = data(rng)
    classification = task == "binary"
    y = (signal > np.median(signal)).astype(np.int64) if classification else signal * 1000.0
    estimator = lgbm(classification)
    pipeline = build_pipeline(SCHEMA, estimator, native_categorical=True)
    pipeline.fit(arrays_to_frame(SCHEMA, arrays), y, model__categorical_feature=categorical_indices(SCHEMA))
    assert '"decision_type": "=="' in json.dumps(estimator.booster_.dump_model())  # categorical splits were made
    model, schema = convert_pipeline(pipeline, SCHEMA, classification)
    unseen = dict(arrays, cat=arrays["cat"].copy())
    unseen["cat"][:40] = "purple"
    parity = check_parity(pipeline, model, schema, unseen, classification, tolerance=1e-5)
    assert parity.passed, parity


@pytest.mark.parametrize("classification", [True, False])
def test_output_sensitivity_finds_the_column_the_model_uses(rng: np.random.Generator, classification: bool) -> None:
    from keel.exporting.importance import output_sensitivity

    arrays, _ = data(rng)
    signal = arrays["num b"] / 50  # only 'num b' carries the target
    y = (signal > np.median(signal)).astype(np.int64) if classification else signal * 1000.0
    pipeline = build_pipeline(SCHEMA, lgbm(classification)).fit(arrays_to_frame(SCHEMA, arrays), y)
    model, schema = convert_pipeline(pipeline, SCHEMA, classification)
    importance = output_sensitivity(model, schema, arrays, classification, seed=3)
    assert set(importance) == set(SCHEMA.names) and sum(importance.values()) == pytest.approx(1.0)
    assert importance["num b"] > 0.8, importance
    assert importance == output_sensitivity(model, schema, arrays, classification, seed=3)  # seeded
