"""Leakage candidates, each with its evidence.

| check | severity | rule |
|---|---|---|
| ``leak.single_column`` | block | one column alone predicts the target almost perfectly, cross-validated: AUC >= 0.99 (binary), accuracy skill >= 0.98 (multiclass), R² >= 0.99 or rank correlation >= 0.995 (regression) |
| ``leak.sum_of_columns`` | block | regression target equals a + b or a - b of two columns on >= 99% of rows |
| ``leak.carried_skill`` | block | a noisy copy of the target (``keel.data.reliance``) whose skill alone is >= 0.85, or >= 0.7 when the target alone predicts it back with skill >= 0.5 |
| - a noisy copy | | once the target is known the other columns explain <= 15% of the column (``beyond``), or the target alone predicts it with skill >= 0.9 and the others add <= 0.01 |
| ``leak.carried_skill`` | warn | it removes >= 50% of the fixed model's error without it and alone has skill >= 0.5 |
| - or | warn | alone it comes within 90% of the model's skill with at most half the next column's error ("derived from the target" when a noisy copy too) |
| ``leak.dominant_column`` | warn | one column's skill is >= 0.5 and at least twice the next column's, or at least the free text's beside it: is it known at prediction time? |
| (names) | warn | a name like chargeback, refund, outcome, result, status, closed, _after adds "recorded after the outcome" to a finding, and lowers the warning's bar to carried >= 0.3 and alone >= 0.3; a name never blocks |
| ``leak.identifier`` | warn | an identifier column: one entity's rows can sit in both train and test |
| ``leak.after_prediction_time`` | warn | a datetime column is later than the time column on >= 1% of rows |
| ``leak.train_test_overlap`` | block | rows of the test set are exact copies of training rows |
| ``leak.train_test_near_overlap`` | warn | test texts have a near-copy (MinHash Jaccard >= 0.8) among the training texts |
| ``split.time_order`` | warn | rows are ordered in time but no time column was named: a random split trains on the future |
| ``split.time_column`` | warn | a timestamp column exists but no time column was named |
| ``split.ignores_time_order`` | warn | a given split puts >= 1% of test rows before the latest training row |

Skill puts the metrics on one scale: 2·AUC-1 (binary), (accuracy - majority)/(1 - majority)
(multiclass), R² (regression). Single-column strength is the out-of-fold target mean of the
column's bins (numeric: quantile bins; categorical: its most frequent categories), 5-fold.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STRENGTH_SAMPLE = 50_000
NUMERIC_BINS = 64
MAX_CODES = 256
FOLDS = 5
SMOOTHING = 10.0
NEAR_PERFECT = {"binary": 0.99, "multiclass": 0.98, "regression": 0.99}
DOMINANT_SKILL = 0.5
DOMINANT_RATIO = 2.0
COPY_BEYOND = 0.15
COPY_ALONE = 0.7
COPY_FROM_TARGET = 0.5
COPY_ALONE_ONE_WAY = 0.85
NEAR_COPY = 0.9  # the target alone predicts the column this well ...
COPY_GAIN = 0.01  # ... and the other columns add at most this much skill to it
CARRIED_WARN = 0.5
ALONE_WARN = 0.5
NAMED_CARRIED = 0.3
NAMED_ALONE = 0.3
NEAR_MODEL_SHARE = 0.9
NEXT_ERROR_RATIO = 2.0
POST_OUTCOME = re.compile(
    r"chargeback|refund|outcome|result|status|closed|cancel|churned|default(ed)?$|_after|after_|post_|final",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One thing triage found: a check id, its severity, a message with the evidence."""

    check: str
    severity: str  # block | warn | info
    message: str
    column: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.check}:{self.column}" if self.column else self.check

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Strength:
    """How well one column alone predicts the target, out of fold."""

    column: str
    metric: str
    value: float
    skill: float


def encode(series: Any) -> np.ndarray:
    """Integer codes of a column: quantile bins or top categories, with missing as its own code."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return np.zeros(len(x), dtype=np.int64)
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
        codes = np.searchsorted(edges, x, side="right")
        codes[~np.isfinite(x)] = len(edges) + 1
        return codes.astype(np.int64)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if len(uniques) > MAX_CODES:
        frequent = np.argsort(-np.bincount(codes[codes >= 0], minlength=len(uniques)))[: MAX_CODES - 2]
        remap = np.full(len(uniques), MAX_CODES - 2, dtype=np.int64)
        remap[frequent] = np.arange(len(frequent))
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return np.where(codes < 0, codes.max() + 1 if codes.size else 0, codes).astype(np.int64)


def out_of_fold_means(codes: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """For each row, the smoothed mean of ``y`` (N x C) over rows of its code in other folds."""
    k = int(codes.max()) + 1
    prior = y.mean(axis=0)
    out = np.empty_like(y, dtype=np.float64)
    for f in range(FOLDS):
        test = folds == f
        train = ~test
        counts = np.bincount(codes[train], minlength=k).astype(np.float64)
        for c in range(y.shape[1]):
            sums = np.bincount(codes[train], weights=y[train, c], minlength=k)
            means = (sums + SMOOTHING * prior[c]) / (counts + SMOOTHING)
            out[test, c] = means[codes[test]]
    return out


def column_strengths(frame: Any, y: np.ndarray, task: str, columns: list[str], seed: int = 0) -> list[Strength]:
    """Out-of-fold strength of each column alone, strongest first (on a sample of rows)."""
    rng = np.random.default_rng(seed)
    index = np.arange(len(y))
    if len(index) > STRENGTH_SAMPLE:
        index = np.sort(rng.choice(index, STRENGTH_SAMPLE, replace=False))
    folds = rng.integers(0, FOLDS, size=len(index))
    target = y[index]
    out = []
    for name in columns:
        series = frame[name].iloc[index] if len(index) < len(y) else frame[name]
        out.append(_strength(name, series, target, task, folds))
    return sorted(out, key=lambda s: -s.skill)


def _strength(name: str, series: Any, y: np.ndarray, task: str, folds: np.ndarray) -> Strength:
    from sklearn.metrics import roc_auc_score

    codes = encode(series)
    if task == "binary":
        predicted = out_of_fold_means(codes, y.reshape(-1, 1).astype(np.float64), folds)[:, 0]
        auc = _symmetric_auc(roc_auc_score, y, predicted)
        raw = _raw_auc(series, y, roc_auc_score)
        auc = max(auc, raw)
        return Strength(name, "AUC", auc, 2 * auc - 1)
    if task == "multiclass":
        onehot = np.eye(int(y.max()) + 1)[y]
        predicted = out_of_fold_means(codes, onehot, folds).argmax(axis=1)
        accuracy = float(np.mean(predicted == y))
        base = float(np.bincount(y).max() / len(y))
        return Strength(name, "accuracy", accuracy, max(0.0, (accuracy - base) / max(1 - base, 1e-12)))
    predicted = out_of_fold_means(codes, y.reshape(-1, 1), folds)[:, 0]
    sst = float(np.sum((y - y.mean()) ** 2)) or 1.0
    r2 = max(0.0, 1 - float(np.sum((y - predicted) ** 2)) / sst)
    rank = _rank_correlation(series, y) if r2 >= 0.5 else 0.0  # a monotone copy of y is also strong in bins
    if rank >= 0.995:
        return Strength(name, "rank correlation", rank, rank)
    return Strength(name, "R²", r2, r2)


def _symmetric_auc(roc_auc_score: Any, y: np.ndarray, score: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1 - auc)


def _raw_auc(series: Any, y: np.ndarray, roc_auc_score: Any) -> float:
    """AUC of the raw values (either direction) for numeric columns without missing values."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or series.isna().any():
        return 0.5
    return _symmetric_auc(roc_auc_score, y, series.to_numpy(dtype=np.float64))


def _rank_correlation(series: Any, y: np.ndarray) -> float:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return 0.0
    x = series.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(x)
    if ok.sum() < 10 or np.std(x[ok]) == 0:
        return 0.0
    rx = np.argsort(np.argsort(x[ok]))
    ry = np.argsort(np.argsort(y[ok]))
    return abs(float(np.corrcoef(rx, ry)[0, 1]))


def strength_findings(strengths: list[Strength], task: str, rows: int) -> list[Finding]:
    """Near-perfect single columns (block) and one dominant column (warn)."""
    findings = []
    for s in strengths:
        if s.skill >= NEAR_PERFECT[task] or (s.metric == "AUC" and s.value >= NEAR_PERFECT["binary"]):
            findings.append(
                Finding(
                    "leak.single_column",
                    "block",
                    f"'{s.column}' alone predicts the target almost perfectly ({s.metric} {s.value:.3f}, "
                    f"{FOLDS}-fold on {min(rows, STRENGTH_SAMPLE):,} rows): it is probably derived from the target "
                    "or known only after it.",
                    s.column,
                    {"metric": s.metric, "value": s.value},
                )
            )
    if len(strengths) >= 2 and not findings:
        top, second = strengths[0], strengths[1]
        if top.skill >= DOMINANT_SKILL and top.skill >= DOMINANT_RATIO * max(second.skill, 1e-9):
            findings.append(
                Finding(
                    "leak.dominant_column",
                    "warn",
                    f"'{top.column}' alone reaches {top.metric} {top.value:.3f}, far above every other column "
                    f"(next: '{second.column}', {second.metric} {second.value:.3f}): check that it is known at "
                    "prediction time.",
                    top.column,
                    {"metric": top.metric, "value": top.value, "next": second.column, "next_value": second.value},
                )
            )
    return findings


def reliance_findings(strengths: list[Strength], relied: list[Any], found: list[Finding]) -> list[Finding]:
    """Noisy leaks: a column that carries most of the fixed model's skill, or that alone comes
    close to the model while far above the next column (``keel.data.reliance``)."""
    flagged = {f.column for f in found if f.check == "leak.single_column"}
    alone = {s.column: s for s in strengths}
    out = []
    for r in relied:
        if r.column in flagged:
            continue
        own = alone[r.column]
        others = [s.skill for s in strengths if s.column != r.column]
        next_skill = max(others, default=0.0)
        severity, why = _reliance_verdict(r, own.skill, next_skill)
        named = bool(POST_OUTCOME.search(r.column))
        if severity is None and named and r.carried >= NAMED_CARRIED and own.skill >= NAMED_ALONE:
            # a name lowers the bar for a warning (never to a block): below the unnamed thresholds
            severity, why = "warn", "carries a good part of the model's skill"
        if severity is None:
            continue
        if named:
            why += "; its name suggests a fact recorded after the outcome"
        evidence = r.to_dict() | {"alone": own.skill, "next": next_skill, "metric": own.metric, "value": own.value}
        out.append(
            Finding(
                "leak.carried_skill",
                severity,
                f"'{r.column}' {why} (skill with it {r.skill_full:.3f}, without it {r.skill_without:.3f}: it "
                f"removes {r.carried:.0%} of the remaining error; alone {own.metric} {own.value:.3f}, skill "
                f"{own.skill:.3f}, next column {next_skill:.3f}): is it known at prediction time?",
                r.column,
                evidence,
            )
        )
    return out


def beside_text_findings(tabular: list[Strength], texts: list[Strength], found: list[Finding]) -> list[Finding]:
    """A tabular column at least as strong alone as the free text beside it (warn): a star rating
    next to the review its label came from predicts the label better than the words do."""
    if not tabular or not texts:
        return []
    top, text = tabular[0], max(texts, key=lambda t: t.skill)
    flagged = {f.column for f in found if f.severity == "block" or f.check == "leak.dominant_column"}
    if top.column in flagged or top.skill < DOMINANT_SKILL or top.skill < text.skill:
        return []
    return [
        Finding(
            "leak.dominant_column",
            "warn",
            f"'{top.column}' alone reaches {top.metric} {top.value:.3f}, at least as much as the text '{text.column}' "
            f"({text.metric} {text.value:.3f}, TF-IDF out of fold): is it known at prediction time, or is the "
            "label derived from it?",
            top.column,
            {"metric": top.metric, "value": top.value, "text": text.column, "text_value": text.value},
        )
    ]


def _reliance_verdict(r: Any, alone: float, next_skill: float) -> tuple[str | None, str]:
    """(severity, why) by the rule table above, or (None, '')."""
    copy = math.isfinite(r.beyond) and (
        r.beyond <= COPY_BEYOND or (r.from_target >= NEAR_COPY and (1 - r.from_target) * r.beyond <= COPY_GAIN)
    )
    # a copy goes both ways: when the target also predicts the column, 0.7 alone is enough; else 0.85
    # (electricity's first 150 days: nswprice, which the label is computed from, 0.80 alone, 0.44 back)
    strong = alone >= COPY_ALONE_ONE_WAY or (alone >= COPY_ALONE and r.from_target >= COPY_FROM_TARGET)
    if copy and strong:
        return (
            "block",
            f"behaves like a noisy copy of the target: once the target is known the other columns explain only "
            f"{r.beyond:.0%} of it, and alone it predicts the target",
        )
    near = alone >= NEAR_MODEL_SHARE * r.skill_full and (1 - alone) * NEXT_ERROR_RATIO <= 1 - next_skill
    carries = r.carried >= CARRIED_WARN and alone >= ALONE_WARN
    if copy and (carries or near):
        return (
            "warn",
            f"behaves like a column derived from the target (once the target is known the other columns explain only "
            f"{r.beyond:.0%} of it) and carries much of the model's skill",
        )
    if carries or near:
        return "warn", "carries much of the model's skill"
    return None, ""


def sum_findings(frame: Any, y: np.ndarray, columns: list[str], sample: int = 20_000) -> list[Finding]:
    """Regression targets that are a + b or a - b of two numeric columns."""
    rng = np.random.default_rng(1)
    index = rng.choice(len(y), min(sample, len(y)), replace=False)
    target = y[index]
    scale = np.abs(target) * 1e-6 + 1e-6
    values = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan)[index] for c in columns}
    out = []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            for sign, op in ((1.0, "+"), (-1.0, "-"), (-1.0, "reversed -")):
                left, right = (values[b], values[a]) if op == "reversed -" else (values[a], values[b])
                share = float(np.mean(np.abs(target - (left + sign * right)) <= scale))
                if share >= 0.99:
                    expr = f"{b} - {a}" if op == "reversed -" else f"{a} {op} {b}"
                    out.append(
                        Finding(
                            "leak.sum_of_columns",
                            "block",
                            f"the target equals {expr} on {share:.1%} of rows: those columns are "
                            "derived from the target.",
                            f"{a},{b}",
                            {"expression": expr, "share": share},
                        )
                    )
    return out


def identifier_findings(roles: list[Any]) -> list[Finding]:
    return [
        Finding(
            "leak.identifier",
            "warn",
            f"'{r.name}' is an identifier ({r.reason}); it is not a feature, but rows of one entity can sit "
            "in both train and test: split by it if entities repeat.",
            r.name,
        )
        for r in roles
        if r.semantic == "identifier"
    ]


def time_findings(frame: Any, time_column: str | None, roles: list[Any]) -> tuple[list[Finding], str | None]:
    """Datetime columns later than the prediction time; a time order or timestamp nobody named.

    ``frame`` is a polars DataFrame. Returns the findings and, when no time column was
    named, the column a time split should use.
    """
    out = []
    if time_column is not None:
        when = frame[time_column]
        for r in roles:
            if r.semantic == "datetime" and r.name != time_column:
                later = float((frame[r.name] > when).mean() or 0.0)
                if later >= 0.01:
                    out.append(
                        Finding(
                            "leak.after_prediction_time",
                            "warn",
                            f"'{r.name}' is later than the prediction time '{time_column}' on {later:.1%} "
                            "of rows: it is known only after the prediction.",
                            r.name,
                            {"share": later},
                        )
                    )
        return out, None
    for name in frame.columns:
        order = _time_order(frame[name])
        if order is not None:
            out.append(
                Finding(
                    "split.time_order",
                    "warn",
                    f"rows are in time order by '{name}' ({order}): a random split would train on the future. "
                    f"Pass --time-column {name} (or time_column in keel.yaml) to split by time.",
                    str(name),
                )
            )
            return out, str(name)
    stamps = [r.name for r in roles if r.semantic == "datetime"]
    if stamps:
        out.append(
            Finding(
                "split.time_column",
                "warn",
                f"'{stamps[0]}' is a timestamp: if the model predicts forward in time, split by it "
                f"(--time-column {stamps[0]}) so the test rows come after the training rows.",
                stamps[0],
            )
        )
        return out, stamps[0]
    return out, None


def _time_order(series: Any) -> str | None:
    """How the rows follow a polars ``series`` in time, or None: strictly increasing integers
    (a time index), or datetimes whose rank correlates >= 0.95 with row position."""
    import polars as pl

    dtype = series.dtype
    if not (dtype.is_integer() or dtype.is_temporal()) or series.null_count() or series.n_unique() <= 10:
        return None
    if dtype.is_integer():
        strictly = series.is_sorted() and series.n_unique() == len(series)
        return "strictly increasing" if strictly else None
    step = max(1, len(series) // 100_000)
    values = series.gather_every(step).cast(pl.Int64).to_numpy()
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    rho = float(np.corrcoef(np.arange(len(values)), ranks)[0, 1])
    return f"rank correlation with row order {rho:.3f}" if rho >= 0.95 else None


def overlap_findings(train_hashes: np.ndarray, test_hashes: np.ndarray) -> list[Finding]:
    shared = int(np.isin(test_hashes, train_hashes).sum())
    if not shared:
        return []
    return [
        Finding(
            "leak.train_test_overlap",
            "block",
            f"{shared:,} test rows ({shared / len(test_hashes):.1%}) are exact copies of training rows: "
            "test scores would be inflated.",
            None,
            {"rows": shared},
        )
    ]


def split_order_findings(train_times: Any, test_times: Any, time_column: str) -> list[Finding]:
    latest = train_times.max()
    early = float((test_times < latest).mean())
    if early < 0.01:
        return []
    return [
        Finding(
            "split.ignores_time_order",
            "warn",
            f"{early:.1%} of test rows are earlier than the latest training row by '{time_column}': the split "
            "ignores time order, so the model is tested on the past.",
            time_column,
            {"share": early},
        )
    ]
