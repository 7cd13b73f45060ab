"""Drift of logged inputs and predictions against the reference profile, calibrated for
sample size on both sides, so that a million quiet rows do not flag every column and a
30-column dashboard does not alarm by chance every day.

Per column, over the profile's bins (quantile bins or categories, and a missing bin):

- **PSI** (population stability index) and the **Jensen-Shannon distance** (base 2, 0 to 1):
  the size of the change;
- **p**: the chi-square test of homogeneity of the reference's counts (``profile.count``
  rows) against the window's: both are samples. Bins the smaller sample is expected to fill
  with fewer than 5 rows are pooled first, so a 100-row window over 50 categories does not
  see chance in every empty bin. ``chance_threshold`` shows the PSI that chance exceeds with
  probability ``alpha`` at these sizes (chi-square quantile times 1/n + 1/m), for reading.

| status | rule |
|---|---|
| ok | p at or above ``alpha`` (0.001), or PSI below ``min_psi`` (0.005) |
| drift | p below ``alpha`` and PSI at least ``min_psi`` |
| warn | ... and PSI at least ``psi_warn`` (0.1); or at least ``psi_alert`` without the family-wise p |
| alert | PSI at least ``psi_alert`` (0.25) and p below ``alert_alpha`` |

``alert_alpha`` is each test's share of the run's false-alarm rate (``family_alpha``:
``monitor.false_alarm_rate`` 0.01 over every alerting test of every window: columns, the
prediction chart, the domain classifier, text drift, each watched metric), so a run where
nothing changed alerts with probability at most 1%, however many columns and windows.

Text columns: the same on the histogram of tokens per text (length), and on the vocabulary
(the shares of training's most frequent tokens, then "other"), whose no-change spread is
measured on the reference at training (tokens of one text are not independent); the
column's status is the worse of the two.

Also per column: the share of values in categories training never saw (when training's
categories were all listed) and new missing values. Predictions: the window's mean score
against the hold-out's, in standard errors of their difference, sqrt(sd_ref^2 / n_ref +
sd^2 / m) (the reference mean is an estimate from ``n_ref`` hold-out rows too); it alerts
beyond ``prediction_sigmas`` (2) and beyond the family-wise two-sided ``alert_alpha``.
bench/false_alarms.py measures every rate on quiet windows of the shared data sets.
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
    alpha: float = 0.001  # a test's flag ("drift"): its chance of flagging what did not move
    prediction_sigmas: float = 2.0  # the prediction chart's band (an alert also needs alert_alpha)
    alert_alpha: float = 0.001  # an alert: the run's family-wise rate over its tests (see family_alpha)


def family_alpha(false_alarm_rate: float, tests: int) -> float:
    """Each test's share of a run's false-alarm rate (Bonferroni): with ``tests`` tests (columns,
    the prediction chart, the domain classifier, text drift, decay, over every window), a run
    where nothing changed raises any alert with probability at most ``false_alarm_rate``."""
    return false_alarm_rate / max(tests, 1)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    rows: int
    psi: float
    js_distance: float
    chance_threshold: float  # the PSI chance alone exceeds with probability alpha at these sizes
    status: str
    p_value: float  # of the chi-square test of homogeneity (reference counts vs the window's)
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
    sigmas: float  # (current - reference) / sqrt(sd_ref^2 / n_ref + sd_cur^2 / rows): both means' error
    alert: bool
    reference_rows: int = 0  # the hold-out predictions the reference mean is from (0: treated as exact)
    p_value: float = 1.0  # two-sided
    alert_sigmas: float = 0.0  # the band an alert must leave: max(prediction_sigmas, the family-wise z)

    def describe(self) -> str:
        return (
            f"mean prediction {self.mean_current:.4f} vs training {self.mean_reference:.4f} "
            f"({self.sigmas:+.1f} standard errors; alert beyond {self.alert_sigmas:.1f})"
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
    tests: int = 0  # alerting tests in the whole run (every window's), for the family-wise rule
    alert_alpha: float = 0.0  # each test's share of monitor.false_alarm_rate

    @property
    def false_alarm_rate(self) -> float:
        """The chance that this run alerts when nothing changed (at most ``monitor.false_alarm_rate``)."""
        return min(self.alert_alpha * self.tests, 1.0)

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


MIN_EXPECTED = 5.0  # bins expected to hold fewer rows in the smaller sample are merged for the test


def homogeneity_p(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, int]:
    """The chi-square test of homogeneity of two histograms (each side a sample with its own
    error): its p-value and the number of bins tested. Bins the smaller sample is expected to
    fill with fewer than ``MIN_EXPECTED`` rows are pooled into one, where the chi-square
    approximation holds (a window of 100 rows over 50 categories would otherwise see chance
    in every empty bin)."""
    from scipy.stats import chi2

    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0:
        return 1.0, 0
    pooled = (ref + cur) / (n + m)
    keep = pooled * min(n, m) >= MIN_EXPECTED
    if (~keep).any():
        ref = np.r_[ref[keep], ref[~keep].sum()]
        cur = np.r_[cur[keep], cur[~keep].sum()]
        pooled = (ref + cur) / (n + m)
    occupied = pooled > 0
    ref, cur, pooled = ref[occupied], cur[occupied], pooled[occupied]
    if len(pooled) < 2:
        return 1.0, len(pooled)
    statistic = float(np.sum((ref - n * pooled) ** 2 / (n * pooled) + (cur - m * pooled) ** 2 / (m * pooled)))
    return float(chi2.sf(statistic, len(pooled) - 1)), len(pooled)


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


def psi_status(value: float, p_value: float, limits: Thresholds) -> str:
    """The status table of the module doc: beyond chance (p below ``alpha``) and ``min_psi``,
    then by size; an alert also needs p below the family-wise ``alert_alpha``."""
    if p_value >= limits.alpha or value < limits.min_psi:
        return "ok"
    if value >= limits.psi_alert:
        return "alert" if p_value < limits.alert_alpha else "warn"
    return "warn" if value >= limits.psi_warn else "drift"


def column_drift(profile: ColumnProfile, column: Any, limits: Thresholds) -> ColumnDrift:
    counts = column_counts(profile, column)
    rows = int(counts.sum())
    reference = np.asarray(profile.shares, dtype=np.float64)
    current = counts / rows if rows else counts
    value = psi(reference, current) if rows else 0.0
    p_value, tested = homogeneity_p(reference * profile.count, counts)
    threshold = chance_threshold(profile.count, rows, tested, limits.alpha)
    status = psi_status(value, p_value, limits)
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
        vocabulary, vocabulary_p, note = _vocabulary_drift(profile, column, rows)
        notes.append(note)
        vocabulary_status = psi_status(vocabulary, vocabulary_p, limits)
        if SEVERITY[vocabulary_status] > SEVERITY[status]:
            status, p_value = vocabulary_status, vocabulary_p
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
        p_value=p_value,
        missing_reference=missing_reference,
        missing_current=missing_current,
        unseen_share=unseen,
        vocabulary_psi=vocabulary,
        notes=notes,
        bins=bin_labels(profile),
        reference_shares=[float(x) for x in reference],
        current_shares=[float(x) for x in current],
    )


def _vocabulary_drift(profile: ColumnProfile, column: Any, rows: int) -> tuple[float, float, str]:
    """PSI of the window's token shares over training's vocabulary, its p-value, and a note."""
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
    p_value = vocabulary_p(profile, value, rows)
    note = (
        f"vocabulary PSI {value:.3f} (p {p_value:.2g}); {current[-1]:.1%} of tokens outside training's "
        f"{len(profile.categories)} most frequent (training {reference[-1]:.1%})"
    )
    return value, p_value, note


def vocabulary_p(profile: ColumnProfile, value: float, rows: int) -> float:
    """The chance of a vocabulary PSI of ``value`` or more when nothing changed. Tokens of one
    text are not independent, so the scale is measured: the reference's no-change PSI per unit
    of (1/n + 1/m) texts (``vocabulary_null``) is the mean of a chi-square over its bins."""
    from scipy.stats import chi2

    if not profile.vocabulary_null or rows <= 0 or profile.count <= 0:
        return 1.0
    bins = max(len(profile.token_shares) - 1, 1)
    scale = profile.vocabulary_null * (1 / profile.count + 1 / rows) / bins
    return float(chi2.sf(value / scale, bins))


def bin_labels(profile: ColumnProfile) -> list[str]:
    """Readable names of a profile's bins, missing last."""
    if profile.kind not in (NUMERIC, TEXT):
        return [*profile.categories, "other", "missing"]
    edges = [f"{e:.4g}" for e in profile.edges]
    if not edges:
        return ["all", "missing"]
    return [f"< {edges[0]}", *(f"{a} to {b}" for a, b in itertools.pairwise(edges)), f">= {edges[-1]}", "missing"]


def prediction_shift(
    profile: ColumnProfile | None, column: Any, sigmas: float, alert_alpha: float = 0.001
) -> PredictionShift | None:
    """The window's mean score against the hold-out's, in standard errors of their difference:
    both means are estimates (the reference from ``profile.count`` hold-out rows), so
    sqrt(sd_ref^2 / n_ref + sd^2 / rows). A window alerts beyond ``sigmas`` and beyond the
    two-sided family-wise ``alert_alpha`` (None without moments)."""
    from scipy.stats import norm

    if profile is None or profile.mean is None or not profile.std:
        return None
    scores = column.to_numpy(zero_copy_only=False).astype(np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        return None
    mean = float(scores.mean())
    spread = float(scores.std(ddof=1)) if scores.size > 1 else profile.std
    error = math.sqrt(profile.std**2 / max(profile.count, 1) + spread**2 / scores.size)
    z = (mean - profile.mean) / error if error > 0 else 0.0
    p_value = float(2 * norm.sf(abs(z)))
    band = max(sigmas, float(norm.isf(alert_alpha / 2)))
    return PredictionShift(
        profile.mean, profile.std, mean, int(scores.size), float(z), abs(z) > band, profile.count, p_value, band
    )


def compare(
    profile: dict[str, ColumnProfile], table: Any, limits: Thresholds, importance: dict[str, float] | None = None
) -> list[ColumnDrift]:
    """Every profiled column present in the log, ordered by ``drift_rank``."""
    weights = importance or {}
    out = [
        replace(column_drift(reference, table.column(name), limits), importance=weights.get(name))
        for name, reference in profile.items()
        if name in table.column_names
    ]
    return sorted(out, key=drift_rank)


def drift_rank(c: ColumnDrift) -> tuple[int, float, float]:
    """Most severe first, then drift x importance, then drift alone: columns whose importance
    ties (0 for columns the model ignores) still come most-drifted first."""
    weight = c.importance if c.importance is not None else 1.0
    return (-SEVERITY[c.status], -c.psi * weight, -c.psi)


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
        shift = prediction_shift(
            profile.get(LOG_SCORE), table.column(LOG_SCORE), limits.prediction_sigmas, limits.alert_alpha
        )
    return DriftReport(model, version, table.num_rows, columns, shift, start, end)
