"""Seeded hold-out splits: stratified for classification when every class allows it."""

from __future__ import annotations

import numpy as np


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
