"""Per-slice statistics: stored at training, compared in production.

For each ``evaluate.slices`` column, training stores, per group of its hold-out rows (a
category, or a quartile range with its edges kept), the group's share of rows and the mean
and standard deviation of the model's score. The monitor puts the logged rows in the same
groups and reports each group's share now, its mean score on that group's own control chart
(in standard errors, flagged beyond ``monitor.prediction_sigmas``), and, when labels are
joined, the metric on the group's labelled rows. Slices inform, they do not alert: with
many groups, a 2-sigma rule would fire somewhere in most windows by chance alone. They
answer the next question after an alert: which users did it hit?
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.evaluation.suite import slice_edges, slice_groups
from keel.monitoring.performance import LOG_TRUTH, MIN_LABELLED, Target, performance
from keel.schema import LOG_SCORE, NUMERIC

SLICES_KEY = "keel_slices"  # in profile.json, beside the column profiles


@dataclass(frozen=True)
class SliceGroup:
    column: str
    group: str
    share_reference: float
    share_current: float
    rows: int
    mean_reference: float | None
    mean_current: float | None
    sigmas: float | None  # (current - reference) / (sd / sqrt(rows))
    shifted: bool
    metric: str | None = None
    value: float | None = None  # measured on the group's labelled rows
    labelled: int = 0


def slice_profile(columns: dict[str, tuple[str, np.ndarray]], score: np.ndarray) -> dict[str, Any]:
    """Training side: {column: {kind, edges, groups: {group: {share, rows, mean, std}}}} from
    each slice column's values (kind, values) and the scores of the same rows."""
    out: dict[str, Any] = {}
    for name, (kind, values) in columns.items():
        numeric = kind == NUMERIC
        x = values.astype(np.float64) if numeric else values
        edges = slice_edges(x) if numeric else []
        groups = slice_groups(x, numeric, edges if numeric else None)
        stats = {}
        for group in np.unique(groups):
            scores = score[groups == group]
            finite = scores[np.isfinite(scores)]
            stats[str(group)] = {
                "share": float(len(scores) / len(score)),
                "rows": len(scores),
                "mean": float(finite.mean()) if finite.size else None,
                "std": float(finite.std()) if finite.size > 1 else None,
            }
        out[name] = {"kind": kind, "edges": edges, "groups": stats}
    return out


def slice_drift(profile: dict[str, Any], table: Any, target: Target | None, sigmas: float) -> list[SliceGroup]:
    """Every stored group of every slice column the log holds, training's groups first, then
    groups training never saw."""
    out: list[SliceGroup] = []
    n = table.num_rows
    if n == 0 or LOG_SCORE not in table.column_names:
        return out
    score = table.column(LOG_SCORE).to_numpy(zero_copy_only=False).astype(np.float64)
    for name, spec in profile.items():
        if name not in table.column_names:
            continue
        numeric = spec["kind"] == NUMERIC
        column = table.column(name)
        values = (
            column.to_numpy(zero_copy_only=False).astype(np.float64)
            if numeric
            else column.fill_null("").to_numpy(zero_copy_only=False).astype(object)
        )
        groups = slice_groups(values, numeric, spec["edges"] if numeric else None)
        stored = spec["groups"]
        for group in [*stored, *sorted(set(np.unique(groups).tolist()) - set(stored))]:
            mask = groups == group
            out.append(_group(name, group, stored.get(group), mask, score, table, target, sigmas))
    return out


def _group(
    column: str,
    group: str,
    ref: dict[str, Any] | None,
    mask: np.ndarray,
    score: np.ndarray,
    table: Any,
    target: Target | None,
    sigmas: float,
) -> SliceGroup:
    rows = int(mask.sum())
    current = score[mask]
    current = current[np.isfinite(current)]
    mean = float(current.mean()) if current.size else None
    z = None
    ref_mean, ref_std = (ref or {}).get("mean"), (ref or {}).get("std")
    if mean is not None and ref_mean is not None and ref_std:
        z = (mean - ref_mean) / (ref_std / math.sqrt(current.size))
    metric = value = None
    labelled = 0
    if target is not None and LOG_TRUTH in table.column_names and rows:
        import pyarrow as pa

        measured = performance(target, table.filter(pa.array(mask)), interval=False)
        if measured is not None:
            metric, labelled = measured.metric, measured.labelled
            value = measured.value if labelled >= MIN_LABELLED else None
    return SliceGroup(
        column=column,
        group=group,
        share_reference=float((ref or {}).get("share", 0.0)),
        share_current=rows / len(mask),
        rows=rows,
        mean_reference=ref_mean,
        mean_current=mean,
        sigmas=None if z is None else float(z),
        shifted=z is not None and abs(z) > sigmas,
        metric=metric,
        value=value,
        labelled=labelled,
    )
