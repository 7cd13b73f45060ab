"""Drift of logged inputs and predictions against the reference profile, calibrated for
sample size, so that a million quiet rows do not flag every column.

Per column, over the profile's bins (quantile bins or categories, and a missing bin):

- **PSI** (population stability index) and the **Jensen-Shannon distance** (base 2, 0 to 1);
- a **chance threshold**: with ``n`` reference and ``m`` current rows in ``k`` occupied
  bins, PSI / (1/n + 1/m) is about chi-square with k - 1 degrees of freedom when nothing
  moved, so the threshold is that distribution's 1 - ``alpha`` quantile times (1/n + 1/m).
  It shrinks as the samples grow, which is why ``min_psi`` is needed too.

| status | rule |
|---|---|
| ok | PSI at or below the chance threshold, or below ``min_psi`` (0.005) |
| drift | PSI above the chance threshold and at least ``min_psi`` |
| warn | ... and at least ``psi_warn`` (0.1) |
| alert | ... and at least ``psi_alert`` (0.25) |

Measured here (normal column, 10 quantile bins, reference 20,000 rows; 20 draws each):
no shift gives PSI about 0.0008 at 10,000 rows (threshold 0.0042) and 0.00001 at
1,000,000 (threshold 0.0014); a 0.1 standard deviation mean shift gives 0.007 to 0.011 at
10,000 rows, so it is flagged; a 0.05 shift at 1,000,000 rows (PSI 0.0025) is beyond chance
but below ``min_psi``, so it is not.

Text columns: the same test on the histogram of tokens per text (length), and again on the
vocabulary (the shares of training's most frequent tokens, then "other"), with the number
of texts, not tokens, as the sample size (tokens of one text are not independent, so this
is the conservative choice); the column's status is the worse of the two.

Also per column: the share of values in categories training never saw (when training's
categories were all listed) and new missing values. Predictions: the window's mean score
against training's, in standard errors (sd / sqrt(rows)), flagged beyond
``prediction_sigmas`` (2): a control chart of the mean prediction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from keel.monitoring.domain import DomainCheck
from keel.monitoring.embedding import EmbeddingDrift
from keel.monitoring.performance import Performance
from keel.monitoring.slices import SliceGroup
from keel.profile import NOT_TOKEN_PATTERN, TOKEN_PATTERN, ColumnProfile, numeric_counts, psi
from keel.schema import LOG_SCORE, MISSING_CATEGORY, NUMERIC, TEXT

SEVERITY = {"ok": 0, "drift": 1, "warn": 2, "alert": 3}


@dataclass(frozen=True)
class Thresholds:
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    min_psi: float = 0.005
    alpha: float = 0.001
    prediction_sigmas: float = 2.0


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    rows: int
    psi: float
    js_distance: float
    chance_threshold: float  # the PSI chance alone exceeds with probability alpha at these sizes
    status: str
    missing_reference: float
    missing_current: float
    unseen_share: float | None = None  # categorical: values in categories training never saw
    vocabulary_psi: float | None = None  # text: PSI of the token shares (the length is ``psi``)
    notes: list[str] = field(default_factory=list)
    importance: float | None = None  # share of the served output's dependence (bundle metadata)
    bins: list[str] = field(default_factory=list)  # the profile's bins, for plots
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PredictionShift:
    """The window's mean score on training's control chart."""

    mean_reference: float
    std_reference: float
    mean_current: float
    rows: int
    sigmas: float  # (current - reference) / (sd / sqrt(rows))
    alert: bool

    def describe(self) -> str:
        return (
            f"mean prediction {self.mean_current:.4f} vs training {self.mean_reference:.4f} "
            f"({self.sigmas:+.1f} standard errors)"
        )


@dataclass(frozen=True)
class DriftReport:
    model: str
    version: str
    rows: int
    columns: list[ColumnDrift]
    prediction: PredictionShift | None = None
    start: str | None = None
    end: str | None = None
    windows: list[DriftReport] = field(default_factory=list)  # per --window, when asked
    performance: Performance | None = None  # estimated, and measured where labels joined
    domain: DomainCheck | None = None  # the multivariate check (bundles with a reference sample)
    slices: list[SliceGroup] = field(default_factory=list)  # per evaluate.slices group (informative)
    embeddings: list[EmbeddingDrift] = field(default_factory=list)  # text columns (keel.monitoring.embedding)
    embedding_note: str = ""  # why there are none, when the check could not run

    @property
    def moved(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.status != "ok"]

    @property
    def alerts(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.status == "alert"]

    @property
    def alerting(self) -> bool:
        """An alert for schedulers: a column at ``alert``, the prediction rule, the domain
        classifier at ``alert``, or measured performance that decayed."""
        return (
            bool(self.alerts)
            or (self.prediction is not None and self.prediction.alert)
            or (self.domain is not None and self.domain.status == "alert")
            or any(e.status == "alert" for e in self.embeddings)
            or (self.performance is not None and self.performance.decayed)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chance_threshold(n_reference: int, n_current: int, bins: int, alpha: float) -> float:
    """The PSI that two samples of one distribution exceed with probability ``alpha``."""
    from scipy.stats import chi2

    if n_reference <= 0 or n_current <= 0 or bins < 2:
        return math.inf
    return float(chi2.ppf(1 - alpha, bins - 1) * (1 / n_reference + 1 / n_current))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two histograms."""
    p = np.asarray(expected, dtype=np.float64)
    q = np.asarray(actual, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def column_counts(profile: ColumnProfile, column: Any) -> np.ndarray:
    """Bin counts of a logged (pyarrow) column over the profile's bins, missing last.

    Categorical columns are counted by Arrow (one pass in C++), then the few distinct values
    are mapped to bins, instead of looking up every row in Python.
    """
    import pyarrow.compute as pc

    if profile.kind == NUMERIC:
        return profile.counts_of(column.to_numpy(zero_copy_only=False).astype(np.float64))
    if profile.kind == TEXT:  # tokens per text, counted by Arrow
        lengths = pc.count_substring_regex(column, TOKEN_PATTERN).to_numpy(zero_copy_only=False)
        return numeric_counts(profile, lengths.astype(np.float64))

    index = {c: i for i, c in enumerate(profile.categories)}
    other, missing = len(profile.categories), len(profile.categories) + 1
    counts = np.zeros(len(profile.categories) + 2)
    for item in pc.value_counts(column).to_pylist():
        value, count = item["values"], item["counts"]
        if value is None or value == MISSING_CATEGORY:
            counts[missing] += count
        else:
            counts[index.get(str(value), other)] += count
    return counts


def psi_status(value: float, threshold: float, limits: Thresholds) -> str:
    """The status table of the module doc: beyond chance and ``min_psi``, then by size."""
    if value <= threshold or value < limits.min_psi:
        return "ok"
    return "alert" if value >= limits.psi_alert else "warn" if value >= limits.psi_warn else "drift"


def column_drift(profile: ColumnProfile, column: Any, limits: Thresholds) -> ColumnDrift:
    counts = column_counts(profile, column)
    rows = int(counts.sum())
    reference = np.asarray(profile.shares, dtype=np.float64)
    current = counts / rows if rows else counts
    value = psi(reference, current) if rows else 0.0
    occupied = int(np.count_nonzero((reference > 0) | (current > 0)))
    threshold = chance_threshold(profile.count, rows, occupied, limits.alpha)
    status = psi_status(value, threshold, limits)
    notes = []
    unseen = None
    if profile.kind not in (NUMERIC, TEXT) and profile.categories:
        other_reference = reference[len(profile.categories)]
        other_current = float(current[len(profile.categories)]) if rows else 0.0
        if other_reference == 0:  # every training category is listed: 'other' means never seen
            unseen = other_current
            if unseen > 0:
                notes.append(f"{unseen:.1%} of values in categories training never saw")
    vocabulary = None
    if profile.kind == TEXT and rows and profile.token_shares:
        vocabulary, vocabulary_status, note = _vocabulary_drift(profile, column, rows, limits)
        notes.append(note)
        if SEVERITY[vocabulary_status] > SEVERITY[status]:
            status = vocabulary_status
    missing_reference, missing_current = float(reference[-1]), float(current[-1]) if rows else 0.0
    if missing_reference == 0 and missing_current > 0:
        notes.append(f"missing values appeared ({missing_current:.1%}); training had none")
    return ColumnDrift(
        column=profile.name,
        kind=profile.kind,
        rows=rows,
        psi=value,
        js_distance=js_distance(reference + 1e-12, current + 1e-12) if rows else 0.0,
        chance_threshold=threshold,
        status=status,
        missing_reference=missing_reference,
        missing_current=missing_current,
        unseen_share=unseen,
        vocabulary_psi=vocabulary,
        notes=notes,
        bins=bin_labels(profile),
        reference_shares=[float(x) for x in reference],
        current_shares=[float(x) for x in current],
    )


def _vocabulary_drift(profile: ColumnProfile, column: Any, rows: int, limits: Thresholds) -> tuple[float, str, str]:
    """PSI of the window's token shares over training's vocabulary, its status, and a note."""
    import pyarrow.compute as pc

    words = pc.list_flatten(pc.split_pattern_regex(pc.utf8_lower(column.fill_null("")), NOT_TOKEN_PATTERN))
    words = words.filter(pc.not_equal(words, ""))
    index = {t: i for i, t in enumerate(profile.categories)}
    counts = np.zeros(len(profile.categories) + 1)
    for item in pc.value_counts(words).to_pylist():
        counts[index.get(item["values"], len(profile.categories))] += item["counts"]
    reference = np.asarray(profile.token_shares, dtype=np.float64)
    current = counts / counts.sum() if counts.sum() else counts
    value = psi(reference, current) if counts.sum() else 0.0
    threshold = vocabulary_threshold(profile, rows, limits.alpha)
    status = psi_status(value, threshold, limits)
    note = (
        f"vocabulary PSI {value:.3f} (chance {threshold:.3f}); {current[-1]:.1%} of tokens outside training's "
        f"{len(profile.categories)} most frequent (training {reference[-1]:.1%})"
    )
    return value, status, note


def vocabulary_threshold(profile: ColumnProfile, rows: int, alpha: float) -> float:
    """The vocabulary PSI chance exceeds with probability ``alpha`` at these sample sizes: the
    reference's measured no-change PSI per unit of (1/n + 1/m) texts (``vocabulary_null``),
    times the chi-square quantile over its mean for the vocabulary's bins."""
    from scipy.stats import chi2

    if not profile.vocabulary_null or rows <= 0 or profile.count <= 0:
        return math.inf
    bins = max(len(profile.token_shares) - 1, 1)
    return profile.vocabulary_null * float(chi2.ppf(1 - alpha, bins)) / bins * (1 / profile.count + 1 / rows)


def bin_labels(profile: ColumnProfile) -> list[str]:
    """Readable names of a profile's bins, missing last."""
    if profile.kind not in (NUMERIC, TEXT):
        return [*profile.categories, "other", "missing"]
    edges = [f"{e:.4g}" for e in profile.edges]
    if not edges:
        return ["all", "missing"]
    return [f"< {edges[0]}", *(f"{a} to {b}" for a, b in itertools.pairwise(edges)), f">= {edges[-1]}", "missing"]


def prediction_shift(profile: ColumnProfile | None, column: Any, sigmas: float) -> PredictionShift | None:
    """The window's mean score against training's, on a control chart (None without moments)."""
    if profile is None or profile.mean is None or not profile.std:
        return None
    scores = column.to_numpy(zero_copy_only=False).astype(np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        return None
    mean = float(scores.mean())
    z = (mean - profile.mean) / (profile.std / math.sqrt(scores.size))
    return PredictionShift(profile.mean, profile.std, mean, int(scores.size), float(z), abs(z) > sigmas)


def compare(
    profile: dict[str, ColumnProfile], table: Any, limits: Thresholds, importance: dict[str, float] | None = None
) -> list[ColumnDrift]:
    """Every profiled column present in the log: most severe first, then by drift x importance
    (how much the served output depends on the column; PSI alone where the bundle has none)."""
    weights = importance or {}
    out = [
        replace(column_drift(reference, table.column(name), limits), importance=weights.get(name))
        for name, reference in profile.items()
        if name in table.column_names
    ]
    return sorted(
        out, key=lambda c: (-SEVERITY[c.status], -c.psi * (c.importance if c.importance is not None else 1.0))
    )


def report(
    model: str,
    version: str,
    profile: dict[str, ColumnProfile],
    table: Any,
    limits: Thresholds,
    start: str | None = None,
    end: str | None = None,
    importance: dict[str, float] | None = None,
) -> DriftReport:
    columns = compare(profile, table, limits, importance)
    shift = None
    if LOG_SCORE in table.column_names:
        shift = prediction_shift(profile.get(LOG_SCORE), table.column(LOG_SCORE), limits.prediction_sigmas)
    return DriftReport(model, version, table.num_rows, columns, shift, start, end)
