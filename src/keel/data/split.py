"""How to split a data set: the rule table, and the splits themselves.

| when (first rule that applies) | strategy | why |
|---|---|---|
| the data names its split (``--split-column`` / ``--test FILE``) | ``given`` | the owner of the data decided; keel checks it for overlap and time order |
| a time column is named | ``time`` | test on the latest rows, so the model never learns from the future |
| fewer than 5,000 rows | ``kfold`` (5 folds, stratified for classification) | every row is tested once; one small hold-out set is too noisy |
| more than 100,000 rows | ``holdout-80-10-10`` | one train/validation/test split is precise enough and cheap |
| classification with a class under 10% | ``stratified`` | every split keeps the rare class in proportion |
| otherwise | ``stratified`` (classification) or ``random`` | a seeded random hold-out |

Training (issue 2 level) uses one seeded hold-out: time-ordered when a time column is
set, the given split when a split column is set, stratified or random otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from keel.errors import DataError

KFOLD_BELOW = 5_000
SINGLE_SPLIT_ABOVE = 100_000
RARE_CLASS = 0.10
TRAIN_VALUES = ("train", "training")
TEST_VALUES = ("test", "testing", "holdout")


@dataclass(frozen=True)
class SplitAdvice:
    strategy: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def recommend_split(
    rows: int, *, classification: bool, minority_share: float | None, time_column: str | None, split_given: bool
) -> SplitAdvice:
    """The split strategy by the rule table above (first matching rule wins)."""
    if split_given:
        return SplitAdvice("given", "the data names its own train/test split; keel checks it for overlap")
    if time_column:
        return SplitAdvice(
            "time",
            f"rows have a time ('{time_column}'): test on the latest rows so the model never learns from the future",
        )
    rare = classification and minority_share is not None and minority_share < RARE_CLASS
    if rows < KFOLD_BELOW:
        kind = "stratified 5-fold" if classification else "5-fold"
        return SplitAdvice("kfold", f"{rows:,} rows (< {KFOLD_BELOW:,}): {kind} cross-validation tests every row once")
    if rows > SINGLE_SPLIT_ABOVE:
        return SplitAdvice(
            "holdout-80-10-10",
            f"{rows:,} rows (> {SINGLE_SPLIT_ABOVE:,}): one 80/10/10 split is "
            "precise enough and cheap" + ("; stratified" if classification else ""),
        )
    if rare:
        return SplitAdvice(
            "stratified", f"the rarest class is {minority_share:.1%} of rows (< 10%): stratify so every split keeps it"
        )
    if classification:
        return SplitAdvice("stratified", "a seeded hold-out, stratified on the target")
    return SplitAdvice("random", "a seeded random hold-out")


def holdout_split(y: np.ndarray, *, classification: bool, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of a seeded split; stratified on ``y`` when possible."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    stratify = None
    if classification:
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 else None
    train, test = train_test_split(index, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def time_split(times: Any, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The latest ``test_size`` share of rows (by ``times``) is the test set."""
    order = np.argsort(np.asarray(times), kind="stable")
    cut = round(len(order) * (1 - test_size))
    return np.sort(order[:cut]), np.sort(order[cut:])


def given_split(values: Any, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Train/test rows as a split column names them ('train'/'test', any case)."""
    labels = values.astype("str").str.strip().str.lower().to_numpy(dtype=object)
    train = np.flatnonzero(np.isin(labels, TRAIN_VALUES))
    test = np.flatnonzero(np.isin(labels, TEST_VALUES))
    if not len(train) or not len(test):
        seen = ", ".join(sorted({str(v) for v in labels[:1000]}))
        raise DataError(
            f"split column '{column}' must mark rows 'train' and 'test'; it has: {seen}.",
            hint="Fix the column, or remove split_column from keel.yaml.",
        )
    return train, test
