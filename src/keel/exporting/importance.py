"""How much the served output depends on each input column, measured on the exported graph."""

from __future__ import annotations

import numpy as np

from keel.exporting.feed import Feeder
from keel.exporting.runtime import make_session
from keel.schema import InputSchema

SENSITIVITY_ROWS = 2000


def output_sensitivity(
    model: bytes,
    schema: InputSchema,
    arrays: dict[str, np.ndarray],
    classification: bool,
    seed: int = 0,
    feeder: Feeder | None = None,
) -> dict[str, float]:
    """Per column: the mean absolute change of the served score (P(positive), max P, or the
    value) when that column alone is shuffled across held-out rows, normalised to sum to 1.

    It needs no labels and runs the ONNX graph itself, so it says what drift in a column can
    do to the predictions being served; the monitor ranks drifting columns by it.
    """
    session = make_session(model)
    feed_of = feeder or Feeder(schema)
    rng = np.random.default_rng(seed)
    n = len(next(iter(arrays.values())))
    take = np.sort(rng.choice(n, min(n, SENSITIVITY_ROWS), replace=False))
    base = {name: values[take] for name, values in arrays.items()}

    def score(feed: dict[str, np.ndarray]) -> np.ndarray:
        outputs = feed_of.run(session, feed)
        if not classification:
            return outputs[0].astype(np.float64).ravel()
        proba = outputs[1]
        return (proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)).astype(np.float64)

    reference = score(base)
    raw = {}
    for name in schema.names:
        shuffled = dict(base)
        shuffled[name] = base[name][rng.permutation(len(take))]
        raw[name] = float(np.mean(np.abs(score(shuffled) - reference)))
    total = sum(raw.values())
    return {name: (value / total if total > 0 else 0.0) for name, value in raw.items()}
