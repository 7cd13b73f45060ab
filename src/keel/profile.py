"""Reference profiles of a model's inputs and outputs, and drift against them.

A profile is taken of the training data when a model is trained and travels in
its bundle, so monitoring never needs the training data again. Each column
becomes a histogram: quantile bins for numeric values, the most frequent
categories (plus "other") for categorical ones, and always a bin for missing
values. Drift is the population stability index (PSI) between the reference
histogram and the same bins filled with current values.

numpy only, so the server and the monitor can both use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keel.schema import MISSING_CATEGORY, NUMERIC

N_QUANTILE_BINS = 10
MAX_CATEGORIES = 50
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class ColumnProfile:
    """Bins of one column and the share of reference rows in each.

    Numeric: ``edges`` are interior cut points; bin i holds values in
    [edges[i-1], edges[i]). Categorical: one bin per category, then "other".
    The last share is always the missing share.
    """

    name: str
    kind: str
    count: int
    shares: list[float]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    mean: float | None = None  # numeric: of the non-missing values (older bundles: None)
    std: float | None = None

    @property
    def missing_share(self) -> float:
        return self.shares[-1]

    def counts_of(self, values: np.ndarray) -> np.ndarray:
        """Bin counts of ``values`` over this profile's bins (missing last)."""
        if self.kind == NUMERIC:
            return _numeric_counts(values.astype(np.float64, copy=False), self.edges)
        return _categorical_counts(values, self.categories)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Drift:
    """How far one column moved: PSI and missing shares, with the row count."""

    column: str
    psi: float
    rows: int
    missing_reference: float
    missing_current: float


def profile_column(name: str, kind: str, values: np.ndarray) -> ColumnProfile:
    """The reference histogram of one column of canonical values."""
    if kind == NUMERIC:
        x = values.astype(np.float64, copy=False)
        finite = x[~np.isnan(x)]
        qs = np.quantile(finite, np.linspace(0, 1, N_QUANTILE_BINS + 1)[1:-1]) if finite.size else np.array([])
        edges = [float(e) for e in np.unique(qs)]
        counts = _numeric_counts(x, edges)
        mean, std = (float(finite.mean()), float(finite.std())) if finite.size else (None, None)
        return ColumnProfile(name, kind, int(x.size), _shares(counts), edges=edges, mean=mean, std=std)
    present = values[values != MISSING_CATEGORY]
    cats, freq = np.unique(present.astype(str), return_counts=True) if present.size else ([], [])
    top = [str(c) for c, _ in sorted(zip(cats, freq, strict=True), key=lambda cf: -cf[1])[:MAX_CATEGORIES]]
    counts = _categorical_counts(values, top)
    return ColumnProfile(name, kind, int(values.size), _shares(counts), categories=top)


def build_profile(arrays: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, Any]:
    """Profiles of many columns, as a JSON-ready dict {column: profile}."""
    return {name: profile_column(name, kinds[name], arrays[name]).to_dict() for name in kinds}


def load_profile(raw: dict[str, Any]) -> dict[str, ColumnProfile]:
    """The column profiles of a profile.json (keys starting with ``keel_slices`` hold per-slice
    statistics instead, see keel.monitoring.slices)."""
    return {name: ColumnProfile(**spec) for name, spec in raw.items() if not name.startswith("keel_slices")}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two histograms (shares or counts)."""
    e = _normalise(np.asarray(expected, dtype=np.float64))
    a = _normalise(np.asarray(actual, dtype=np.float64))
    e, a = np.clip(e, PSI_EPSILON, None), np.clip(a, PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_of(profile: ColumnProfile, values: np.ndarray) -> Drift:
    """PSI of current ``values`` against a reference column profile."""
    counts = profile.counts_of(values)
    current = _shares(counts)
    return Drift(
        column=profile.name,
        psi=psi(np.array(profile.shares), np.array(current)),
        rows=int(values.size),
        missing_reference=profile.missing_share,
        missing_current=current[-1],
    )


def _numeric_counts(x: np.ndarray, edges: list[float]) -> np.ndarray:
    missing = np.isnan(x)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), x[~missing], side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, missing.sum())


def _categorical_counts(values: np.ndarray, categories: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    other, missing = len(categories), len(categories) + 1
    codes = np.fromiter(
        (missing if v == MISSING_CATEGORY or v is None else index.get(v, other) for v in values),
        dtype=np.int64,
        count=len(values),
    )
    return np.bincount(codes, minlength=len(categories) + 2).astype(np.float64)


def _shares(counts: np.ndarray) -> list[float]:
    return [float(s) for s in _normalise(counts)]


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts
