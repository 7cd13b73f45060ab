"""The search on synthetic data: budget, resume, failed leftovers; one space for search and refit."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from keel.config import ProjectConfig
from keel.data.triage import TriageOptions, triage
from keel.evaluation.metrics import bootstrap_interval, metric_value
from keel.planning.search_space import suggest
from keel.training.fit import divergence
from keel.training.prepare import prepare
from keel.training.search import SearchSettings, refit, search

LIGHTGBM_PARAMS = {
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 10,
    "colsample_bytree": 0.8,
    "subsample": 0.8,
    "reg_lambda": 0.1,
}


@pytest.fixture
def data(rng: np.random.Generator):
    n = 3000
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)})
    signal = frame["x"] + 0.5 * frame["z"] + (frame["c"] == "a") + rng.normal(scale=0.8, size=n)
    frame["y"] = np.where(signal > 0.5, "yes", "no")
    config = ProjectConfig(
        name="m", data=Path("d.parquet"), target="y", train={"families": ["lightgbm"]}, split={"strategy": "stratified"}
    )
    return prepare(frame, config, "synthetic", triage(frame, TriageOptions(target="y")))


def settings(tmp_path: Path, resume: bool = False) -> SearchSettings:
    return SearchSettings(f"sqlite:///{tmp_path / 'optuna.db'}", "m|test|s1", seed=1, threads=1, resume=resume)


@pytest.mark.serial
def test_search_respects_its_deadline_and_finds_a_good_model(data, tmp_path: Path) -> None:
    start = time.monotonic()
    result = search("lightgbm", data, data.valid, data.search_train, start + 3, settings(tmp_path))
    assert time.monotonic() - start < 3 + 2  # a trial in flight stops at its next report
    assert result.completed >= 2 and result.best_value > 0.8
    assert result.best_params["num_leaves"] >= 8


def test_resume_continues_the_same_study_and_fails_leftovers(data, tmp_path: Path) -> None:
    first = search("linear", data, data.valid, data.search_train, time.monotonic() + 1, settings(tmp_path))
    study = optuna.load_study(study_name=first.study, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    leftover = study.ask()  # what a kill -9 leaves: a trial that never finishes
    resumed = search(
        "linear", data, data.valid, data.search_train, time.monotonic() + 1, settings(tmp_path, resume=True)
    )
    assert resumed.study == first.study and resumed.trials > first.trials
    states = {
        t.number: t.state
        for t in optuna.load_study(study_name=first.study, storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    }
    assert states[leftover.number] == optuna.trial.TrialState.FAIL
    fresh = search("linear", data, data.valid, data.search_train, time.monotonic() + 0.5, settings(tmp_path))
    assert fresh.study != first.study  # without --resume a new study starts


def test_refit_rebuilds_the_winning_parameters_through_the_same_space(data, tmp_path: Path) -> None:
    result = search("lightgbm", data, data.valid, data.search_train, time.monotonic() + 2, settings(tmp_path))
    model = refit("lightgbm", result.best_params, data, data.search_train, data.valid, settings(tmp_path))
    expected = suggest(optuna.trial.FixedTrial(result.best_params), "lightgbm", "binary")
    estimator = model.pipeline.steps[-1][1]
    assert {k: estimator.get_params()[k] for k in expected} == expected
    assert set(model.curves) == {"train", "valid"} and model.iterations


def test_same_seed_and_data_give_the_same_predictions(data, tmp_path: Path) -> None:
    from keel.schema import arrays_to_frame

    params = LIGHTGBM_PARAMS
    frame = arrays_to_frame(data.schema, data.rows(data.test))
    runs = [
        refit(
            f, params if f in ("lightgbm", "xgboost") else {}, data, data.search_train, data.valid, settings(tmp_path)
        ).pipeline.predict_proba(frame)
        for f in ("lightgbm", "lightgbm")
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_a_refit_past_the_deadline_keeps_the_validated_fit_and_replays_as_recorded(data, tmp_path: Path) -> None:
    from keel.schema import arrays_to_frame

    params = LIGHTGBM_PARAMS
    frame = arrays_to_frame(data.schema, data.rows(data.test))
    refit_args = ("lightgbm", params, data, data.search_train, data.valid, settings(tmp_path))
    in_time = refit(*refit_args, deadline=time.monotonic() + 600)
    probe_seconds = in_time.fit_seconds * 0.3  # time for the validated fit, not for a second one on every row
    late = refit(*refit_args, deadline=time.monotonic() + probe_seconds)
    assert (in_time.rows, late.rows) == ("all", "train")
    assert late.iterations and in_time.iterations > late.iterations  # the rounds grew with the rows
    recorded = params | {k: v for k, v in late.params.items() if k.startswith("cut_")}  # as train records it
    replayed = refit("lightgbm", recorded, *refit_args[2:], rows="train")  # as `keel reproduce` replays it
    np.testing.assert_array_equal(replayed.pipeline.predict_proba(frame), late.pipeline.predict_proba(frame))
    assert refit("linear", {}, *refit_args[2:], deadline=time.monotonic()).rows == "all"  # one fit, nothing to keep


def test_a_fit_cut_at_the_deadline_keeps_its_best_round_and_replays_exactly(data, tmp_path: Path) -> None:
    """A fit that reaches the deadline stops there (not at its next trial), records how far it got,
    and a replay from the record rebuilds the same model."""
    from keel.schema import arrays_to_frame
    from keel.training.fit import fit_family

    slow = LIGHTGBM_PARAMS | {"learning_rate": 0.01}  # early stopping would take hundreds of rounds
    space = suggest(optuna.trial.FixedTrial(slow), "lightgbm", "binary")  # as a trial builds them
    started = time.monotonic()
    cut = fit_family("lightgbm", space, data, data.search_train, data.valid, seed=1, threads=1, deadline=started)
    assert time.monotonic() - started < 1.0
    assert cut.cut and 1 <= cut.params["cut_rounds"] < 2000
    frame = arrays_to_frame(data.schema, data.rows(data.test))
    replayed = refit("lightgbm", slow | {"cut_rounds": cut.params["cut_rounds"]}, data, data.search_train,
                     data.valid, settings(tmp_path), rows="train")  # fmt: skip
    np.testing.assert_array_equal(replayed.pipeline.predict_proba(frame), cut.pipeline.predict_proba(frame))
    linear = fit_family("linear", {"C": 1.0}, data, data.search_train, None, seed=1, threads=1, deadline=started)
    assert linear.pipeline.predict_proba(frame).shape == (len(data.test), 2)  # a cut linear fit still predicts


def test_divergence_is_the_round_where_validation_loss_turned() -> None:
    train = [1.0 - 0.01 * i for i in range(60)]
    valid = [1.0 - 0.01 * i for i in range(30)] + [0.71 + 0.01 * i for i in range(30)]
    assert divergence({"train": train, "valid": valid}) == 30
    assert divergence({"train": train, "valid": sorted(valid, reverse=True)}) is None


def test_bootstrap_interval_brackets_the_metric(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 2000)
    proba = np.clip(y * 0.3 + rng.uniform(0, 0.7, 2000), 0, 1)  # the classes overlap: the AUC varies between resamples
    both = np.column_stack([1 - proba, proba])
    low, high = bootstrap_interval("roc_auc", y, both)
    assert 0.5 < low < metric_value("roc_auc", y, both) < high < 1.0


def _open_after(url: str, barrier: Any, results: Any) -> None:
    from keel.training.search import open_storage

    barrier.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_new_study_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Optuna creates its schema unlocked: four processes opening one fresh SQLite file failed
    in 8 of 10 tries ("table studies already exists", "UNIQUE constraint failed")."""
    import multiprocessing

    from keel.training.search import open_storage

    open_storage(f"sqlite:///{tmp_path / 'warm.db'}")  # the forked processes start with optuna and alembic imported
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'optuna-{attempt}.db'}"
        barrier, results = context.Barrier(4), context.Queue()
        processes = [context.Process(target=_open_after, args=(url, barrier, results)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        outcomes = [results.get(timeout=5) for _ in processes]
        assert outcomes == ["ok"] * 4, outcomes


@pytest.mark.parametrize(
    ("budget", "searches_for"),
    [(4, 2.0), (8, 4.7), (20, 15.5), (60, 51.5)],  # small budgets keep half for the searches
)
def test_the_searches_leave_the_tracking_share_and_the_model_logging_of_the_budget(
    budget: float, searches_for: float
) -> None:
    from keel.api.train import search_end

    assert search_end(100.0, budget) == pytest.approx(100.0 + searches_for)


def test_a_busy_machine_keeps_more_of_the_budget_for_what_follows_the_searches() -> None:
    from keel.api.train import search_end, slowdown

    quiet, busy = search_end(100.0, 60, 1.0), search_end(100.0, 60, 2.0)
    assert busy == pytest.approx(100.0 + 60 - 6 - 2 * 2.5) and busy < quiet
    assert search_end(100.0, 60, 10.0) == pytest.approx(100.0 + 30)  # never more than half
    assert 1.0 <= slowdown() <= 3.0


def test_a_family_whose_share_cannot_hold_one_fit_gives_it_to_the_others(data, tmp_path: Path) -> None:
    """With time for one cheap fit only, the costliest family is left out (said why), not overrun."""
    from keel.api.train import _search_all
    from keel.training.families import MIN_FIT_SECONDS_PER_ROW

    ran: list[str] = []

    def fake_search(family, *args):  # the real search is tested above; here only who gets time matters
        ran.append(family)
        return search(family, data, data.valid, data.search_train, time.monotonic() + 0.5, settings(tmp_path))

    plan = dataclasses.replace(data.plan, families=("baseline", "linear", "lightgbm"))
    rows = len(data.search_train)
    slow = 3.0 / (MIN_FIT_SECONDS_PER_ROW["linear"] * rows)  # linear's one fit "needs" 3 s here, LightGBM's ~0.9 s
    skipped: dict[str, str] = {}
    _search_all(
        dataclasses.replace(data, plan=plan), settings(tmp_path), time.monotonic() + 2.0, lambda _: None,
        lambda _: None, fake_search, skipped, slow,
    )  # fmt: skip
    assert ran == ["lightgbm"] and "linear" in skipped and "needs about 3.0 s" in skipped["linear"]
