"""How to split a data set: the rule table, and the splits themselves.

| when (first rule that applies) | strategy | why |
|---|---|---|
| the data names its split (``--split-column`` / ``--test FILE``) | ``given`` | the owner of the data decided; keel checks it for overlap and time order |
| a time column is named, or triage finds rows in time order or a timestamp column | ``time`` | test on the latest rows, so the model never learns from the future |
| an identifier column whose values repeat (an entity with several rows) | ``grouped`` | all rows of one entity on one side, so the test never sees an entity the model learnt |
| fewer than 5,000 rows | ``kfold`` (5 folds, stratified for classification) | model selection on every training row; one small validation set is too noisy |
| more than 100,000 rows | ``holdout-80-10-10`` | one train/validation/test split is precise enough and cheap |
| classification with a class under 10% | ``stratified`` | every split keeps the rare class in proportion |
| otherwise | ``stratified`` (classification) or ``random`` | a seeded random hold-out |

Training follows the recommendation (``keel.training.prepare``) unless keel.yaml overrides it
(``split.strategy``, ``time_column``, ``split_column``, ``split.test_size``), and the plan says
which finding it followed or that it was overridden. ``holdout-80-10-10`` tests on 10% and
validates on 10%; ``kfold`` keeps a test hold-out and cross-validates the search on the rest.
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
    column: str | None = None  # the time or group column of a ``time`` or ``grouped`` split
    finding: str | None = None  # the triage check that led to it (the plan cites it)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def recommend_split(
    rows: int,
    *,
    classification: bool,
    minority_share: float | None,
    time_column: str | None,
    split_given: bool,
    group_column: str | None = None,
    time_finding: str | None = None,
) -> SplitAdvice:
    """The split strategy by the rule table above (first matching rule wins)."""
    if split_given:
        return SplitAdvice("given", "the data names its own train/test split; keel checks it for overlap")
    if time_column:
        return SplitAdvice(
            "time",
            f"rows have a time ('{time_column}'): test on the latest rows so the model never learns from the future",
            time_column,
            time_finding,
        )
    if group_column:
        return SplitAdvice(
            "grouped",
            f"'{group_column}' identifies entities with several rows: keep each entity's rows on one side",
            group_column,
            "leak.identifier",
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


def grouped_split(groups: Any, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) with every group (entity) on one side; about ``test_size`` of rows."""
    import pandas as pd

    codes, _ = pd.factorize(pd.Series(groups), use_na_sentinel=False)
    order = np.random.default_rng(seed).permutation(int(codes.max()) + 1)
    sizes = np.bincount(codes)[order]
    cut = int(np.searchsorted(np.cumsum(sizes), test_size * len(codes)))
    test_groups = order[: max(1, cut)]
    test = np.isin(codes, test_groups)
    if test.all() or not test.any():
        raise DataError("a grouped split needs at least two groups.", hint="Name another split in keel.yaml.")
    return np.flatnonzero(~test), np.flatnonzero(test)


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
