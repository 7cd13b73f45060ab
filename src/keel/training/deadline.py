"""Fits that stop at a deadline and keep what they have learnt so far.

A budget is a promise only if a running fit can be stopped: on a busy machine one boosting
fit took minutes past the deadline (the search only checked the clock between trials).

| family | how it stops at the deadline | what it keeps | replayed with |
|---|---|---|---|
| lightgbm | after ``MIN_ROUNDS``, a callback every round raises LightGBM's ``EarlyStopException`` | the best validation round so far (every round without validation) | ``cut_rounds``: the rounds it predicts with |
| xgboost | a ``TrainingCallback`` every round returns True | the best validation round so far (early stopping's) | ``cut_rounds`` |
| linear, embeddings (logistic) | L-BFGS in chunks of ``CHUNK_ITERATIONS``, warm-started, the clock read between chunks | the coefficients so far | ``cut_iterations`` |
| random_forest | trees added in chunks of ``CHUNK_TREES`` (warm start: the same trees as one fit) | the trees so far | ``cut_trees`` |
| baseline, linear (ridge) | not cut: closed form, milliseconds | | |

A cut fit records its replay key in its parameters, so ``keel reproduce`` rebuilds exactly it.
Chunks run with or without a deadline, so a fit that was not cut is the same either way.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

MIN_ROUNDS = 10  # a cut booster keeps at least this many rounds: one round is no model
CHUNK_ITERATIONS = 100
CHUNK_TREES = 25
REPLAY_KEYS = ("cut_rounds", "cut_iterations", "cut_trees")


def replay_keys(params: dict[str, Any]) -> dict[str, Any]:
    """The replay keys among a fit's parameters (what a final run records beside the searched ones)."""
    return {k: v for k, v in params.items() if k in REPLAY_KEYS}


def replay(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters that rebuild a cut fit from its recorded replay key (empty if none)."""
    if "cut_rounds" in params:
        return {"n_estimators": int(params["cut_rounds"])}
    if "cut_iterations" in params:
        return {"max_iter": int(params["cut_iterations"])}
    if "cut_trees" in params:
        return {"n_estimators": int(params["cut_trees"])}
    return {}


def _mark(estimator: Any, key: str, value: int) -> None:
    estimator.keel_cut_ = True
    estimator.keel_replay_ = {key: value}


def lightgbm_deadline(estimator: Any, deadline: float) -> Any:
    """A LightGBM callback that ends the fit at ``deadline``, at the best validation round so far
    (what early stopping would keep if the fit ended there), or at the last round without one."""
    import lightgbm as lgb

    best: dict[str, Any] = {}

    def callback(env: Any) -> None:
        results = [r for r in env.evaluation_result_list if r[0] != "training" and r[0] != "train"]
        if results:
            _name, _metric, score, higher = results[0][:4]
            if not best or (score > best["score"] if higher else score < best["score"]):
                best.update(score=score, iteration=env.iteration, results=env.evaluation_result_list)
        if env.iteration + 1 < MIN_ROUNDS or time.monotonic() < deadline or env.iteration + 1 >= env.end_iteration:
            return
        kept = best.get("iteration", env.iteration)
        # the rounds the model predicts with: a replay of that many rounds ends on the same best round
        _mark(estimator, "cut_rounds", kept + 1)
        raise lgb.callback.EarlyStopException(kept, best.get("results", env.evaluation_result_list))

    callback.order = 40  # type: ignore[attr-defined]  # after early stopping (30): a round it ends is not cut
    return callback


def xgboost_deadline(estimator: Any, deadline: float) -> Any:
    """An XGBoost TrainingCallback that ends the fit at ``deadline`` (early stopping, when on,
    keeps its best round so far)."""
    import xgboost as xgb

    class Deadline(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            if epoch + 1 < MIN_ROUNDS or time.monotonic() < deadline:
                return False
            best = model.attr("best_iteration")  # early stopping's best round so far, when it is on
            _mark(estimator, "cut_rounds", int(best) + 1 if best is not None else epoch + 1)
            return True

    return Deadline()


def fit_until(
    family: str, estimator: Any, x: Any, y: np.ndarray, deadline: float | None, fit_args: dict[str, Any]
) -> None:
    """Fit ``estimator`` (a family without a validation set) so that it stops at ``deadline``."""
    name = type(estimator).__name__
    if family in ("lightgbm", "xgboost") and deadline is not None:
        hook = lightgbm_deadline(estimator, deadline) if family == "lightgbm" else xgboost_deadline(estimator, deadline)
        if family == "lightgbm":
            estimator.fit(x, y, callbacks=[hook], **fit_args)
        else:
            estimator.set_params(callbacks=[hook])
            estimator.fit(x, y, verbose=False)
            estimator.set_params(callbacks=None)
        return
    if name == "LogisticRegression":
        _logistic(estimator, x, y, deadline)
        return
    if name.startswith("RandomForest"):
        _forest(estimator, x, y, deadline)
        return
    estimator.fit(x, y, **fit_args)


def _logistic(estimator: Any, x: Any, y: np.ndarray, deadline: float | None) -> None:
    """L-BFGS in warm-started chunks until it converges, reaches ``max_iter``, or the deadline."""
    from sklearn.exceptions import ConvergenceWarning

    limit = int(estimator.max_iter)
    done = 0
    estimator.set_params(warm_start=True)
    try:
        while done < limit:
            step = min(CHUNK_ITERATIONS, limit - done)
            estimator.set_params(max_iter=step)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # a chunk ends before convergence on purpose
                estimator.fit(x, y)
            ran = int(np.max(estimator.n_iter_))
            done += ran
            if ran < step:
                return  # converged
            if deadline is not None and time.monotonic() >= deadline and done < limit:
                _mark(estimator, "cut_iterations", done)
                return
    finally:
        estimator.set_params(warm_start=False, max_iter=limit)


def _forest(estimator: Any, x: Any, y: np.ndarray, deadline: float | None) -> None:
    """Trees in warm-started chunks (the same trees as one fit) until ``n_estimators`` or the deadline."""
    total = int(estimator.n_estimators)
    grown = 0
    estimator.set_params(warm_start=True)
    try:
        while grown < total:
            grown = min(total, grown + CHUNK_TREES)
            estimator.set_params(n_estimators=grown)
            estimator.fit(x, y)
            if deadline is not None and time.monotonic() >= deadline and grown < total:
                _mark(estimator, "cut_trees", grown)
                return
    finally:
        estimator.set_params(warm_start=False, n_estimators=grown)
