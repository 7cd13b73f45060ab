"""Optuna search over one family's space, under a deadline, resumable from the store.

TPE sampling (seeded), median pruning on the validation loss that boosted families report
every few rounds, early stopping inside each fit, and the family's defaults as the first
trial. Studies live in an RDB storage (SQLite in the store by default): a search killed
with ``kill -9`` keeps its completed trials; ``resume=True`` continues the latest study
of the same model, family, data and seed, and marks the trials the kill left running as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.evaluation.metrics import is_better, metric_value
from keel.planning.search_space import VERSION, default_params, suggest
from keel.training.deadline import replay, replay_keys
from keel.training.families import BOOSTERS, FINE_TUNED
from keel.training.fit import Candidate, StopTraining, fit_family, predict
from keel.training.prepare import Prepared

CV_FOLDS = 5
MIN_SEARCH_SECONDS = 0.25  # a share shorter than this starts no trial (families.min_fit_seconds says more)
NO_EARLY_STOP = {"xgboost": {"early_stopping_rounds": None}}  # the final refit has no validation set


@dataclass(frozen=True)
class TrialReport:
    """One finished trial, for progress display and tracking."""

    family: str
    number: int
    state: str  # complete | pruned | failed
    value: float | None
    best: float | None
    params: dict[str, Any]
    seconds: float
    iterations: int | None


@dataclass(frozen=True)
class SearchResult:
    family: str
    study: str
    best_params: dict[str, Any]
    best_value: float
    trials: int
    completed: int
    trial_seconds: float = 0.0  # what a refit will roughly cost: the longer of the median and the best trial
    predictions: np.ndarray | None = None  # the best trial's out-of-sample predictions (ensemble selection)
    fitted: Candidate | None = None  # the best trial's fit (on the search rows, early-stopped on validation)
    cut: int = 0  # trials this search ended at the deadline (their fits kept what they had)
    rounds: int | None = None  # cross-validated boosters: the best trial's mean early-stopped rounds


@dataclass(frozen=True)
class SearchSettings:
    storage: str
    study_prefix: str
    seed: int
    threads: int
    resume: bool = False
    max_trials: int | None = None  # per family, counting the trials a resumed study already ran
    checkpoints: str = ""  # fine-tuned families keep a checkpoint per epoch here (resumed with ``resume``)


def search(
    family: str,
    data: Prepared,
    valid: np.ndarray | None,
    train: np.ndarray,
    deadline: float,
    settings: SearchSettings,
    on_trial: Callable[[TrialReport], None] | None = None,
) -> SearchResult:
    """Search ``family``'s space until ``deadline`` (time.monotonic); returns the best trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # keel reports trials itself (progress, MLflow)
    study = open_study(family, data, settings)
    if not study.trials:
        study.enqueue_trial(default_params(family, data.plan.task), skip_if_exists=True)
    predicted: dict[int, tuple[np.ndarray, Candidate | None]] = {}  # the best trial's predictions and fit

    def objective(trial: Any) -> float:
        params = suggest(trial, family, data.plan.task)
        started = time.perf_counter()
        try:
            value, iterations, predictions, fitted = evaluate(
                trial, family, params, data, train, valid, deadline, settings
            )
        finally:  # a pruned trial's time counts too
            trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("iterations", iterations)
        if fitted is not None and fitted.cut:
            trial.set_user_attr("cut", True)
        if _improves(study, value, data.plan.greater_is_better):
            predicted.clear()
            predicted[trial.number] = (predictions, fitted)
        return value

    def report(study: Any, trial: Any) -> None:
        if on_trial is not None:
            on_trial(trial_report(family, study, trial))

    remaining = deadline - time.monotonic()
    trials = trials_left(study, settings.max_trials)
    if remaining >= MIN_SEARCH_SECONDS and trials != 0:
        study.optimize(
            objective,
            n_trials=trials,
            timeout=remaining,
            callbacks=[report],
            catch=(ValueError, ArithmeticError),
            gc_after_trial=False,
        )
    return search_result(family, study, data, predicted.get)


def trial_report(family: str, study: Any, trial: Any) -> TrialReport:
    """A finished Optuna trial as a TrialReport (progress and MLflow take these)."""
    state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(trial.state.name, "failed")
    best = study.best_value if any(t.state.name == "COMPLETE" for t in study.trials) else None
    return TrialReport(
        family,
        trial.number,
        state,
        trial.value if state == "complete" else None,  # a pruned trial's value is a round's loss, not a score
        best,
        dict(trial.params),
        float(trial.user_attrs.get("seconds", 0.0)),
        trial.user_attrs.get("iterations"),
    )


def trials_left(study: Any, max_trials: int | None) -> int | None:
    """How many more trials ``max_trials`` allows (None: no limit); finished ones count."""
    if max_trials is None:
        return None
    return max(0, max_trials - sum(1 for t in study.trials if t.state.is_finished()))


def search_result(family: str, study: Any, data: Prepared, kept: Callable[[int], Any]) -> SearchResult:
    """The study's best trial as a SearchResult (the defaults and NaN when none completed);
    ``kept`` gives a trial's out-of-sample predictions (or those and its fit) by number, if kept."""
    import optuna

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    cut = sum(1 for t in study.trials if t.user_attrs.get("cut"))
    if not completed:
        return SearchResult(
            family,
            study.study_name,
            default_params(family, data.plan.task),
            float("nan"),
            len(study.trials),
            0,
            cut=cut,
        )
    median = float(np.median([t.user_attrs.get("seconds", 0.0) for t in completed]))
    best = study.best_trial
    seconds = max(median, float(best.user_attrs.get("seconds", 0.0)))  # the refit fits the best
    found = kept(best.number)
    predictions, fitted = found if isinstance(found, tuple) else (found, None)
    params = dict(best.params) | (replay_keys(fitted.params) if fitted is not None else {})
    rounds = best.user_attrs.get("iterations") if data.valid is None else None
    return SearchResult(
        family,
        study.study_name,
        params,
        float(study.best_value),
        len(study.trials),
        len(completed),
        seconds,
        predictions,
        fitted,
        cut,
        int(rounds) if rounds else None,
    )


def _improves(study: Any, value: float, greater_is_better: bool) -> bool:
    """Whether a trial's value beats every completed trial of ``study`` so far."""
    import optuna

    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return not values or is_better(value, max(values) if greater_is_better else min(values), greater_is_better)


def refit(
    family: str,
    params: dict[str, Any],
    data: Prepared,
    train: np.ndarray,
    valid: np.ndarray | None,
    settings: SearchSettings,
    deadline: float | None = None,
    rows: str | None = None,
    kept: Candidate | None = None,
) -> Candidate:
    """The final model, on every training row, with the search space rebuilt from ``params`` (FixedTrial).

    Boosted families first fit on ``train`` with early stopping on ``valid`` (for the number of
    rounds and the loss curves; ``kept``, the search's own fit of these parameters, when given),
    then refit on train + valid with the rounds scaled to the rows, unless that refit would end
    after ``deadline`` or was cut by it: then the first fit is the final model, and its ``rows``
    say so ("train"; ``rows`` replays a recorded choice). Other searched families refit on every
    row the same way, falling back to ``kept``. Fine-tuned families fit once, on ``train`` with
    early stopping on ``valid`` (keeping the best epoch), until ``deadline``: a second
    fine-tuning on every row would double minutes of CPU. A fit cut at the deadline records
    how far it got (``keel.training.deadline``), so a replay rebuilds it.
    """
    import optuna

    fixed = suggest(optuna.trial.FixedTrial(params), family, data.plan.task) if params else {}
    fixed |= replay(family, params)
    if "cv_rounds" in params:
        fixed |= {"n_estimators": int(params["cv_rounds"])}
    if valid is None:  # nothing to stop early on (XGBoost refuses early stopping without an eval set)
        fixed |= NO_EARLY_STOP.get(family, {})
    everything = np.sort(train if valid is None else np.concatenate([train, valid]))
    fit: dict[str, Any] = {"seed": settings.seed, "threads": settings.threads}
    if family in FINE_TUNED:
        folder = checkpoint_folder(settings, family, data)
        tuned = fit_family(family, fixed, data, train, valid, deadline=deadline, checkpoints=folder, **fit)
        tuned.rows = "all" if valid is None else "train"
        return tuned
    if family not in BOOSTERS or valid is None:
        return _refit_plain(family, fixed, data, (train, everything), fit, deadline, rows, kept)
    probe = kept or fit_family(family, fixed, data, train, valid, curves=True, deadline=deadline, **fit)
    if (rows or _refit_rows(probe, len(everything) / len(train), deadline)) == "train" or probe.cut:
        probe.rows = "train"
        return probe
    rounds = max(1, round((probe.iterations or 1) * len(everything) / len(train)))
    final = fit_family(
        family,
        fixed | {"n_estimators": rounds, **NO_EARLY_STOP.get(family, {})},
        data,
        everything,
        None,
        deadline=deadline,
        **fit,
    )
    if final.cut:  # the refit ran out of time: the validated fit is the model
        probe.rows = "train"
        return probe
    final.curves, final.iterations, final.overfit_iteration = probe.curves, rounds, probe.overfit_iteration
    final.fit_seconds += probe.fit_seconds
    return final


def _refit_plain(
    family: str,
    fixed: dict[str, Any],
    data: Prepared,
    rows_of: tuple[np.ndarray, np.ndarray],
    fit: dict[str, Any],
    deadline: float | None,
    rows: str | None,
    kept: Candidate | None,
) -> Candidate:
    """A family without early stopping on every training row, or its kept search fit when that
    refit would pass (or was cut by) the deadline."""
    train, everything = rows_of
    late = kept is not None and rows is None and _refit_rows(kept, len(everything) / len(train), deadline) == "train"
    if rows == "train" or late:
        chosen = kept or fit_family(family, fixed, data, train, None, deadline=deadline, **fit)
        chosen.rows = "train"
        return chosen
    final = fit_family(family, fixed, data, everything, None, deadline=deadline, **fit)
    if final.cut and kept is not None and len(everything) > len(train):
        kept.rows = "train"
        return kept
    return final


def _refit_rows(probe: Candidate, growth: float, deadline: float | None) -> str:
    """ "all" when a refit on every row (``growth`` times the probe's rows and rounds, so about
    ``growth`` times its time) ends before ``deadline``; else "train", the probe as it is."""
    if deadline is None or time.monotonic() + probe.fit_seconds * growth <= deadline:
        return "all"
    return "train"


def checkpoint_folder(settings: SearchSettings, family: str, data: Prepared) -> Path | None:
    """Where ``family``'s epochs are checkpointed: one folder per study prefix (model, data, seed),
    family and text settings. Without ``resume`` what a killed fit left there is cleared first."""
    if not settings.checkpoints:
        return None
    import hashlib
    import shutil

    key = hashlib.sha256(f"{settings.study_prefix}|{data.config.text.model_dump_json()}".encode()).hexdigest()[:16]
    folder = Path(settings.checkpoints) / f"{family}-{key}"
    if not settings.resume:
        shutil.rmtree(folder, ignore_errors=True)
    return folder


def evaluate(
    trial: Any,
    family: str,
    params: dict[str, Any],
    data: Prepared,
    train: np.ndarray,
    valid: np.ndarray | None,
    deadline: float,
    settings: SearchSettings,
) -> tuple[float, int | None, np.ndarray, Candidate | None]:
    """The trial's validation score, its boosting rounds, its predictions on the validation rows
    (or, when cross-validating, out-of-fold on the training rows) and its fit (None when
    cross-validating). A fit that reaches ``deadline`` stops there and is scored as it is."""
    import optuna

    if valid is None:  # small data: cross-validate, no pruning, stop between folds when out of time
        value, predictions, rounds = _cross_validate(family, params, data, train, settings, deadline)
        return value, rounds, predictions, None
    sign = -1.0 if data.plan.greater_is_better else 1.0  # report losses so that the study's direction holds
    stopped = {"why": ""}

    def on_round(round_: int, loss: float) -> bool:
        trial.report(sign * loss, round_)
        if trial.should_prune():
            stopped["why"] = "pruned"
        return bool(stopped["why"])

    try:
        fitted = fit_family(
            family,
            params,
            data,
            train,
            valid,
            seed=settings.seed,
            threads=settings.threads,
            on_round=on_round,
            curves=family in BOOSTERS,
            deadline=deadline,
        )
    except StopTraining:
        raise optuna.TrialPruned(stopped["why"]) from None
    if stopped["why"]:
        raise optuna.TrialPruned(stopped["why"])
    predictions = predict(fitted.pipeline, data, valid)
    return metric_value(data.plan.metric, data.y[valid], predictions), fitted.iterations, predictions, fitted


def _cross_validate(
    family: str, params: dict[str, Any], data: Prepared, rows: np.ndarray, settings: SearchSettings, deadline: float
) -> tuple[float, np.ndarray, int | None]:
    """The mean score over the folds, the out-of-fold predictions of every row in ``rows``, and
    (boosters, early-stopped on each held-out fold as ``lightgbm.cv`` does) the mean rounds."""
    import optuna
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if data.plan.classification else KFold)(
        CV_FOLDS, shuffle=True, random_state=settings.seed
    )
    scores, rounds = [], []
    out_of_fold: np.ndarray | None = None
    boosted = family in BOOSTERS
    for fold_train, fold_valid in splitter.split(rows, data.y[rows]):
        fitted = fit_family(
            family,
            params,
            data,
            rows[fold_train],
            rows[fold_valid] if boosted else None,
            seed=settings.seed,
            threads=settings.threads,
            deadline=deadline,
        )
        if fitted.iterations:
            rounds.append(fitted.iterations)
        predictions = predict(fitted.pipeline, data, rows[fold_valid])
        if out_of_fold is None:
            out_of_fold = np.zeros((len(rows), *predictions.shape[1:]))
        out_of_fold[fold_valid] = predictions
        scores.append(metric_value(data.plan.metric, data.y[rows[fold_valid]], predictions))
        if time.monotonic() > deadline and len(scores) < CV_FOLDS:
            raise optuna.TrialPruned("out of time")
    assert out_of_fold is not None
    return float(np.mean(scores)), out_of_fold, round(float(np.mean(rounds))) if rounds else None


def open_storage(url: str, attempts: int = 5) -> Any:
    """Optuna's RDB storage at ``url``, safe when other processes open the same new database.

    Optuna creates its tables and writes its schema version when a storage is first opened,
    without a lock: two processes opening one fresh SQLite file at once fail with "table
    studies already exists" or "UNIQUE constraint failed: alembic_version.version_num" (8 of
    10 tries with four processes here; a CI run met it between ``keel train`` and a reader).
    The loser finds the schema complete when it opens the storage again.
    """
    import optuna
    import sqlalchemy.exc

    options = {"connect_args": {"timeout": 30}}
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=options)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            time.sleep(0.05 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=options)


def open_study(family: str, data: Prepared, settings: SearchSettings) -> Any:
    import optuna

    storage = open_storage(settings.storage)
    base = f"{settings.study_prefix}|{family}|v{VERSION}"
    existing = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(base + "|")]
    numbers = sorted(int(name.rsplit("|", 1)[1]) for name in existing)
    number = numbers[-1] if settings.resume and numbers else (numbers[-1] + 1 if numbers else 1)
    study = optuna.create_study(
        storage=storage,
        study_name=f"{base}|{number}",
        direction="maximize" if data.plan.greater_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed + number, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2 * 10),
        load_if_exists=True,
    )
    for trial in study.trials:  # left RUNNING by a killed process: they will never finish
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study
