"""Metric suites on held-out rows, one per task type."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """AUC, F1, accuracy and log loss; ``y_true`` holds class indices into ``proba``'s columns."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    n_classes = proba.shape[1]
    predicted = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    out = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": float(f1_score(y_true, predicted, average="macro", labels=labels, zero_division=0)),
        "log_loss": float(log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
    }
    if n_classes == 2:
        out["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1]))
        out["f1"] = float(f1_score(y_true, predicted, zero_division=0))
    else:
        out["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
    return out


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R²."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(y_true, predicted)),
        "mae": float(mean_absolute_error(y_true, predicted)),
        "r2": float(r2_score(y_true, predicted)),
    }


def is_better(candidate: float, incumbent: float, greater_is_better: bool) -> bool:
    """Whether ``candidate`` beats ``incumbent`` on a metric (NaN never wins)."""
    if np.isnan(candidate):
        return False
    if np.isnan(incumbent):
        return True
    return candidate > incumbent if greater_is_better else candidate < incumbent
