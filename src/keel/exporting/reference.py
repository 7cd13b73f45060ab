"""What the monitor needs from export besides the profile: a sample of held-out input rows
(for its domain classifier) and the hold-out's label-free performance estimates (to set
the production estimates beside)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from keel.evaluation.metrics import estimated_metrics
from keel.exporting.feed import Feeder
from keel.exporting.runtime import make_session
from keel.schema import InputSchema


def reference_sample(holdout: Path, schema: InputSchema, rows: int, seed: int = 0) -> bytes:
    """Up to ``rows`` held-out rows (input columns only), drawn at random, as Parquet bytes."""
    import pyarrow.parquet as pq

    table = pq.read_table(holdout, columns=schema.names)
    if table.num_rows > rows:
        pick = np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False))
        table = table.take(pick)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def reference_estimates(
    model: bytes, schema: InputSchema, arrays: dict[str, np.ndarray], task: str, feeder: Feeder | None = None
) -> dict[str, float]:
    """The label-free estimates (keel.monitoring.performance) on held-out rows, scored by the
    exported graph: how far they sit from the measured test metrics shows the calibration."""
    if task == "regression":
        return {}
    outputs = (feeder or Feeder(schema)).run(make_session(model), arrays)
    proba = outputs[1]
    score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return estimated_metrics(task, score.astype(np.float64))


PERFORMANCE_ROWS = 20_000  # hold-out rows scored for the reference performance (tabular graphs)
ESTIMATE_WINDOWS = 10  # consecutive held-out windows the label-free estimates are checked on


def reference_performance(
    model: bytes,
    schema: InputSchema,
    holdout: Any,
    meta: dict[str, Any],
    *,
    rows: int = PERFORMANCE_ROWS,
    feeder: Feeder | None = None,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """What the monitor judges decay against: each watched metric (keel.evaluation.watched) of
    the exported graph on up to ``rows`` hold-out rows (``holdout``: the run's hold-out table) with its bootstrap standard error (the
    reference is an estimate too), and how far the label-free estimates were from the measured
    metrics on ``ESTIMATE_WINDOWS`` consecutive held-out windows."""
    from keel.evaluation.watched import estimate_error, watched_bootstrap
    from keel.schema import NUMERIC

    task, metric, threshold = meta["plan"]["task"], meta["plan"]["metric"], meta.get("threshold")
    table = holdout.slice(0, rows)
    if "keel_target" not in table.column_names or table.num_rows < 30:
        return {}
    arrays = {}
    for column in schema.columns:
        values = table.column(column.name).to_numpy(zero_copy_only=False)
        arrays[column.name] = values.astype(np.float32) if column.kind == NUMERIC else values.astype(object)
    outputs = (feeder or Feeder(schema)).run(make_session(model), arrays)
    target = table.column("keel_target").to_numpy(zero_copy_only=False)
    if task == "regression":
        y, predicted = target.astype(np.float64), outputs[0].astype(np.float64).ravel()
        score = predicted
    else:
        y, proba = target.astype(np.int64), outputs[1].astype(np.float64)
        predicted = proba if task == "binary" else proba.argmax(axis=1)
        score = proba[:, 1] if task == "binary" else proba.max(axis=1)
    measured = watched_bootstrap(task, metric, y, predicted, threshold, resamples=resamples, seed=seed)
    right = (predicted == y).astype(np.int64) if task == "multiclass" else y
    windows = min(ESTIMATE_WINDOWS, len(y) // 200)
    return {
        "threshold": threshold,
        "rows": len(y),
        "watched": {name: m.to_dict() for name, m in measured.items()},
        "estimate_error": estimate_error(task, right, score, windows, threshold),
    }
