"""The target column: which task it implies, and its encoding for analysis.

Task rule: a non-numeric or boolean target is classification (binary with 2 classes,
multiclass above); a numeric target with at most ``MAX_CLASSES_FOR_NUMERIC`` distinct
integer values is classification; any other numeric target is regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_CLASSES_FOR_NUMERIC = 10


def infer_task(target: Any) -> tuple[str, str]:
    """(task, the rule's reason) for a target Series without missing values."""
    import pandas as pd

    distinct = int(target.nunique())
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if not numeric:
        return _classification(distinct, "target is not numeric")
    integral = bool((target.astype(float) % 1 == 0).all())
    if integral and distinct <= MAX_CLASSES_FOR_NUMERIC:
        return _classification(
            distinct, f"numeric target with {distinct} integer values (<= {MAX_CLASSES_FOR_NUMERIC})"
        )
    return "regression", f"numeric target with {distinct} distinct values"


def encode_target(target: Any, task: str) -> tuple[np.ndarray, list[str] | None]:
    """Class indices (and the sorted class names) for classification, floats for regression."""
    if task == "regression":
        return target.to_numpy(dtype=np.float64), None
    labels = target.astype("str").to_numpy(dtype=object)
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels)), classes


def _classification(distinct: int, why: str) -> tuple[str, str]:
    return ("binary" if distinct == 2 else "multiclass"), f"{why}; {distinct} classes"
