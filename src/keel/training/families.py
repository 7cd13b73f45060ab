"""Model families keel can fit, each deterministic for a given seed and thread count.

| family | classification | regression | deterministic |
|---|---|---|---|
| baseline | DummyClassifier(prior) | DummyRegressor(mean) | yes |
| linear | LogisticRegression(C), scaled inputs | Ridge(alpha), scaled inputs | yes |
| random_forest | RandomForestClassifier | RandomForestRegressor | yes (random_state) |
| lightgbm | LGBMClassifier | LGBMRegressor | yes: ``deterministic=True``, row-wise histograms, same thread count |
| xgboost | XGBClassifier | XGBRegressor | yes: ``hist`` on CPU with a fixed seed and thread count |

Boosted families take up to ``MAX_BOOSTING_ROUNDS`` rounds and stop early on a validation split.
"""

from __future__ import annotations

from typing import Any

from keel.errors import ConfigError
from keel.planning.search_space import MAX_BOOSTING_ROUNDS

FAMILIES = ("baseline", "linear", "random_forest", "lightgbm", "xgboost")
BOOSTERS = ("lightgbm", "xgboost")
EARLY_STOPPING_ROUNDS = 50


def make_estimator(family: str, classification: bool, params: dict[str, Any], seed: int, threads: int) -> Any:
    """A fresh, unfitted estimator of ``family`` with ``params`` (from the search space)."""
    if family == "baseline":
        from sklearn.dummy import DummyClassifier, DummyRegressor

        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if family == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge

        return LogisticRegression(max_iter=2000, **params) if classification else Ridge(**params)
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(random_state=seed, n_jobs=threads, **params)
    if family == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if classification else lgb.LGBMRegressor
        base = {
            "n_estimators": MAX_BOOSTING_ROUNDS,
            "random_state": seed,
            "n_jobs": threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        return cls(**(base | params))  # params win: the final refit sets n_estimators
    if family == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if classification else xgb.XGBRegressor
        base = {
            "n_estimators": MAX_BOOSTING_ROUNDS,
            "random_state": seed,
            "n_jobs": threads,
            "tree_method": "hist",
            "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
        }
        return cls(**(base | params))
    raise ConfigError(f"unknown model family '{family}'.", hint=f"Known families: {', '.join(FAMILIES)}.")
