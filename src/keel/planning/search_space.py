"""The search space of every model family: one function for the search and for the refit.

``suggest(trial, family, task)`` asks an Optuna trial for a family's hyperparameters. The
search calls it with real trials; the refit calls it with ``optuna.trial.FixedTrial(best)``,
so the final model is built by exactly the same code as the trial that won.
Bump ``VERSION`` when a space changes: resumed studies must not mix spaces.
"""

from __future__ import annotations

from typing import Any

VERSION = 1
MAX_BOOSTING_ROUNDS = 2000  # an upper bound: early stopping on the validation split picks the count


def suggest(trial: Any, family: str, task: str) -> dict[str, Any]:
    """Hyperparameters of ``family`` for ``task`` from ``trial`` (an Optuna Trial or FixedTrial)."""
    if family == "baseline":
        return {}
    if family in ("lora", "finetune"):
        return {}  # one fit with the project's text settings (keel.yaml text:), early-stopped
    if family in ("linear", "embeddings"):  # embeddings: a logistic regression on them
        if task == "regression":
            return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
        return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
    if family == "random_forest":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 100, 400, step=50),
            "max_depth": trial.suggest_int("max_depth", 3, 20),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20, log=True),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0),
        }
    if family == "lightgbm":
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "subsample_freq": 1,
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
        }
    if family == "xgboost":
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.1, 20.0, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
        }
    raise ValueError(f"no search space for family {family!r}")


def default_params(family: str, task: str) -> dict[str, Any]:
    """Reasonable defaults: the first trial of every search (so a tiny budget still gets a sane model)."""
    defaults = {
        "linear": {"alpha": 1.0} if task == "regression" else {"C": 1.0},
        "embeddings": {"C": 1.0},
        "random_forest": {"n_estimators": 300, "max_depth": 12, "min_samples_leaf": 2, "max_features": 0.5},
        "lightgbm": {
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 20,
            "colsample_bytree": 0.9,
            "subsample": 0.9,
            "reg_lambda": 1e-3,
        },
        "xgboost": {
            "learning_rate": 0.05,
            "max_depth": 6,
            "min_child_weight": 1.0,
            "colsample_bytree": 0.9,
            "subsample": 0.9,
            "reg_lambda": 1.0,
        },
    }
    return defaults.get(family, {})
