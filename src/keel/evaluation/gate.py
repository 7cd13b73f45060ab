"""The promotion gate's checks: challenger vs champion on the same golden rows.

Pure computation on predictions; ``keel.api.models.promote`` gathers them (from the two
exported bundles) and ``keel.registry.champion`` records the decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keel.evaluation.metrics import metric_value


@dataclass(frozen=True)
class Check:
    """One line of a decision: what was checked, whether it passed, and its numbers."""

    name: str
    passed: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def improvement_check(
    metric: str,
    greater_is_better: bool,
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    min_improvement: float,
    resamples: int,
    seed: int = 0,
) -> Check:
    """Passes when the challenger beats the champion by at least ``min_improvement`` (a fraction
    of the champion's score) and the paired bootstrap interval of the gain lies above zero.

    Paired: each resample draws the same rows for both models, so the interval is of the
    difference itself, much tighter than comparing two separate intervals.
    """
    sign = 1.0 if greater_is_better else -1.0
    old, new = metric_value(metric, y, champion), metric_value(metric, y, challenger)
    gain = sign * (new - old)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        index = rng.integers(0, len(y), len(y))
        if champion.ndim == 2 and len(np.unique(y[index])) < champion.shape[1]:
            continue
        gains.append(
            sign * (metric_value(metric, y[index], challenger[index]) - metric_value(metric, y[index], champion[index]))
        )
    low, high = (float(np.quantile(gains, 0.025)), float(np.quantile(gains, 0.975))) if gains else (np.nan, np.nan)
    needed = min_improvement * abs(old)
    passed = bool(gain >= needed and low > 0)
    detail = (
        f"{metric} {new:.4f} vs champion {old:.4f} on {len(y):,} golden rows: gain {gain:+.4f}, "
        f"95% paired interval {low:+.4f} to {high:+.4f}; needs a gain >= {needed:.4f} with the interval above 0"
    )
    numbers = {"metric": metric, "challenger": new, "champion": old, "gain": gain, "low": low, "high": high}
    return Check("beats the champion", passed, detail, numbers | {"needed": needed, "rows": len(y)})


def baseline_check(
    metric: str,
    greater_is_better: bool,
    y: np.ndarray,
    predicted: np.ndarray,
    prior: Any,
    *,
    resamples: int,
    seed: int = 0,
) -> Check:
    """The model must beat the majority/mean baseline (``prior``: the training class shares, or
    the training mean) on its hold-out rows, with the paired 95% interval of the gain above zero.
    ``keel evaluate`` shows it; ``keel promote`` refuses a version that fails it, first champion
    or not, unless forced with a reason."""
    baseline = baseline_predictions(prior, predicted)
    versus = improvement_check(
        metric, greater_is_better, y, baseline, predicted, min_improvement=0.0, resamples=resamples, seed=seed
    )
    n = versus.numbers
    detail = (
        f"{metric} {n['challenger']:.4f} vs majority/mean baseline {n['champion']:.4f} on {len(y):,} hold-out rows: "
        f"gain {n['gain']:+.4f}, 95% paired interval {n['low']:+.4f} to {n['high']:+.4f}"
    )
    if not versus.passed:
        detail += "; a model no better than a constant is not promoted"
    return Check("beats the baseline", versus.passed, detail, n | {"rows": len(y)})


def baseline_predictions(prior: Any, like: np.ndarray) -> np.ndarray:
    """The constant prediction: ``prior`` class shares in every row (``like`` is a probability
    matrix), or the mean ``prior`` (a number) for regression."""
    if like.ndim == 2:
        shares = np.asarray(prior, dtype=np.float64)
        return np.tile(shares / shares.sum(), (len(like), 1))
    return np.full(len(like), float(prior))


def slice_check(
    metric: str,
    greater_is_better: bool,
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    slices: dict[str, np.ndarray],
    *,
    min_rows: int,
    max_regression: float,
) -> Check:
    """Fails when any slice group with at least ``min_rows`` rows gets worse by more than
    ``max_regression`` (a fraction of the champion's score on that group)."""
    sign = 1.0 if greater_is_better else -1.0
    rows: list[dict[str, Any]] = []
    for column, groups in slices.items():
        for group in sorted(set(groups.tolist())):
            mask = groups == group
            if mask.sum() < min_rows:
                continue
            old = metric_value(metric, y[mask], champion[mask])
            new = metric_value(metric, y[mask], challenger[mask])
            if not (np.isfinite(old) and np.isfinite(new)):
                continue  # e.g. one class only: no AUC
            drop = sign * (old - new) / max(abs(old), 1e-12)
            rows.append(
                {
                    "slice": f"{column}={group}",
                    "rows": int(mask.sum()),
                    "champion": old,
                    "challenger": new,
                    "drop": drop,
                }
            )
    if not slices:
        return Check("no slice regresses", True, "no slices configured (evaluate.slices in keel.yaml)", {"slices": []})
    worse = sorted((r for r in rows if r["drop"] > max_regression), key=lambda r: -r["drop"])
    if worse:
        listed = "; ".join(
            f"{r['slice']}: {metric} {r['challenger']:.4f} vs champion {r['champion']:.4f} "
            f"({-r['drop']:+.1%}, {r['rows']:,} rows)"
            for r in worse
        )
        detail = f"worse by more than {max_regression:.1%} on {listed}"
        return Check("no slice regresses", False, detail, {"slices": rows})
    worst = max(rows, key=lambda r: r["drop"], default=None)
    tail = f"; the largest change: {worst['slice']} {-worst['drop']:+.1%}" if worst else ""
    detail = f"{len(rows)} slice groups of >= {min_rows} rows, none worse by more than {max_regression:.1%}{tail}"
    return Check("no slice regresses", True, detail, {"slices": rows})


def recent_check(
    metric: str,
    greater_is_better: bool,
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    max_regression: float,
) -> Check:
    """On the newest labelled rows (the challenger's hold-out: with a time column, the latest
    rows it was given), the challenger may not be worse than the champion by more than
    ``max_regression`` of the champion's score. The golden set asks for proof of a gain on
    frozen rows; this asks that the gain does not come at the cost of today's data."""
    sign = 1.0 if greater_is_better else -1.0
    old, new = metric_value(metric, y, champion), metric_value(metric, y, challenger)
    drop = sign * (old - new) / max(abs(old), 1e-12)
    passed = bool(np.isfinite(drop) and drop <= max_regression)
    detail = (
        f"{metric} {new:.4f} vs champion {old:.4f} on the {len(y):,} newest labelled rows "
        f"({-drop:+.1%}; may not be worse by more than {max_regression:.1%})"
    )
    numbers = {"metric": metric, "challenger": new, "champion": old, "drop": drop, "rows": len(y)}
    return Check("newest labelled window", passed, detail, numbers)


def suspicion_check(tag: str | None) -> Check:
    """A version whose training found a suspiciously good score (``keel.training.suspicion``) is
    not promoted unless that was allowed with a reason at training (or ``--force --reason`` now)."""
    if not tag:
        return Check("suspicious score", True, "no score above 0.99 on real-world inputs")
    import json

    evidence = json.loads(tag)
    scores = ", ".join(f"{k} {v:.4f}" for k, v in evidence.get("scores", {}).items())
    if evidence.get("allowed"):
        return Check("suspicious score", True, f"{scores}: allowed at training ({evidence['allowed']})", evidence)
    columns = "; ".join(
        f"'{c['column']}' removes {c['carried']:.0%} of the remaining error" for c in evidence.get("columns", [])
    )
    return Check(
        "suspicious score",
        False,
        f"test {scores} above 0.99: look for a leak first ({columns or 'no single column to blame'}); "
        "if the score is real, train again with `keel train --allow score.suspicious --reason '...'`",
        evidence,
    )


def parity_check(parity: dict[str, Any]) -> Check:
    """The export's recorded parity (native pipeline vs ONNX graph; PyTorch logits for transformers)."""
    passed = bool(parity.get("passed"))
    reference = "PyTorch - ONNX| logit" if parity.get("output") == "logits" else "native - ONNX|"
    detail = f"max |{reference} {parity.get('max_diff', float('nan')):.2e} <= {parity.get('tolerance', 0):.0e}"
    if parity.get("label_agreement") is not None:
        detail += f", labels agree {parity['label_agreement']:.1%}"
    return Check("export parity", passed, detail, dict(parity))


def latency_check(latency: dict[str, Any], budget_ms: float) -> Check:
    """Single-row p50 measured at export, against ``serving.latency_budget_ms``."""
    p50 = float(latency.get("single_row_p50_ms", float("nan")))
    passed = bool(p50 <= budget_ms)
    detail = f"one-row p50 {p50:.3f} ms (p99 {latency.get('single_row_p99_ms', float('nan')):.3f} ms), budget {budget_ms:g} ms"
    return Check("latency", passed, detail, dict(latency) | {"budget_ms": budget_ms})
