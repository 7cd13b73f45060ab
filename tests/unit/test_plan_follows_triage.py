"""The plan obeys its own triage, cites the finding it followed, and says "overridden" when keel.yaml wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.config import ProjectConfig
from keel.data.triage import TriageOptions, triage
from keel.training.prepare import prepare


def tabular(rng: np.random.Generator, n: int, positive: float = 0.3) -> pd.DataFrame:
    x, z = rng.normal(size=(2, n))
    cut = np.quantile(x + z + rng.normal(size=n), 1 - positive)
    return pd.DataFrame(
        {"x": x, "z": z, "c": rng.choice(["a", "b"], n), "y": np.where(x + z + rng.normal(size=n) > cut, "yes", "no")}
    )


def planned(frame: pd.DataFrame, **config: object):
    cfg = ProjectConfig(name="m", data=Path("d.parquet"), target="y", **config)
    report = triage(frame, TriageOptions(target="y", time_column=cfg.time_column))
    return prepare(frame, cfg, "synthetic", report)


def decision(data, name: str):
    return next(d for d in data.plan.decisions if d.name == name)


def test_a_rare_positive_class_makes_average_precision_the_metric_and_says_why(rng: np.random.Generator) -> None:
    data = planned(tabular(rng, 6000, positive=0.03))
    metric = decision(data, "metric")
    assert data.plan.metric == "average_precision" and "target.rare_class" in metric.rule
    overridden = planned(tabular(rng, 6000, positive=0.03), metric="roc_auc")
    assert overridden.plan.metric == "roc_auc" and "overridden" in decision(overridden, "metric").rule
    balanced = planned(tabular(rng, 6000, positive=0.3))
    assert balanced.plan.metric == "roc_auc"


def test_fewer_than_5000_rows_cross_validate_the_search(rng: np.random.Generator) -> None:
    data = planned(tabular(rng, 3000))
    assert data.plan.cross_validate and data.valid is None
    assert "kfold" in decision(data, "split").rule or "5,000" in decision(data, "split").rule
    held = planned(tabular(rng, 3000), split={"strategy": "stratified"})
    assert not held.plan.cross_validate and held.valid is not None
    assert "overridden" in decision(held, "split").rule


def test_more_than_100000_rows_split_80_10_10(rng: np.random.Generator) -> None:
    data = planned(tabular(rng, 101_000))
    rows = len(data.y)
    assert abs(len(data.test) / rows - 0.10) < 0.01 and abs(len(data.valid) / rows - 0.10) < 0.01
    assert "100,000" in decision(data, "split").rule
    explicit = planned(tabular(rng, 101_000), split={"test_size": 0.2})
    assert abs(len(explicit.test) / rows - 0.20) < 0.01 and "overridden" in decision(explicit, "split").rule


def test_rows_in_time_order_split_by_time_unless_told(rng: np.random.Generator) -> None:
    frame = tabular(rng, 6000)
    frame["t_index"] = np.arange(len(frame))  # strictly increasing: rows are in time order
    data = planned(frame)
    assert data.test.min() > data.train.max()  # the test rows are the latest
    assert "split.time_order" in decision(data, "split").rule
    told = planned(frame, split={"strategy": "stratified"})
    assert told.test.min() < told.train.max() and "overridden" in decision(told, "split").rule


def test_an_entity_with_repeated_rows_is_split_by_group(rng: np.random.Generator) -> None:
    frame = tabular(rng, 6000)
    frame["customer_id"] = [f"cust-{i:05d}" for i in rng.integers(0, 2500, len(frame))]  # about 2.4 rows each
    data = planned(frame)
    customers = frame["customer_id"].to_numpy()
    assert not set(customers[data.train]) & set(customers[data.test])
    split = decision(data, "split")
    assert "leak.identifier" in split.rule and "grouped by 'customer_id'" in split.value


@pytest.mark.parametrize("strategy", ["time", "grouped"])
def test_a_strategy_without_its_column_is_one_clear_line(rng: np.random.Generator, strategy: str) -> None:
    from keel.errors import ConfigError

    with pytest.raises(ConfigError, match=f"split.strategy {strategy} needs a column"):
        planned(tabular(rng, 6000), split={"strategy": strategy})
