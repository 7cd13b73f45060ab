"""Fit one candidate family on the training rows and score it on the hold-out rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.evaluation.metrics import classification_metrics, regression_metrics
from keel.features.build import build_pipeline
from keel.schema import LOG_LABEL, LOG_SCORE, arrays_to_frame
from keel.training.families import make_estimator
from keel.training.prepare import Prepared


@dataclass
class Candidate:
    """A fitted pipeline of one family with its hold-out metrics."""

    family: str
    pipeline: Any
    metrics: dict[str, float]
    fit_seconds: float
    run_id: str = ""
    model_uri: str = ""


def fit_candidate(family: str, data: Prepared, seed: int, threads: int) -> Candidate:
    estimator = make_estimator(family, data.plan.classification, seed, threads)
    pipeline = build_pipeline(data.schema, estimator)
    start = time.perf_counter()
    pipeline.fit(arrays_to_frame(data.schema, data.rows(data.train)), data.y[data.train])
    seconds = time.perf_counter() - start
    metrics = score(pipeline, data, data.test)
    return Candidate(family, pipeline, metrics, seconds)


def score(pipeline: Any, data: Prepared, index: np.ndarray) -> dict[str, float]:
    """The task's metric suite on the rows in ``index``."""
    frame = arrays_to_frame(data.schema, data.rows(index))
    if data.plan.classification:
        return classification_metrics(data.y[index], pipeline.predict_proba(frame))
    return regression_metrics(data.y[index], pipeline.predict(frame))


def predictions_of(pipeline: Any, data: Prepared, index: np.ndarray) -> dict[str, np.ndarray]:
    """Prediction-log columns (keel_label / keel_score) for the rows in ``index``."""
    frame = arrays_to_frame(data.schema, data.rows(index))
    if not data.plan.classification:
        return {LOG_SCORE: np.asarray(pipeline.predict(frame), dtype=np.float64)}
    proba = pipeline.predict_proba(frame)
    classes = np.asarray(data.classes, dtype=object)
    score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return {LOG_LABEL: classes[proba.argmax(axis=1)], LOG_SCORE: score.astype(np.float64)}
