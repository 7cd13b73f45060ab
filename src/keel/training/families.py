"""Model families keel can fit. Each is deterministic for a given seed.

| family | classification | regression |
|---|---|---|
| baseline | DummyClassifier(strategy="prior") | DummyRegressor(strategy="mean") |
| lightgbm | LGBMClassifier, 300 trees, lr 0.05 | LGBMRegressor, same |

LightGBM runs with ``deterministic=True`` and row-wise histograms, so the same
seed, data and thread count give the same model.
"""

from __future__ import annotations

from typing import Any

from keel.errors import ConfigError

FAMILIES = ("baseline", "lightgbm")


def make_estimator(family: str, classification: bool, seed: int, threads: int) -> Any:
    """A fresh, unfitted estimator of ``family`` for the task."""
    if family == "baseline":
        from sklearn.dummy import DummyClassifier, DummyRegressor

        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if family == "lightgbm":
        import lightgbm as lgb

        params = {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "random_state": seed,
            "n_jobs": threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        return lgb.LGBMClassifier(**params) if classification else lgb.LGBMRegressor(**params)
    raise ConfigError(f"unknown model family '{family}'.", hint=f"Known families: {', '.join(FAMILIES)}.")
