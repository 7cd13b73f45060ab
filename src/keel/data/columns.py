"""Per-column statistics for triage: missing share, cardinality, top values, range, quantiles,
outliers, a histogram, and length/vocabulary statistics for text.

Works on polars Series. Counts, minimum, maximum, mean and standard deviation are exact;
quantiles, outlier share and histogram come from a seeded sample of ``SAMPLE`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.data.infer import MAX_ONE_HOT, ColumnRole

TOP_VALUES = 5
MAX_TOP_FOR_NUMBERS = 1000  # top values of a continuous column say nothing; counting them is costly
HISTOGRAM_BINS = 20
OUTLIER_IQR = 1.5
SAMPLE = 100_000
TEXT_SAMPLE = 50_000
MIXED_SAMPLE = 5_000
# 'none' is not here: it is often a real answer ("no other parties", "no telephone" in credit_g).
PLACEHOLDERS = {"unknown", "?", "n/a", "na", "null", "-", "missing", "nan", "undefined", "not available"}
PLACEHOLDER_SHARE = 0.01


@dataclass(frozen=True)
class ColumnStats:
    name: str
    dtype: str
    semantic: str
    feature: bool
    missing_share: float
    unique: int
    reason: str = ""
    top: list[tuple[str, int]] | None = None
    numeric: dict[str, float] | None = None
    histogram: dict[str, list[float]] | None = None
    text: dict[str, float] | None = None
    note: str = ""
    categories: list[str] | None = None


def column_stats(series: Any, role: ColumnRole, reason: str, feature: bool, unique: int) -> ColumnStats:
    """Statistics of one polars column; ``reason``/``feature`` may override the role's (e.g. dropped)."""
    rows = len(series)
    present = series.drop_nulls()
    number = series.dtype.is_numeric()
    numeric = histogram = text = categories = None
    if number and role.semantic in ("numeric", "identifier") and len(present):
        numeric, histogram = _numeric(present)
    if role.semantic == "text":
        text = _text(present)
    counts = None
    if not (number and unique > MAX_TOP_FOR_NUMBERS):
        counts = present.value_counts(sort=True)
    if role.semantic in ("categorical", "boolean") and unique <= MAX_ONE_HOT and counts is not None:
        categories = sorted(str(v) for v in counts[counts.columns[0]].to_list())
    return ColumnStats(
        name=str(role.name),
        dtype=str(series.dtype),
        semantic=role.semantic,
        feature=feature,
        missing_share=float(1 - len(present) / max(rows, 1)),
        unique=unique,
        reason=reason,
        top=_top(counts),
        numeric=numeric,
        histogram=histogram,
        text=text,
        note=_notes(counts, role, number, rows),
        categories=categories,
    )


def _top(counts: Any) -> list[tuple[str, int]] | None:
    if counts is None:
        return None
    head = counts.head(TOP_VALUES)
    return [(str(v), int(n)) for v, n in zip(head[head.columns[0]], head["count"], strict=True)]


def _numeric(present: Any) -> tuple[dict[str, float], dict[str, list[float]]]:
    x = present.cast(float)
    x = x.filter(x.is_finite())
    if len(x) == 0:
        return {}, {"edges": [], "counts": []}
    exact = {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std(ddof=0))}
    sample = (x.sample(SAMPLE, seed=0) if len(x) > SAMPLE else x).to_numpy()
    qs = np.quantile(sample, [0.01, 0.25, 0.5, 0.75, 0.99])
    iqr = qs[3] - qs[1]
    low, high = qs[1] - OUTLIER_IQR * iqr, qs[3] + OUTLIER_IQR * iqr
    stats = exact | dict(zip(("p01", "p25", "p50", "p75", "p99"), map(float, qs), strict=True))
    stats["outlier_share"] = float(np.mean((sample < low) | (sample > high)))
    lo, hi = (qs[0], qs[4]) if qs[4] > qs[0] else (exact["min"], max(exact["max"], exact["min"] + 1))
    counts, edges = np.histogram(np.clip(sample, lo, hi), bins=HISTOGRAM_BINS, range=(lo, hi))
    scale = len(x) / len(sample)
    return stats, {"edges": edges.tolist(), "counts": (counts * scale).tolist()}


def _text(present: Any) -> dict[str, float]:
    import polars as pl

    texts = (present.sample(TEXT_SAMPLE, seed=0) if len(present) > TEXT_SAMPLE else present).cast(pl.String)
    lengths = texts.str.len_chars().cast(float).to_numpy()
    words = texts.str.to_lowercase().str.extract_all(r"\S+")
    vocabulary = words.explode().drop_nulls().n_unique()
    return {
        "length_p50": float(np.median(lengths)),
        "length_p95": float(np.quantile(lengths, 0.95)),
        "length_max": float(lengths.max()),
        "words_mean": float(words.list.len().mean()),
        "vocabulary": float(vocabulary),
        "sampled_rows": float(len(texts)),
    }


def _notes(counts: Any, role: ColumnRole, number: bool, rows: int) -> str:
    if role.semantic not in ("categorical", "identifier") or number or counts is None:
        return ""
    return _placeholder(counts, rows) or _mixed_types(counts)


def _placeholder(counts: Any, rows: int) -> str:
    """A note when a category such as 'unknown' or '?' stands in for missing values."""
    values = counts[counts.columns[0]].to_list()
    for value, count in zip(values, counts["count"].to_list(), strict=True):
        key = str(value).strip().lower()
        if key in PLACEHOLDERS and count / max(rows, 1) >= PLACEHOLDER_SHARE:
            return (
                f"{count / rows:.1%} of values are '{key}', a placeholder for missing: keel treats it as a "
                "category; mark it missing upstream if it means 'not recorded'"
            )
    return ""


def _mixed_types(counts: Any) -> str:
    """A note when a text column holds mostly numbers (a type problem upstream)."""
    import polars as pl

    values = counts[counts.columns[0]].head(MIXED_SAMPLE).cast(pl.String)
    weights = counts["count"].head(MIXED_SAMPLE).to_numpy()
    parsed = values.cast(pl.Float64, strict=False).is_not_null().to_numpy()
    share = float(weights[parsed].sum() / max(weights.sum(), 1))
    if share == 1.0:
        return "all values are numbers stored as text"
    if share >= 0.5:
        bad = [repr(v) for v, ok in zip(values.to_list(), parsed, strict=True) if not ok][:3]
        return f"mixed types: {share:.0%} of values are numbers, the rest are not (e.g. {', '.join(bad)})"
    return ""
