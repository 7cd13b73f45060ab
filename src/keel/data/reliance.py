"""How much of a model's skill one column carries: drop-column refits of one fixed booster.

A leak recorded after the outcome is rarely an exact copy of the target: it agrees on 90-99%
of rows. Alone it looks like a very strong column, and strong honest columns exist. What
tells them apart is what the column does *beside the others*: a noisy copy of the target
removes most of the error that the other columns leave, an honest column mostly repeats
what they already know. So triage fits one fixed LightGBM (on at most ``SAMPLE`` rows,
``ROUNDS`` rounds with early stopping, one thread) on every usable column, then again
without each of the ``TOP`` strongest single columns, and scores each on the same held-out
quarter:

- ``skill`` is on one scale for every task: 2·AUC-1 (binary), (accuracy - majority) / (1 -
  majority) (multiclass), R² (regression); ``error`` is 1 - skill.
- ``carried`` is the share of the error without the column that the column removes:
  (error without - error with) / error without. 0: the others know it all; 1: with it the
  model is perfect.
- ``alone`` is the column's own out-of-fold skill (``keel.data.leakage``), ``next`` the best
  other column's.

The thresholds (``keel.data.leakage.reliance_findings``) were set on injected noisy copies
of the target in the shared data sets and checked for false alarms on the sets as they are
(``bench/leak_cases.py``; the measured counts are in docs/data-stage.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SAMPLE = 15_000
TOP = 4
ROUNDS = 200
EARLY_STOP = 20
HELD_OUT = 0.25
MIN_ROWS = 200
MAX_CLASSES = 30


@dataclass(frozen=True)
class Reliance:
    """One column's part in the fixed model's held-out skill."""

    column: str
    skill_full: float  # every usable column
    skill_without: float  # every usable column but this one
    carried: float  # the share of the error without the column that it removes
    beyond: float = float("nan")  # the share of the column that the others explain once the target is known
    from_target: float = float("nan")  # how well the target alone predicts the column (skill)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skill_of(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    """Skill on one scale: 2·AUC-1, accuracy above the majority share, or R² (floored at 0)."""
    if task == "binary":
        return max(0.0, 2 * auc(y, predicted) - 1)
    if task == "multiclass":
        accuracy = float(np.mean(predicted.argmax(axis=1) == y))
        base = float(np.bincount(y).max() / len(y))
        return max(0.0, (accuracy - base) / max(1 - base, 1e-12))
    sst = float(np.sum((y - y.mean()) ** 2)) or 1.0
    return max(0.0, 1 - float(np.sum((y - predicted) ** 2)) / sst)


def carried_share(skill_full: float, skill_without: float) -> float:
    """(error without - error with) / error without, with error = 1 - skill; 0 when the column hurts."""
    without = 1.0 - skill_without
    if without <= 1e-12:
        return 0.0
    return max(0.0, (without - (1.0 - skill_full)) / without)


def measure(frame: Any, y: np.ndarray, task: str, columns: list[str], top: list[str], seed: int = 0) -> list[Reliance]:
    """Drop-column reliance of ``top`` (the strongest single columns) on the fixed model.

    ``frame`` is a pandas DataFrame of at least ``columns``; ``y`` the encoded target.
    Returns nothing when there are too few rows or fewer than two usable columns."""
    if len(y) < MIN_ROWS or len(columns) < 2:
        return []
    rng = np.random.default_rng(seed)
    index = np.arange(len(y))
    if len(index) > SAMPLE:
        index = np.sort(rng.choice(index, SAMPLE, replace=False))
    matrix, categorical = _matrix(frame, columns, index)
    target = y[index]
    train, valid = _split(target, task, rng)
    if train is None:
        return []
    full = _fit_score(matrix, target, task, train, valid, categorical, columns, None, seed)
    out = []
    for name in top:
        without = _fit_score(matrix, target, task, train, valid, categorical, columns, name, seed)
        carried = carried_share(full, without)
        beyond, from_target = _beyond_target(matrix, target, task, categorical, columns, name, (train, valid), seed)
        out.append(Reliance(name, full, without, carried, beyond, from_target))
    return out


def _beyond_target(
    matrix: np.ndarray,
    y: np.ndarray,
    task: str,
    categorical: list[int],
    columns: list[str],
    name: str,
    split: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> tuple[float, float]:
    """How much the other columns add to predicting column ``name`` once the target is known:
    (error from the target alone - error from the target and the others) / error from the target;
    and the skill of the target alone. A numeric column is predicted as its ranks, so that a
    few extreme values do not decide the score.

    A copy of the target plus noise that has nothing to do with the other columns scores about
    0. An honest column scores above it: the other columns explain part of it, and knowing the
    target makes causes of it depend on each other ("explaining away")."""
    i = columns.index(name)
    column = matrix[:, i]
    present = np.isfinite(column)
    if i in categorical:
        codes = column.astype(np.int64)
        column_task = "binary" if len(np.unique(codes)) == 2 else "multiclass"
        column = np.unique(codes, return_inverse=True)[1]
    else:
        column_task = "regression"
        column = _ranks(column)
    nothing = (float("nan"), float("nan"))
    train, valid = (s[present[s]] for s in split)
    if len(train) < MIN_ROWS // 2 or len(valid) < MIN_ROWS // 4 or len(np.unique(column[valid])) < 2:
        return nothing
    if column_task == "multiclass" and int(column.max()) + 1 > MAX_CLASSES:
        return nothing
    target_col = y.astype(np.float64).reshape(-1, 1)
    others = np.column_stack([target_col, np.delete(matrix, i, axis=1)])
    target_cats = [0] if task != "regression" else []
    other_cats = target_cats + [j + 1 - (j > i) for j in categorical if j != i]
    alone = _fit_score(target_col, column, column_task, train, valid, target_cats, ["target"], None, seed)
    every = _fit_score(
        others, column, column_task, train, valid, other_cats, ["target", *columns[:i], *columns[i + 1 :]], None, seed
    )
    return carried_share(every, alone), alone


def _ranks(values: np.ndarray) -> np.ndarray:
    """Values as their ranks scaled to [0, 1] (NaN stays NaN)."""
    from scipy.stats import rankdata

    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    if finite.any():
        out[finite] = (rankdata(values[finite]) - 1) / max(1, int(finite.sum()) - 1)
    return out


def _matrix(frame: Any, columns: list[str], index: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Numeric columns as floats, every other column as integer codes (a LightGBM categorical)."""
    import pandas as pd

    from keel.data.leakage import encode

    parts, categorical = [], []
    for i, name in enumerate(columns):
        series = frame[name].iloc[index] if len(index) < len(frame) else frame[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            parts.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            parts.append(encode(series.astype("object") if pd.api.types.is_bool_dtype(series) else series))
            categorical.append(i)
    return np.column_stack(parts).astype(np.float64), categorical


def _split(y: np.ndarray, task: str, rng: np.random.Generator) -> tuple[Any, Any]:
    """A seeded hold-out quarter, stratified for classification; (None, None) if a class is too rare."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    stratify = None
    if task != "regression":
        counts = np.bincount(y)
        if np.count_nonzero(counts >= 2) < 2:
            return None, None
        stratify = y if counts[counts > 0].min() >= 2 else None
    seed = int(rng.integers(0, 2**31 - 1))
    train, valid = train_test_split(index, test_size=HELD_OUT, random_state=seed, stratify=stratify)
    if task != "regression" and len(np.unique(y[valid])) < 2:
        return None, None
    return train, valid


def _fit_score(
    matrix: np.ndarray,
    y: np.ndarray,
    task: str,
    train: np.ndarray,
    valid: np.ndarray,
    categorical: list[int],
    columns: list[str],
    drop: str | None,
    seed: int,
) -> float:
    import lightgbm as lgb

    keep = [i for i, c in enumerate(columns) if c != drop]
    x = matrix[:, keep]
    cats = [keep.index(i) for i in categorical if i in keep]
    params: dict[str, Any] = {
        "n_estimators": ROUNDS,
        "learning_rate": 0.15,
        "num_leaves": 31,
        "min_child_samples": 20,
        "random_state": seed,
        "n_jobs": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    model = (lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier)(**params)
    model.fit(
        x[train],
        y[train],
        eval_X=(x[valid],),
        eval_y=(y[valid],),
        categorical_feature=cats or "auto",
        callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)],
    )
    predicted: Any
    if task == "regression":
        predicted = model.predict(x[valid])
    else:
        proba: Any = model.predict_proba(x[valid])
        predicted = proba[:, 1] if task == "binary" else _full_proba(proba, model.classes_, int(y.max()) + 1)
    return skill_of(task, y[valid], predicted)


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC from ranks (ties averaged); 0.5 with one class."""
    from scipy.stats import rankdata

    positives = int(np.sum(y == 1))
    negatives = len(y) - positives
    if not positives or not negatives:
        return 0.5
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _full_proba(proba: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    """Probabilities over all ``k`` classes (a class absent from training gets 0)."""
    out = np.zeros((len(proba), k))
    out[:, classes.astype(int)] = proba
    return out
