"""What the monitor needs from export besides the profile: a sample of held-out input rows
(for its domain classifier) and the hold-out's label-free performance estimates (to set
the production estimates beside)."""

from __future__ import annotations

import io
from pathlib import Path

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
