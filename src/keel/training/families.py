"""Model families keel can fit, each deterministic for a given seed and thread count.

| family | classification | regression | deterministic |
|---|---|---|---|
| baseline | DummyClassifier(prior) | DummyRegressor(mean) | yes |
| linear | LogisticRegression(C), scaled inputs | Ridge(alpha), scaled inputs | yes |
| random_forest | RandomForestClassifier | RandomForestRegressor | yes (random_state) |
| lightgbm | LGBMClassifier | LGBMRegressor | yes: ``deterministic=True``, row-wise histograms, same thread count |
| xgboost | XGBClassifier | XGBRegressor | yes: ``hist`` on CPU with a fixed seed and thread count |
| embeddings | sentence embeddings of the text column -> LogisticRegression(C) | - | yes |
| lora | the text encoder fine-tuned with LoRA adapters and a linear head | - | yes: seeded, same thread count |
| finetune | the text encoder with every weight fine-tuned, and a linear head | - | yes: seeded, same thread count |

Boosted families take up to ``MAX_BOOSTING_ROUNDS`` rounds and stop early on a validation split;
fine-tuned ones (``FINE_TUNED``) run up to ``text.epochs`` epochs and stop early on it too. The
text families are in ``keel.textmodels`` (the ``text`` extra).
"""

from __future__ import annotations

from typing import Any

from keel.errors import ConfigError
from keel.planning.search_space import MAX_BOOSTING_ROUNDS

FAMILIES = ("baseline", "linear", "random_forest", "lightgbm", "xgboost", "embeddings", "lora", "finetune")
BOOSTERS = ("lightgbm", "xgboost")
FINE_TUNED = ("lora", "finetune")  # one fit with early stopping, not searched (minutes per fit on a CPU)
TEXT_FAMILIES = ("embeddings", *FINE_TUNED)  # read one text column through a transformer encoder
EARLY_STOPPING_ROUNDS = 50
# Seconds per training row of a family's shortest fit (its transforms, then 10 boosting rounds or
# 100 L-BFGS iterations: what keel.training.deadline lets run before it can stop), measured on
# 204,000 adult rows on this 2-core machine, quiet: a family whose share of the budget is shorter
# than rows x this x the machine's slowdown is left out rather than overrun the budget.
MIN_FIT_SECONDS_PER_ROW = {"linear": 1.6e-5, "lightgbm": 4.7e-6, "xgboost": 1.2e-5, "random_forest": 2e-5}


def min_fit_seconds(family: str, rows: int, folds: int = 1) -> float:
    """About how long ``family``'s shortest fit takes on ``rows`` rows (``folds`` fits when
    cross-validating), quiet machine; 0 for a family without an estimate."""
    return MIN_FIT_SECONDS_PER_ROW.get(family, 0.0) * rows * folds


def make_estimator(
    family: str, classification: bool, params: dict[str, Any], seed: int, threads: int, text: Any = None
) -> Any:
    """A fresh, unfitted estimator of ``family`` with ``params`` (from the search space);
    ``text`` is the project's ``TextConfig`` (the fine-tuned families read it)."""
    if family in FINE_TUNED:
        from keel.config import TextConfig
        from keel.textmodels.estimators import EncoderClassifier

        if not classification:
            raise ConfigError(f"family '{family}' classifies texts; this task is regression.")
        settings = text or TextConfig()
        return EncoderClassifier(
            model=settings.encoder,
            method="lora" if family == "lora" else "full",
            rank=settings.lora_rank,
            learning_rate=settings.learning_rate,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            patience=settings.patience,
            seed=seed,
            threads=threads,
        )
    if family == "embeddings":
        if not classification:
            raise ConfigError("family 'embeddings' classifies texts; this task is regression.")
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000, **params)
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
        base: dict[str, Any] = {
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
