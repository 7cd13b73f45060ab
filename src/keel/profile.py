"""Reference profiles of a model's inputs and outputs, and drift against them.

A profile is taken of the training data when a model is trained and travels in
its bundle, so monitoring never needs the training data again. Each column
becomes a histogram: quantile bins for numeric values, the most frequent
categories (plus "other") for categorical ones, quantile bins of the number of
tokens for text (plus the shares of its most frequent tokens, the vocabulary), and
always a bin for missing values. Drift is the population stability index (PSI) between the reference
histogram and the same bins filled with current values.

numpy only, so the server and the monitor can both use it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from keel.schema import MISSING_CATEGORY, NUMERIC, TEXT, TOKEN_PATTERN

N_QUANTILE_BINS = 10
MAX_CATEGORIES = 50
MAX_TOKENS = 500  # the vocabulary a text profile keeps: its most frequent tokens, then "other"
NULL_SPLITS = 8  # random halves of the reference that calibrate the vocabulary test
NULL_ROWS = 20_000  # at most this many reference texts for that
NOT_TOKEN_PATTERN = r"[^a-z0-9]+"  # what separates tokens once lower-cased
TOKEN = re.compile(TOKEN_PATTERN)
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class ColumnProfile:
    """Bins of one column and the share of reference rows in each.

    Numeric: ``edges`` are interior cut points; bin i holds values in
    [edges[i-1], edges[i]). Categorical: one bin per category, then "other".
    Text: the numeric bins of each text's number of tokens, and ``categories`` the most
    frequent tokens with ``token_shares`` their share of all tokens ("other" last).
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
    token_shares: list[float] = field(default_factory=list)  # text only
    vocabulary_null: float | None = None  # text: PSI of no change = this x (1/n + 1/m) texts

    @property
    def missing_share(self) -> float:
        return self.shares[-1]

    def counts_of(self, values: np.ndarray) -> np.ndarray:
        """Bin counts of ``values`` over this profile's bins (missing last)."""
        if self.kind == NUMERIC:
            return _numeric_counts(values.astype(np.float64, copy=False), self.edges)
        if self.kind == TEXT:
            return _numeric_counts(token_counts(values), self.edges)
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
    if kind == TEXT:
        per_text = [TOKEN.findall(text.lower()) if text else [] for text in values]
        counts = np.array([len(w) if text else np.nan for w, text in zip(per_text, values, strict=True)])
        lengths = profile_column(name, NUMERIC, counts)  # tokens per text, as token_counts gives
        tokens: dict[str, int] = {}
        for words in per_text:
            for token in words:
                tokens[token] = tokens.get(token, 0) + 1
        top = sorted(tokens.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TOKENS]
        total = sum(tokens.values())
        shares = [c / total for _, c in top] if total else []
        other = 1.0 - sum(shares) if total else 0.0
        vocabulary = [t for t, _ in top]
        null = _vocabulary_null(per_text, vocabulary)
        return replace(lengths, kind=TEXT, categories=vocabulary, token_shares=[*shares, other], vocabulary_null=null)
    if kind == NUMERIC:
        x = values.astype(np.float64, copy=False)
        finite = x[~np.isnan(x)]
        qs = np.quantile(finite, np.linspace(0, 1, N_QUANTILE_BINS + 1)[1:-1]) if finite.size else np.array([])
        edges = [float(e) for e in np.unique(qs)]
        counts = _numeric_counts(x, edges)
        mean, std = (float(finite.mean()), float(finite.std())) if finite.size else (None, None)
        return ColumnProfile(name, kind, int(x.size), _shares(counts), edges=edges, mean=mean, std=std)
    present = values[values != MISSING_CATEGORY]
    cats, freq = np.unique(present.astype(str), return_counts=True) if present.size else (np.array([]), np.array([]))
    pairs: list[tuple[Any, Any]] = sorted(zip(cats.tolist(), freq.tolist(), strict=True), key=lambda cf: -cf[1])
    kept = [str(c) for c, _ in pairs[:MAX_CATEGORIES]]
    counts = _categorical_counts(values, kept)
    return ColumnProfile(name, kind, int(values.size), _shares(counts), categories=kept)


def build_profile(arrays: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, Any]:
    """Profiles of many columns, as a JSON-ready dict {column: profile}."""
    return {name: profile_column(name, kinds[name], arrays[name]).to_dict() for name in kinds}


def load_profile(raw: dict[str, Any]) -> dict[str, ColumnProfile]:
    """The column profiles of a profile.json (keys starting with ``keel_slices`` hold per-slice
    statistics instead, see keel.monitoring.slices)."""
    return {name: ColumnProfile(**spec) for name, spec in raw.items() if not name.startswith("keel_slices")}


def _vocabulary_null(per_text: list[list[str]], vocabulary: list[str]) -> float | None:
    """How large the vocabulary PSI between two samples of these texts is when nothing changed,
    per unit of (1/n + 1/m) texts: the mean over random halves. A text's tokens are not
    independent draws (a spam text repeats "free"), so counting tokens as the sample size would
    flag chance; this measures the real spread instead (keel.monitoring.drift uses it)."""
    n = len(per_text)
    if n < 20 or not vocabulary:
        return None
    index = {t: i for i, t in enumerate(vocabulary)}
    rows = np.zeros((n, len(vocabulary) + 1))
    for i, words in enumerate(per_text):
        for word in words:
            rows[i, index.get(word, len(vocabulary))] += 1
    rng = np.random.default_rng(0)
    if n > NULL_ROWS:
        rows, n = rows[rng.choice(n, NULL_ROWS, replace=False)], NULL_ROWS
    values = []
    for _ in range(NULL_SPLITS):
        half = rng.permutation(n) < n // 2
        values.append(psi(rows[half].sum(0), rows[~half].sum(0)) / (1 / half.sum() + 1 / (~half).sum()))
    return float(np.mean(values))


def token_counts(values: np.ndarray) -> np.ndarray:
    """Tokens per text (NaN for a missing one), by the TF-IDF token pattern."""
    return np.fromiter((len(TOKEN.findall(v)) if v else np.nan for v in values), dtype=np.float64, count=len(values))


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


def numeric_counts(profile: ColumnProfile, x: np.ndarray) -> np.ndarray:
    """Counts of numbers (NaN: missing) over a profile's numeric bins (text: over its lengths)."""
    return _numeric_counts(x, profile.edges)


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
