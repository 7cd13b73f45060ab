from __future__ import annotations

import pandas as pd
import pytest

from keel.errors import ConfigError, TrainingError
from keel.planning.rules import decide_families, make_plan


@pytest.mark.parametrize(
    ("values", "task", "metric"),
    [
        (["a", "b"] * 10, "binary", "roc_auc"),
        (["a", "b", "c"] * 10, "multiclass", "f1_macro"),
        ([0, 1] * 10, "binary", "roc_auc"),
        (list(range(20)) * 2, "regression", "rmse"),
        ([0.5, 1.5, 2.25] * 10, "regression", "rmse"),
    ],
)
def test_task_and_metric_rules(values: list[object], task: str, metric: str) -> None:
    plan = make_plan(pd.Series(values, name="y"))
    assert (plan.task, plan.metric) == (task, metric)
    assert all(d.rule for d in plan.decisions)


def test_family_rules_follow_the_number_of_rows() -> None:
    assert decide_families(999).value == "baseline,linear,random_forest"
    assert decide_families(1000).value == "baseline,linear,lightgbm,xgboost"
    assert decide_families(50, ("lightgbm",)).value == "baseline,lightgbm"
    plan = make_plan(pd.Series(["a", "b"] * 100, name="y"), rows=200)
    assert plan.cross_validate and "random_forest" in plan.families


def test_single_class_target_cannot_be_trained() -> None:
    with pytest.raises(TrainingError, match="has 1 distinct value"):
        make_plan(pd.Series(["a"] * 10, name="y"))


def test_configured_task_must_fit_the_target() -> None:
    with pytest.raises(ConfigError, match="task: binary, but target 'y' has 3 classes"):
        make_plan(pd.Series(["a", "b", "c"] * 5, name="y"), task="binary")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "auc_roc"}, "unknown metric 'auc_roc'"),
        ({"metric": "rmse"}, "metric 'rmse' does not fit a binary task"),
        ({"families": ("catboost",)}, "unknown model family 'catboost'"),
        ({"budget_seconds": 0}, "a training budget must be positive"),
    ],
)
def test_bad_plan_settings_are_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_plan(pd.Series(["a", "b"] * 10, name="y"), **kwargs)


def test_a_family_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "xgboost" else real(name))
    with pytest.raises(ConfigError, match="model family 'xgboost' is not installed.*pip install xgboost-cpu"):
        decide_families(5000, ("xgboost",))
