from __future__ import annotations

import pandas as pd
import pytest

from keel.errors import ConfigError, TrainingError
from keel.planning.rules import make_plan


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


def test_single_class_target_cannot_be_trained() -> None:
    with pytest.raises(TrainingError, match="has 1 distinct value"):
        make_plan(pd.Series(["a"] * 10, name="y"))


def test_configured_task_must_fit_the_target() -> None:
    with pytest.raises(ConfigError, match="task: binary, but target 'y' has 3 classes"):
        make_plan(pd.Series(["a", "b", "c"] * 5, name="y"), "binary")
