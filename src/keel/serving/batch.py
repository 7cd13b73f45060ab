"""Batch scoring: a DataFrame chunk in, the same rows with their predictions out (``keel
predict`` on either engine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.errors import DataError, SchemaError
from keel.serving.predictor import Predictions, Predictor


def score_frame(predictor: Predictor, frame: Any, offset: int) -> Any:
    """A chunk of rows with the predictions appended: the label and one probability column per
    class (classification) or the value, and the model and version, for ``keel predict``."""
    return score_chunk(predictor, frame, offset)[0]


def score_chunk(predictor: Predictor, frame: Any, offset: int) -> tuple[Any, dict[str, np.ndarray], Predictions]:
    """``score_frame``'s rows, and the canonical inputs and outputs (what the prediction log keeps)."""
    try:
        arrays = predictor.schema.frame_to_arrays(frame)
    except SchemaError as exc:
        raise DataError(f"rows {offset}-{offset + len(frame) - 1}: {exc}", hint=exc.hint) from None
    out = predictor.predict(arrays)
    result = frame.copy()
    if out.labels is not None and out.probabilities is not None and predictor.classes is not None:
        result["prediction"] = out.labels
        for i, name in enumerate(predictor.classes):
            result[f"probability_{name}"] = out.probabilities[:, i].astype(np.float64)
    else:
        result["prediction"] = out.score
    result["model"] = predictor.bundle.model
    result["model_version"] = predictor.bundle.version
    return result, arrays, out


def outputs_of_scored(predictor: Predictor, scored: Any) -> Predictions:
    """The outputs back from ``score_frame``'s columns (batches scored elsewhere, e.g. on Ray)."""
    if predictor.classes is None:
        return Predictions(scored["prediction"].to_numpy(dtype=np.float64))
    probabilities = np.column_stack([scored[f"probability_{c}"].to_numpy(dtype=np.float64) for c in predictor.classes])
    score = probabilities[:, 1] if len(predictor.classes) == 2 else probabilities.max(axis=1)
    return Predictions(score, scored["prediction"].astype(str).to_numpy(dtype=object), probabilities)
