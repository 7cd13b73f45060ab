"""The metrics a team watches in production, each with its uncertainty.

A window's decay is not judged on the plan's metric alone: a model whose ROC AUC holds can
still call most rows wrong at its decision threshold. So for each task:

| task | watched (the plan's metric first) |
|---|---|
| binary | the plan's metric, accuracy, precision and recall, the last three at the stored decision threshold (0.5 without one) |
| multiclass | accuracy (the log holds the predicted label only) |
| regression | the plan's metric, RMSE, MAE |

``watched_values`` computes them; ``watched_bootstrap`` gives each its bootstrap standard
error and percentile interval from one set of resampled rows (so they stay consistent), and
``estimate_error`` measures how far the label-free estimates (``estimated_metrics``) were
from the measured values on held-out windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.evaluation.metrics import estimated_metrics, metric_value

THRESHOLD_METRICS = ("accuracy", "precision", "recall")
LOWER = ("rmse", "mae", "log_loss")


@dataclass(frozen=True)
class Measured:
    value: float
    se: float  # bootstrap standard error
    low: float  # 95% percentile interval
    high: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "se": self.se, "low": self.low, "high": self.high, "rows": self.rows}


def watched_names(task: str, metric: str) -> list[str]:
    if task == "multiclass":
        return ["accuracy"]
    if task == "binary":
        return list(dict.fromkeys([metric, *THRESHOLD_METRICS]))
    return list(dict.fromkeys([metric, "rmse", "mae"]))


def greater_is_better(name: str) -> bool:
    return name not in LOWER


def watched_values(
    task: str, metric: str, y: np.ndarray, predicted: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Each watched metric. ``predicted``: [1 - p, p] (binary), predicted class indices
    (multiclass) or values (regression); ``y`` class indices or values."""
    out: dict[str, float] = {}
    for name in watched_names(task, metric):
        if task == "multiclass":
            out[name] = float(np.mean(predicted == y))
        elif task == "binary" and name in THRESHOLD_METRICS:
            out[name] = _at_threshold(name, y, predicted[:, 1], 0.5 if threshold is None else threshold)
        else:
            out[name] = _value(metric=name, y=y, predicted=predicted)
    return out


def watched_bootstrap(
    task: str,
    metric: str,
    y: np.ndarray,
    predicted: np.ndarray,
    threshold: float | None = None,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, Measured]:
    """Each watched metric with its bootstrap standard error and 95% interval."""
    point = watched_values(task, metric, y, predicted, threshold)
    rng = np.random.default_rng(seed)
    n = len(y)
    draws: dict[str, list[float]] = {name: [] for name in point}
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        for name, value in watched_values(task, metric, y[index], predicted[index], threshold).items():
            if math.isfinite(value):
                draws[name].append(value)
    out = {}
    for name, value in point.items():
        values = np.asarray(draws[name])
        if len(values) < 2:
            out[name] = Measured(value, math.nan, math.nan, math.nan, n)
            continue
        low, high = np.quantile(values, [0.025, 0.975])
        out[name] = Measured(value, float(values.std(ddof=1)), float(low), float(high), n)
    return out


def estimate_error(
    task: str, y: np.ndarray, score: np.ndarray, windows: int, threshold: float | None = None
) -> dict[str, dict[str, float]]:
    """How far the label-free estimates were from the measured metric on ``windows``
    consecutive held-out windows (rows in the order given): per estimate, the mean absolute
    error, the mean signed error (estimate minus measured) and the worst, with the windows'
    count and size. ``score``: P(positive) (binary) or the top class's probability and
    ``y`` whether the predicted class was right (multiclass: 1/0)."""
    n = len(y)
    size = n // max(windows, 1)
    if task == "regression" or size < 30:
        return {}
    errors: dict[str, list[float]] = {}
    for i in range(windows):
        part = slice(i * size, (i + 1) * size)
        estimated = estimated_metrics(task, score[part], threshold)
        if task == "multiclass":
            measured = {"accuracy": float(np.mean(y[part]))}
        else:
            p = score[part]
            measured = {"accuracy": _at_threshold("accuracy", y[part], p, 0.5 if threshold is None else threshold)}
            if len(np.unique(y[part])) == 2:
                measured["roc_auc"] = _value("roc_auc", y[part], np.column_stack([1 - p, p]))
        for name, value in estimated.items():
            if name in measured and math.isfinite(measured[name]):
                errors.setdefault(name, []).append(value - measured[name])
    return {
        name: {
            "mean_abs": float(np.mean(np.abs(e))),
            "bias": float(np.mean(e)),
            "worst": float(np.max(np.abs(e))),
            "windows": len(e),
            "rows": size,
        }
        for name, e in errors.items()
    }


def _at_threshold(name: str, y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    called, truth = p >= threshold, y == 1
    if name == "accuracy":
        return float(np.mean(called == truth))
    hits = float(np.sum(called & truth))
    if name == "precision":
        return hits / float(called.sum()) if called.any() else math.nan
    return hits / float(truth.sum()) if truth.any() else math.nan


def _value(metric: str, y: np.ndarray, predicted: np.ndarray) -> float:
    try:
        return float(metric_value(metric, y, predicted))
    except (ValueError, KeyError, ZeroDivisionError):
        return math.nan
