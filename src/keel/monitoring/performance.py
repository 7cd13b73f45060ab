"""Model performance in production: measured when labels arrive, estimated before they do.

**Measured.** Labels that arrive later are joined to the prediction log by the id column
the server logged (``serving.id_column``, stored as ``keel_id``). Every watched metric
(``keel.evaluation.watched``: the plan's metric, accuracy, precision and recall at the
stored threshold; RMSE and MAE) gets a bootstrap interval. Its reference is export's
measurement on the hold-out, which has a standard error of its own. A window has
**decayed** on a metric when it is worse than the reference less ``monitor.performance_drop``
(relative: 0.05 means 5% of the reference) beyond chance, one-sided, with both standard
errors combined, at the run's family-wise level. For a multiclass model only the predicted
label is logged, so accuracy is measured.

**Estimated, without labels** (confidence-based performance estimation, as in NannyML's
CBPE): when the model's probabilities are calibrated, a row predicted with confidence c is
right with probability c, so the expected accuracy is the mean confidence; for a binary
model each row counts as p positive and 1 - p negative, which gives an expected ROC AUC.
The estimate is only as good as the calibration: export measures its error against labels
on ten consecutive held-out windows, and the report shows that error beside it. It is not
shown when that error exceeds ``monitor.max_estimate_error``, or when the window's inputs
moved strongly (a column or the domain classifier at alert): the estimate assumes the model
stays calibrated on the new rows, which a strong shift breaks.
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
    threshold: float | None = None  # the stored decision threshold (binary; None: 0.5)
    measured_reference: dict[str, dict[str, float]] = field(default_factory=dict)  # watched: value, se (export)
    estimate_error: dict[str, dict[str, float]] = field(default_factory=dict)  # on held-out windows (export)
    alert_alpha: float = 0.001  # the family-wise share a decay alert must beat
    max_estimate_error: float = 0.05  # a label-free estimate off by more on held-out windows is not shown

    @property
    def measurable(self) -> str:
        """The metric the log can give: the plan's, except accuracy for multiclass."""
        return "accuracy" if self.task == "multiclass" else self.metric

    @property
    def greater(self) -> bool:
        return True if self.measurable == "accuracy" else self.greater_is_better

    def reference_of(self, name: str) -> tuple[float | None, float]:
        """A watched metric's reference value and its standard error (0 where export did not
        measure it: bundles from before, or the training-time score alone)."""
        measured = self.measured_reference.get(name)
        if measured and math.isfinite(measured.get("value", math.nan)):
            se = measured.get("se", 0.0)
            return float(measured["value"]), float(se) if math.isfinite(se) else 0.0
        value = self.reference.get(name)
        return (float(value), 0.0) if value is not None and math.isfinite(value) else (None, 0.0)


@dataclass(frozen=True)
class Watch:
    """One watched metric of a window: its value and interval against the reference and its
    interval, and the decay verdict."""

    metric: str
    value: float
    low: float
    high: float
    reference: float | None
    reference_se: float
    tolerated: float | None  # the worst value that is not yet decay
    p_value: float  # of a value this bad if the window were no worse than ``tolerated``
    decayed: bool

    def describe(self) -> str:
        text = f"{self.metric} {self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"
        if self.reference is not None:
            text += f" vs {self.reference:.4f} ± {1.96 * self.reference_se:.4f} at export"
        return text + (" DECAYED" if self.decayed else "")


@dataclass(frozen=True)
class Performance:
    rows: int  # predictions in the window
    estimated: dict[str, float] = field(default_factory=dict)  # label-free (classification), when reliable
    estimated_reference: dict[str, float] = field(default_factory=dict)
    labelled: int = 0  # of those rows, how many have a label
    metric: str | None = None
    value: float | None = None
    low: float | None = None
    high: float | None = None
    reference: float | None = None  # the reference score (export's measurement, else training's)
    tolerated: float | None = None  # the worst score that is not yet decay
    decayed: bool = False  # any watched metric decayed
    accuracy: float | None = None  # measured too when the metric is another (classification)
    watched: list[Watch] = field(default_factory=list)  # every watched metric, the plan's first
    estimate_error: dict[str, dict[str, float]] = field(default_factory=dict)  # held-out windows (export)
    estimate_hidden: str = ""  # why the label-free estimate is not shown

    def describe(self) -> str:
        parts = []
        if self.watched:
            parts.append(f"on {self.labelled:,} labelled rows: " + "; ".join(w.describe() for w in self.watched))
        elif self.metric:
            parts.append(f"{self.labelled:,} labelled rows: too few for {self.metric} (need {MIN_LABELLED})")
        for name, value in self.estimated.items():
            ref = self.estimated_reference.get(name)
            error = self.estimate_error.get(name)
            notes = [f"hold-out estimate {ref:.4f}"] if ref else []
            if error:
                notes.append(f"off by {error['mean_abs']:.3f} on average on {error['windows']} held-out windows")
            parts.append(f"estimated {name} {value:.4f}" + (f" ({'; '.join(notes)})" if notes else ""))
        if self.estimate_hidden:
            parts.append(f"no label-free estimate: {self.estimate_hidden}")
        return "; ".join(parts)


def performance(target: Target, table: Any, interval: bool = True, shifted: str = "") -> Performance | None:
    """The window's estimated and (with a joined ``keel_truth`` column) measured performance;
    without ``interval``, the measured value alone (no bootstrap, no decay verdict).
    ``shifted``: why the inputs moved too far for a label-free estimate (the caller's drift
    verdict), which then is not shown."""
    if LOG_SCORE not in table.column_names:
        return None
    score = table.column(LOG_SCORE).to_numpy(zero_copy_only=False).astype(np.float64)
    estimated, hidden = _estimate(target, score, shifted)
    out = Performance(
        rows=table.num_rows,
        estimated=estimated,
        estimated_reference=target.estimated_reference,
        estimate_error=target.estimate_error,
        estimate_hidden=hidden,
    )
    if LOG_TRUTH not in table.column_names:
        return out
    truth = table.column(LOG_TRUTH)
    known = ~np.asarray(truth.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    metric = target.measurable
    out = replace(out, labelled=int(known.sum()), metric=metric, reference=target.reference_of(metric)[0])
    if out.labelled < MIN_LABELLED:
        return out
    y, predicted = outcomes(target, table, truth, known, score)
    if not interval:
        from keel.evaluation.metrics import metric_value

        value = float(np.mean(predicted == y)) if target.task == "multiclass" else metric_value(metric, y, predicted)
        return replace(out, value=value, accuracy=_accuracy(target, y, predicted))
    watched = _watched(target, y, predicted)
    first = watched[0]
    return replace(
        out,
        value=first.value,
        low=first.low,
        high=first.high,
        tolerated=first.tolerated,
        decayed=any(w.decayed for w in watched),
        accuracy=_accuracy(target, y, predicted),
        watched=watched,
    )


def _estimate(target: Target, score: np.ndarray, shifted: str) -> tuple[dict[str, float], str]:
    """The label-free estimates, or none and why: under strong covariate shift (the estimate
    assumes the model stays calibrated on the new rows, which a shift breaks), or when they
    were off by more than ``max_estimate_error`` on the hold-out's own windows."""
    estimated = estimated_metrics(target.task, score, target.threshold)
    if not estimated:
        return {}, ""
    if shifted:
        return {}, f"{shifted}; the estimate assumes the model is calibrated on the new rows, which a shift breaks"
    off = {k: e["mean_abs"] for k, e in target.estimate_error.items() if k in estimated}
    unreliable = {k: v for k, v in off.items() if v > target.max_estimate_error}
    if unreliable:
        named = ", ".join(f"{k} by {v:.3f}" for k, v in unreliable.items())
        return {}, (
            f"on the hold-out's own windows it was off ({named} on average; monitor.max_estimate_error "
            f"{target.max_estimate_error:g})"
        )
    return estimated, ""


def _watched(target: Target, y: np.ndarray, predicted: np.ndarray) -> list[Watch]:
    """Every watched metric (keel.evaluation.watched) with its interval and decay verdict: the
    window has decayed on a metric when it is worse than ``tolerated`` (the reference less
    ``drop`` of it) beyond chance, one-sided, with the window's and the reference's standard
    errors combined, at the family-wise ``alert_alpha``."""
    from scipy.stats import norm

    from keel.evaluation.watched import greater_is_better, watched_bootstrap

    resamples = max(MIN_RESAMPLES, min(target.resamples, BOOTSTRAP_CELLS // len(y)))  # bounded work
    measured = watched_bootstrap(
        target.task, target.metric, y, predicted, target.threshold, resamples=resamples, seed=target.seed
    )
    out = []
    for name, m in measured.items():
        reference, reference_se = target.reference_of(name)
        greater = True if name == "accuracy" else greater_is_better(name)
        tolerated, p_value, decayed = None, 1.0, False
        if reference is not None and math.isfinite(m.value):
            tolerated = (
                reference - abs(reference) * target.drop if greater else reference + abs(reference) * target.drop
            )
            error = math.sqrt((m.se if math.isfinite(m.se) else 0.0) ** 2 + reference_se**2)
            worse = (tolerated - m.value) if greater else (m.value - tolerated)
            if error > 0:
                p_value = float(norm.sf(worse / error))
            elif worse > 0:
                p_value = 0.0
            decayed = p_value < target.alert_alpha
        out.append(Watch(name, m.value, m.low, m.high, reference, reference_se, tolerated, p_value, decayed))
    return out


def outcomes(
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
