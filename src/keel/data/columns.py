"""Per-column statistics for triage: missing share, cardinality, top values, quantiles,
outliers, a histogram, and length/vocabulary statistics for text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.data.infer import ColumnRole

TOP_VALUES = 5
MAX_TOP_FOR_NUMBERS = 1000  # top values of a continuous column say nothing; counting them is costly
HISTOGRAM_BINS = 20
OUTLIER_IQR = 1.5
TEXT_SAMPLE = 50_000
MIXED_SAMPLE = 5_000
PLACEHOLDERS = {"unknown", "?", "n/a", "na", "none", "null", "-", "missing", "nan", "undefined", "not available"}
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


def column_stats(series: Any, role: ColumnRole, reason: str, feature: bool, unique: int) -> ColumnStats:
    """Statistics of one column; ``reason``/``feature`` may override the role's (e.g. dropped)."""
    present = series.dropna()
    continuous = _is_number(series) and unique > MAX_TOP_FOR_NUMBERS
    numeric = histogram = text = None
    if role.semantic in ("numeric", "identifier") and _is_number(series):
        numeric, histogram = _numeric(present.to_numpy(dtype=np.float64))
    if role.semantic == "text":
        text = _text(present)
    return ColumnStats(
        name=str(role.name),
        dtype=str(series.dtype),
        semantic=role.semantic,
        feature=feature,
        missing_share=float(1 - len(present) / max(len(series), 1)),
        unique=unique,
        reason=reason,
        top=None if continuous else _top(present),
        numeric=numeric,
        histogram=histogram,
        text=text,
        note=_notes(present, role, series),
    )


def _notes(present: Any, role: ColumnRole, series: Any) -> str:
    if role.semantic not in ("categorical", "identifier") or _is_number(series):
        return ""
    return _placeholder(present, len(series)) or _mixed_types(present)


def _placeholder(present: Any, rows: int) -> str:
    """A note when a category such as 'unknown' or '?' stands in for missing values."""
    counts = present.astype("str").str.strip().str.lower().value_counts()
    found = [(v, int(n)) for v, n in counts.items() if v in PLACEHOLDERS and n / max(rows, 1) >= PLACEHOLDER_SHARE]
    if not found:
        return ""
    value, count = found[0]
    return (
        f"{count / rows:.1%} of values are '{value}', a placeholder for missing: keel treats it as a category; "
        "mark it missing upstream if it means 'not recorded'"
    )


def _is_number(series: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _top(present: Any) -> list[tuple[str, int]]:
    counts = present.value_counts().head(TOP_VALUES)
    return [(str(value), int(count)) for value, count in counts.items()]


def _numeric(x: np.ndarray) -> tuple[dict[str, float], dict[str, list[float]]]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {}, {"edges": [], "counts": []}
    qs = np.quantile(x, [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0])
    iqr = qs[4] - qs[2]
    low, high = qs[2] - OUTLIER_IQR * iqr, qs[4] + OUTLIER_IQR * iqr
    stats = dict(zip(("min", "p01", "p25", "p50", "p75", "p99", "max"), map(float, qs), strict=True))
    stats |= {"mean": float(x.mean()), "std": float(x.std()), "outlier_share": float(np.mean((x < low) | (x > high)))}
    lo, hi = (qs[1], qs[5]) if qs[5] > qs[1] else (qs[0], qs[6] if qs[6] > qs[0] else qs[0] + 1)
    counts, edges = np.histogram(np.clip(x, lo, hi), bins=HISTOGRAM_BINS, range=(lo, hi))
    return stats, {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def _text(present: Any) -> dict[str, float]:
    sample = present.sample(TEXT_SAMPLE, random_state=0) if len(present) > TEXT_SAMPLE else present
    texts = sample.astype("str")
    lengths = texts.str.len().to_numpy(dtype=np.float64)
    words = texts.str.lower().str.split()
    vocabulary = {w for tokens in words for w in tokens}
    return {
        "length_p50": float(np.median(lengths)),
        "length_p95": float(np.quantile(lengths, 0.95)),
        "length_max": float(lengths.max()),
        "words_mean": float(words.str.len().mean()),
        "vocabulary": float(len(vocabulary)),
        "sampled_rows": float(len(texts)),
    }


def _mixed_types(present: Any) -> str:
    """A note when a text column holds mostly numbers (a type problem upstream)."""
    import pandas as pd

    sample = present.head(MIXED_SAMPLE)
    if not len(sample):
        return ""
    parsed = pd.to_numeric(sample.astype("str"), errors="coerce")
    share = float(parsed.notna().mean())
    if share == 1.0:
        return "all values are numbers stored as text"
    if share >= 0.5:
        bad = sample[parsed.isna()].astype("str").unique()[:3]
        return f"mixed types: {share:.0%} of values are numbers, the rest are not (e.g. {', '.join(map(repr, bad))})"
    return ""
