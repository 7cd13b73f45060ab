"""The multivariate drift check: can a classifier tell current rows from reference rows?

Column-by-column checks miss a change in how columns move together (each marginal the
same, the joint different). A gradient-boosted classifier (LightGBM, small) learns to
separate a sample of the reference rows (the hold-out rows stored in the bundle as
``reference.parquet``) from an equal sample of the logged rows; its out-of-fold ROC AUC
is 0.5 when nothing moved and approaches 1 as the two become separable.

- **chance**: under no drift, each fold's AUC (its model on its own test rows) is a
  Mann-Whitney statistic with standard deviation sqrt((a + b + 1) / (12 a b)) for a and b
  test rows. The check averages the folds; the folds are correlated (measured: the mean
  spreads as much as one fold), so one fold's spread is the null's. It flags when the AUC is
  beyond 0.5 with p below ``alpha`` (0.525 at 5,000 rows each, alpha 0.001). An alert also
  needs p below the run's family-wise ``alert_alpha``.
- **effect floors**: beyond chance, ``domain_auc_drift`` (0.55) marks drift and
  ``domain_auc_alert`` (0.7) an alert, so a large window's tiny but real difference does
  not page anyone.
- the columns the classifier split on most (share of its gain) say what moved together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.schema import NUMERIC, TEXT, TOKEN_PATTERN

FOLDS = 2
TOP_COLUMNS = 5


@dataclass(frozen=True)
class DomainLimits:
    drift_auc: float = 0.55
    alert_auc: float = 0.7
    alpha: float = 0.001
    max_rows: int = 5000  # per side
    seed: int = 0
    alert_alpha: float = 0.001  # the family-wise share an alert must beat (keel.monitoring.drift.family_alpha)


@dataclass(frozen=True)
class DomainCheck:
    auc: float
    chance: float  # the AUC chance alone exceeds with probability alpha at these sizes
    reference_rows: int
    current_rows: int
    status: str  # ok | drift | alert
    columns: list[dict[str, Any]] = field(default_factory=list)  # [{column, share}] of the classifier's gain
    p_value: float = 1.0  # of AUC this high when nothing moved

    def describe(self) -> str:
        top = ", ".join(f"{c['column']} {c['share']:.0%}" for c in self.columns)
        return (
            f"domain classifier AUC {self.auc:.3f} (chance up to {self.chance:.3f}; "
            f"{self.reference_rows:,} reference vs {self.current_rows:,} current rows)"
            + (f", separating on {top}" if top and self.status != "ok" else "")
        )


def auc_sd(n_reference: int, n_current: int, folds: int = FOLDS) -> float:
    """The spread of the mean of ``folds`` per-fold AUCs when nothing moved: each fold's is a
    Mann-Whitney statistic on its n1/folds and n2/folds test rows, sd sqrt((a + b + 1) / (12 a b)).
    The folds are not independent (each one's training rows are the other's test rows): on 300
    quiet windows of five data sets the mean's spread was a single fold's, 1.4 times what
    independent folds would give, so that is the spread used."""
    a, b = n_reference / folds, n_current / folds
    return math.sqrt((a + b + 1) / (12 * a * b))


def chance_auc(n_reference: int, n_current: int, alpha: float) -> float:
    from scipy.stats import norm

    return 0.5 + float(norm.isf(alpha)) * auc_sd(n_reference, n_current)


def domain_check(reference: Any, current: Any, kinds: dict[str, str], limits: DomainLimits) -> DomainCheck | None:
    """Train the classifier on ``reference`` vs ``current`` (pyarrow tables) over the columns
    both hold; None when either side has fewer than 50 rows or no column is shared."""
    columns = [c for c in kinds if c in reference.column_names and c in current.column_names]
    rng = np.random.default_rng(limits.seed)
    n = min(reference.num_rows, current.num_rows, limits.max_rows)
    if n < 50 or not columns:
        return None
    ref = reference.take(np.sort(rng.choice(reference.num_rows, n, replace=False)))
    cur = current.take(np.sort(rng.choice(current.num_rows, n, replace=False)))
    x = _features(ref, cur, columns, kinds)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    auc, gains = _out_of_fold(x, y, limits.seed)
    from scipy.stats import norm

    chance = chance_auc(n, n, limits.alpha)
    p_value = float(norm.sf((auc - 0.5) / auc_sd(n, n)))
    status = "ok"
    if p_value < limits.alpha and auc >= limits.drift_auc:
        status = "alert" if auc >= limits.alert_auc and p_value < limits.alert_alpha else "drift"
    total = float(gains.sum()) or 1.0
    ranked = sorted(zip(columns, gains, strict=True), key=lambda item: -item[1])[:TOP_COLUMNS]
    top = [{"column": c, "share": float(g / total)} for c, g in ranked if g > 0]
    return DomainCheck(auc, chance, n, n, status, top, p_value)


def _features(ref: Any, cur: Any, columns: list[str], kinds: dict[str, str]) -> Any:
    import pandas as pd
    import pyarrow.compute as pc

    data = {}
    for name in columns:
        both = [ref.column(name), cur.column(name)]
        if kinds[name] == NUMERIC:
            data[name] = np.concatenate([c.to_numpy(zero_copy_only=False).astype(np.float64) for c in both])
        elif kinds[name] == TEXT:  # free text: its length in tokens (its words are the vocabulary check's)
            counts = [pc.count_substring_regex(c, TOKEN_PATTERN).to_numpy(zero_copy_only=False) for c in both]
            data[name] = np.concatenate(counts).astype(np.float64)
        else:
            values = np.concatenate([c.fill_null("").to_numpy(zero_copy_only=False).astype(str) for c in both])
            data[name] = pd.Categorical(values)
    return pd.DataFrame(data)


def _out_of_fold(x: Any, y: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
    """The mean of the folds' AUCs (each fold's model on its own test rows: pooling two models'
    scores into one AUC mixes their calibrations, which widened the spread under no drift) and
    the summed gain per column."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    aucs = []
    gains = np.zeros(x.shape[1])
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
        model = lgb.LGBMClassifier(
            n_estimators=100,
            learning_rate=0.1,
            num_leaves=15,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            n_jobs=2,
            verbose=-1,
        )
        model.fit(x.iloc[train], y[train])
        proba: Any = model.predict_proba(x.iloc[test])
        aucs.append(roc_auc_score(y[test], proba[:, 1]))
        gains += model.booster_.feature_importance(importance_type="gain")
    return float(np.mean(aucs)), gains
