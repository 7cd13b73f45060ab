"""Model performance in production: measured when labels arrive, estimated before they do.

**Measured.** Labels that arrive later are joined to the prediction log by the id column
the server logged (``serving.id_column``, stored as ``keel_id``); a window's metric gets a
percentile bootstrap interval, and the window has **decayed** when the whole interval is
worse than the reference (the training-time test score) by more than
``monitor.performance_drop`` (relative: 0.05 means 5% of the reference score). From the log
alone keel can compute every metric of a binary or regression model (``keel_score`` is
P(positive) or the value); for a multiclass model only the predicted label is logged, so
accuracy is measured.

**Estimated, without labels** (confidence-based performance estimation, as in NannyML's
CBPE): when the model's probabilities are calibrated, a row predicted with confidence c is
right with probability c, so the expected accuracy is the mean confidence; for a binary
model each row counts as p positive and 1 - p negative, which gives an expected ROC AUC.
The estimate is only as good as the calibration: the hold-out's own estimate is stored at
export beside its measured value, and the report shows both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keel.evaluation.metrics import estimated_metrics
from keel.schema import LOG_LABEL, LOG_SCORE

LOG_TRUTH = "keel_truth"  # the joined label, added to the log table by ``keel monitor --labels``
MIN_LABELLED = 30  # fewer labelled rows give no measured metric
BOOTSTRAP_CELLS = 20_000_000  # resamples x rows at most (a million labelled rows: 20 resamples)
MIN_RESAMPLES = 20


@dataclass(frozen=True)
class Target:
    """What scoring a window needs from the bundle and the config."""

    task: str  # binary | multiclass | regression
    metric: str  # the plan's metric
    greater_is_better: bool
    classes: list[str] | None
    reference: dict[str, float]  # the training-time test scores (bundle metadata "metrics")
    estimated_reference: dict[str, float] = field(default_factory=dict)  # the hold-out's label-free estimates
    drop: float = 0.05
    resamples: int = 200
    seed: int = 0

    @property
    def measurable(self) -> str:
        """The metric the log can give: the plan's, except accuracy for multiclass."""
        return "accuracy" if self.task == "multiclass" else self.metric

    @property
    def greater(self) -> bool:
        return True if self.measurable == "accuracy" else self.greater_is_better


@dataclass(frozen=True)
class Performance:
    rows: int  # predictions in the window
    estimated: dict[str, float] = field(default_factory=dict)  # label-free (classification)
    estimated_reference: dict[str, float] = field(default_factory=dict)
    labelled: int = 0  # of those rows, how many have a label
    metric: str | None = None
    value: float | None = None
    low: float | None = None
    high: float | None = None
    reference: float | None = None  # the training-time test score
    tolerated: float | None = None  # the worst score that is not yet decay
    decayed: bool = False
    accuracy: float | None = None  # measured too when the metric is another (classification)

    def describe(self) -> str:
        parts = []
        if self.value is not None:
            parts.append(
                f"{self.metric} {self.value:.4f} [{self.low:.4f}, {self.high:.4f}] on {self.labelled:,} labelled rows"
                + (f" vs {self.reference:.4f} at training" if self.reference is not None else "")
            )
        if self.accuracy is not None and self.metric != "accuracy":
            parts.append(f"accuracy {self.accuracy:.4f}")
        elif self.metric:
            parts.append(f"{self.labelled:,} labelled rows: too few for {self.metric} (need {MIN_LABELLED})")
        for name, value in self.estimated.items():
            ref = self.estimated_reference.get(name)
            parts.append(f"estimated {name} {value:.4f}" + (f" (hold-out estimate {ref:.4f})" if ref else ""))
        return "; ".join(parts)


def performance(target: Target, table: Any, interval: bool = True) -> Performance | None:
    """The window's estimated and (with a joined ``keel_truth`` column) measured performance;
    without ``interval``, the measured value alone (no bootstrap, no decay verdict)."""
    if LOG_SCORE not in table.column_names:
        return None
    score = table.column(LOG_SCORE).to_numpy(zero_copy_only=False).astype(np.float64)
    out = Performance(
        rows=table.num_rows,
        estimated=estimated_metrics(target.task, score),
        estimated_reference=target.estimated_reference,
    )
    if LOG_TRUTH not in table.column_names:
        return out
    truth = table.column(LOG_TRUTH)
    known = ~np.asarray(truth.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    metric = target.measurable
    reference = target.reference.get(metric)
    out = replace(out, labelled=int(known.sum()), metric=metric, reference=reference)
    if out.labelled < MIN_LABELLED:
        return out
    y, predicted = _outcomes(target, table, truth, known, score)
    if not interval:
        from keel.evaluation.metrics import metric_value

        value = float(np.mean(predicted == y)) if target.task == "multiclass" else metric_value(metric, y, predicted)
        return replace(out, value=value, accuracy=_accuracy(target, y, predicted))
    value, low, high = _scored(target, metric, y, predicted)
    out = replace(out, value=value, low=low, high=high, accuracy=_accuracy(target, y, predicted))
    if reference is None or not math.isfinite(reference):
        return out
    if target.greater:
        tolerated = reference - abs(reference) * target.drop
        return replace(out, tolerated=tolerated, decayed=math.isfinite(high) and high < tolerated)
    tolerated = reference + abs(reference) * target.drop
    return replace(out, tolerated=tolerated, decayed=math.isfinite(low) and low > tolerated)


def _outcomes(
    target: Target, table: Any, truth: Any, known: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows' truth and what the metric takes: class indices and [1 - p, p]
    (binary), class indices and the predicted indices (multiclass), or values (regression)."""
    if target.task == "regression":
        y = _present(truth, known).astype(np.float64)
        return y, score[known]
    classes = [str(c) for c in target.classes or []]
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([str(v) for v in _present(truth, known)], dtype=object)
    unknown = sorted(set(labels.tolist()) - set(index))
    if unknown:
        from keel.errors import MonitorError

        raise MonitorError(
            f"the labels hold value(s) {', '.join(unknown[:5])} that the model does not predict "
            f"(classes: {', '.join(classes)}).",
            hint="Check the labels file's target column: it must use the training data's classes.",
        )
    y = np.array([index[v] for v in labels], dtype=np.int64)
    if target.task == "binary":
        p = np.clip(score[known], 0, 1)
        return y, np.column_stack([1 - p, p])
    predicted = table.column(LOG_LABEL).to_numpy(zero_copy_only=False)[known].astype(str)
    return y, np.array([index.get(v, -1) for v in predicted], dtype=np.int64)


def _present(truth: Any, known: np.ndarray) -> np.ndarray:
    """The labels of the labelled rows, filtered in Arrow first (a numpy view of an integer
    column with nulls turns 1 into 1.0, which then names no class)."""
    import pyarrow as pa

    return truth.filter(pa.array(known)).to_numpy(zero_copy_only=False)


def _accuracy(target: Target, y: np.ndarray, predicted: np.ndarray) -> float | None:
    if target.task == "regression":
        return None
    labels = predicted.argmax(axis=1) if predicted.ndim == 2 else predicted
    return float(np.mean(labels == y))


def _scored(target: Target, metric: str, y: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """The metric and its bootstrap interval; multiclass accuracy from the predicted labels."""
    from keel.evaluation.metrics import bootstrap_interval, metric_value

    n = len(y)
    if target.task == "multiclass":  # a resampled share of right answers is binomial
        share = float(np.mean(predicted == y))
        means = np.random.default_rng(target.seed).binomial(n, share, target.resamples) / n
        return share, float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
    value = metric_value(metric, y, predicted)
    resamples = max(MIN_RESAMPLES, min(target.resamples, BOOTSTRAP_CELLS // n))  # bounded work on big windows
    low, high = bootstrap_interval(metric, y, predicted, resamples=resamples, seed=target.seed)
    return value, low, high
