"""Predictions from a verified bundle's ONNX graph, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.exporting.bundle import Bundle
from keel.exporting.feed import Feeder
from keel.exporting.runtime import make_session


@dataclass(frozen=True)
class Predictions:
    """One batch of outputs. ``score``: P(positive) for binary, max P for multiclass, the value for regression."""

    score: np.ndarray
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None


class Predictor:
    """Runs a bundle's graph on canonical input arrays (see keel.schema)."""

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        self.bundle = bundle
        self.schema = bundle.schema
        self.session = make_session(bundle.model_file, threads)
        self.feed = Feeder.of_bundle(bundle)  # one tensor per column, or a text column tokenised
        classes = bundle.metadata.get("classes")
        self.classes: list[str] | None = list(classes) if classes else None
        self._class_array = np.asarray(classes, dtype=object) if classes else None

    @property
    def classification(self) -> bool:
        return self.classes is not None

    def predict(self, arrays: dict[str, np.ndarray]) -> Predictions:
        outputs = self.feed.run(self.session, arrays)  # a transformer graph: in chunks of texts
        if self._class_array is None:
            return Predictions(score=outputs[0].astype(np.float64).ravel())
        proba = outputs[1]
        labels = self._class_array[outputs[0].ravel().astype(np.int64)]
        score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        return Predictions(score=score.astype(np.float64), labels=labels, probabilities=proba)

    def to_json(self, predictions: Predictions) -> list[dict[str, Any]]:
        """One JSON object per row: label and class probabilities, or the value."""
        if predictions.labels is None or predictions.probabilities is None or self.classes is None:
            return [{"value": v} for v in predictions.score.tolist()]
        classes = self.classes
        return [
            {"label": label, "probabilities": dict(zip(classes, row, strict=True))}
            for label, row in zip(predictions.labels.tolist(), predictions.probabilities.tolist(), strict=True)
        ]
