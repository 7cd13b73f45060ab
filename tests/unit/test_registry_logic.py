"""Registry logic that needs no MLflow: references, the champion stack, the hold-out check."""

from __future__ import annotations

import pytest

from keel.errors import ConfigError
from keel.registry.champion import champion_stack, compare_holdout
from keel.registry.mlflow_registry import ModelVersion
from keel.registry.refs import parse_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (None, ("adult", None)),
        ("3", ("adult", "3")),
        ("v3", ("adult", "3")),
        ("@3", ("adult", "3")),
        ("other", ("other", None)),
        ("other@12", ("other", "12")),
        ("other@champion", ("other", "champion")),
    ],
)
def test_parse_ref(ref: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_ref(ref, "adult") == expected


def test_parse_ref_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="not a model reference"):
        parse_ref("m@1.2", "adult")


def test_champion_stack_replays_promotions_and_rollbacks() -> None:
    events = [{"action": "promote", "version": v} for v in ("1", "2", "3")]
    events.append({"action": "rollback", "version": "2"})
    events.append({"action": "promote", "version": "4"})
    assert champion_stack(events) == ["1", "2", "4"]


def version(number: str, value: float, **overrides: str) -> ModelVersion:
    tags = {
        "keel.data_digest": "d",
        "keel.seed": "1",
        "keel.test_size": "0.2",
        "keel.metric": "roc_auc",
        "keel.metric_value": str(value),
        "keel.greater_is_better": "true",
    } | overrides
    return ModelVersion("m", number, "run", "src", tags)


def test_holdout_check_passes_a_better_model_and_refuses_a_worse_one() -> None:
    assert compare_holdout(version("2", 0.91), version("1", 0.90)).passed
    worse = compare_holdout(version("2", 0.80), version("1", 0.90))
    assert not worse.passed and "roc_auc 0.8000 is worse than champion v1's 0.9000" in worse.detail


def test_holdout_check_refuses_incomparable_models() -> None:
    check = compare_holdout(version("2", 0.99, **{"keel.seed": "7"}), version("1", 0.90))
    assert not check.passed and "not comparable with v1 (different seed)" in check.detail


def test_lower_is_better_metrics() -> None:
    lower = {"keel.metric": "rmse", "keel.greater_is_better": "false"}
    assert compare_holdout(version("2", 1.0, **lower), version("1", 2.0, **lower)).passed
