"""Search trials on Ray Tune, driven by keel's own Optuna study (see keel.engines.ray)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keel.config import Engine


def search(
    family: str,
    data: Any,
    valid: np.ndarray | None,
    train: np.ndarray,
    deadline: float,
    settings: Any,
    on_trial: Callable[[Any], None] | None,
    *,
    engine: Engine,
    store: Path,
) -> Any:
    """``keel.training.search.search`` with the trials on Ray Tune (see the module doc)."""
    import optuna
    from ray import tune

    from keel.planning.search_space import default_params
    from keel.training.search import open_study, search_result, trials_left

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(family, data, settings)
    if not study.trials:
        study.enqueue_trial(default_params(family, data.plan.task), skip_if_exists=True)
    state = _Study(study, family, data.plan.task, data.plan.greater_is_better, on_trial)
    remaining = deadline - time.monotonic()
    limit = trials_left(study, settings.max_trials)
    if remaining > 1 and limit != 0:
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial,
                data=data,
                family=family,
                train=train,
                valid=valid,
                wall_deadline=time.time() + remaining,
                settings=settings,
            ),
            {"cpu": engine.trial_cpus},
        )
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # predictions stay out of result files
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # keel shows progress itself
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # rounds report a loss, the end a value
        for name in ("ray.tune", "ray.train", "ray.air"):
            logging.getLogger(name).setLevel(logging.ERROR)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=_study_searcher(state),
                scheduler=_study_pruner(state),
                num_samples=-1 if limit is None else limit,
                time_budget_s=remaining,
                reuse_actors=True,  # one worker process per CPU for the whole search, not one per trial
            ),
            run_config=tune.RunConfig(
                name=study.study_name.replace("|", "-"),
                storage_path=str(store.resolve() / "ray"),
                verbose=0,
            ),
        )
        tuner.fit()
    return search_result(family, study, data, state.kept.get)


class _Study:
    """The driver-side state the searcher and the scheduler share: the Optuna study and the
    trials it handed out. Never pickled (Tune pickles its searcher and scheduler for its own
    restore, which keel does not use: the study's storage is what resumes)."""

    def __init__(self, study: Any, family: str, task: str, greater: bool, on_trial: Callable | None) -> None:
        self.study, self.family, self.task, self.greater, self.on_trial = study, family, task, greater, on_trial
        self.asked: dict[str, Any] = {}  # Tune trial id -> Optuna trial
        self.pruned: set[str] = set()
        self.kept: dict[int, np.ndarray] = {}  # the best trial's predictions (ensemble selection)

    def __reduce__(self) -> Any:
        return (_Study.__new__, (_Study,))


def _searcher_class() -> type:
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Each Tune trial's parameters from the study (ask), its outcome back to it (tell)."""

        def __init__(self, state: _Study) -> None:
            super().__init__(metric="value", mode="max" if state.greater else "min")
            self.state = state

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: the study's own storage is what a resumed search continues from."""

        def restore(self, checkpoint_path: str) -> None:
            """See ``save``."""

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            from keel.planning.search_space import suggest

            trial = self.state.study.ask()
            self.state.asked[trial_id] = trial
            return {"params": suggest(trial, self.state.family, self.state.task), "number": trial.number}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            import optuna

            from keel.training.search import trial_report

            state = self.state
            trial = state.asked.pop(trial_id, None)
            if trial is None:
                return
            result = result or {}
            for key in ("iterations", "seconds"):
                if result.get(key) is not None:
                    trial.set_user_attr(key, result[key])
            study = state.study
            if error:
                frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif trial_id in state.pruned or result.get("state") != "complete":
                frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                value = float(result["value"])
                values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
                best = (max(values) if state.greater else min(values)) if values else None
                if best is None or (value > best if state.greater else value < best):
                    state.kept.clear()
                    state.kept[trial.number] = np.asarray(result["predictions"])
                frozen = study.tell(trial, value)
            if state.on_trial is not None:
                state.on_trial(trial_report(state.family, study, frozen))

    return StudySearcher


def _study_searcher(state: _Study) -> Any:  # the class is made on first use: Ray is optional
    return _searcher_class()(state)


def _study_pruner(state: _Study) -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class StudyPruner(FIFOScheduler):
        """Reports each trial's rounds to the study and stops what its median pruner prunes."""

        def __init__(self, state: _Study) -> None:
            super().__init__()
            self.state = state

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            optuna_trial = self.state.asked.get(trial.trial_id)
            if optuna_trial is None or "loss" not in result:
                return TrialScheduler.CONTINUE
            optuna_trial.report(float(result["loss"]), int(result["round"]))
            if optuna_trial.should_prune():
                self.state.pruned.add(trial.trial_id)
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return StudyPruner(state)


class _TuneTrial:
    """What ``keel.training.search.evaluate`` needs of an Optuna trial, inside a Tune worker:
    the rounds go to Tune (the driver's scheduler reports them to the study and stops the
    trial when pruned), so the worker itself never prunes. Each report carries the seconds so
    far: a trial the driver stops ends with its last report."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def report(self, value: float, step: int) -> None:
        from ray import tune

        tune.report({"loss": value, "round": step, "seconds": time.perf_counter() - self.started})

    def should_prune(self) -> bool:
        return False


def _trial(
    config: dict[str, Any],
    *,
    data: Any,
    family: str,
    train: np.ndarray,
    valid: np.ndarray | None,
    wall_deadline: float,
    settings: Any,
) -> None:
    import optuna
    from ray import tune

    from keel.training.search import evaluate

    deadline = time.monotonic() + (wall_deadline - time.time())  # clocks differ between processes
    proxy = _TuneTrial()
    started = proxy.started
    try:
        value, iterations, predictions, _fitted = evaluate(  # the fit stays on the worker: only scores travel
            proxy, family, config["params"], data, train, valid, deadline, settings
        )
    except optuna.TrialPruned as exc:
        tune.report({"state": "pruned", "why": str(exc), "seconds": time.perf_counter() - started})
        return
    tune.report(
        {
            "state": "complete",
            "value": value,
            "iterations": iterations,
            "seconds": time.perf_counter() - started,
            "predictions": predictions,
        }
    )
