from __future__ import annotations

import pandas as pd
import pytest

from keel.errors import ConfigError, TrainingError
from keel.planning.rules import baseline_verdict, decide_families, make_plan


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


@pytest.mark.parametrize(
    ("rows", "domain", "families", "says"),
    [
        (60, "general", "baseline,linear,embeddings", "fine-tuning this few labels overfits"),
        (100, "general", "baseline,linear,embeddings,lora", "100 to 10,000"),
        (10_000, "general", "baseline,linear,embeddings,lora", "100 to 10,000"),
        (10_001, "general", "baseline,linear,embeddings,lora", "set text.domain: specialised"),
        (50_000, "specialised", "baseline,linear,embeddings,finetune", "full fine-tuning"),
        (5_000, "specialised", "baseline,linear,embeddings,lora", "100 to 10,000"),
    ],
)
def test_text_strategies_follow_the_number_of_labels(rows: int, domain: str, families: str, says: str) -> None:
    decision = decide_families(rows, text_columns=1, text_only=True, transformers=True, domain=domain)
    assert decision.value == families and says in decision.rule


def test_without_the_text_extra_or_with_other_inputs_text_gets_tf_idf() -> None:
    for text_only, transformers in ((True, False), (False, True)):
        decision = decide_families(5_000, text_columns=1, text_only=text_only, transformers=transformers)
        assert decision.value == "baseline,linear" and "TF-IDF + logistic regression" in decision.rule


def test_fine_tuning_plans_keep_a_validation_split_on_small_data() -> None:
    target = pd.Series(["ham", "spam"] * 200, name="label")
    plan = make_plan(target, rows=320, text_columns=1, text_only=True, transformers=True)
    assert "lora" in plan.families and not plan.cross_validate
    assert make_plan(target, rows=320, text_columns=1).cross_validate  # TF-IDF alone: cross-validated


def test_task_text_classifies_and_needs_a_text_column() -> None:
    plan = make_plan(pd.Series(["a", "b", "c"] * 40, name="y"), task="text", text_columns=1)
    assert plan.task == "multiclass" and "task: text" in plan.decisions[0].rule
    with pytest.raises(ConfigError, match="no input column is free text"):
        make_plan(pd.Series(["a", "b"] * 40, name="y"), task="text")


@pytest.mark.parametrize(
    ("scores", "value", "says"),
    [
        (
            {"baseline": 0.5, "linear": 0.95, "embeddings": 0.97, "lora": 0.93},
            "beaten",
            "embeddings (0.9700) beat TF-IDF (0.9500) on validation; lora (0.9300) did not",
        ),
        (
            {"linear": 0.95, "embeddings": 0.97, "lora": 0.96},
            "beaten",
            "lora (0.9600) beat TF-IDF (0.9500) on validation",
        ),
        (
            {"baseline": 0.5, "linear": 0.95, "embeddings": 0.94, "lora": 0.95},
            "not beaten",
            "the problem is likely the data",
        ),
    ],
)
def test_every_transformer_candidate_is_measured_against_tf_idf(
    scores: dict[str, float], value: str, says: str
) -> None:
    verdict = baseline_verdict(scores, greater_is_better=True)
    assert verdict is not None and verdict.value == value and says in verdict.rule
    assert baseline_verdict({"baseline": 0.5, "linear": 0.9}, True) is None  # nothing to compare
    lower = baseline_verdict({"linear": 0.30, "lora": 0.25}, greater_is_better=False)
    assert lower is not None and lower.value == "beaten"
