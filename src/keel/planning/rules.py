"""The rule table: task type and primary metric.

Each decision records the rule that made it, so a person can read why.

| decision | rule |
|---|---|
| task | keel.yaml's ``task`` when not ``auto``; else the data stage's rule (``keel.data.target.infer_task``) |
| metric | binary: ROC AUC; multiclass: macro F1; regression: RMSE (lower is better) |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from keel.data.target import infer_task
from keel.errors import ConfigError, TrainingError

PRIMARY_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}


@dataclass(frozen=True)
class Decision:
    name: str
    value: str
    rule: str


@dataclass(frozen=True)
class Plan:
    task: str
    metric: str
    decisions: tuple[Decision, ...]

    @property
    def classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    @property
    def greater_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "decisions": [asdict(d) for d in self.decisions]}


def decide_task(target: Any, configured: str = "auto") -> Decision:
    """Task type from the target column (a pandas Series without missing values)."""
    distinct = int(target.nunique())
    if distinct < 2:
        raise TrainingError(
            f"target '{target.name}' has {distinct} distinct value(s); a model needs at least two.",
            hint="Check the target column, or the rows that were filtered out.",
        )
    if configured != "auto":
        _check_configured(configured, distinct, target)
        return Decision("task", configured, "set in keel.yaml")
    task, reason = infer_task(target)
    return Decision("task", task, reason)


def make_plan(target: Any, configured_task: str = "auto") -> Plan:
    task = decide_task(target, configured_task)
    metric = Decision("metric", PRIMARY_METRIC[task.value], f"primary metric for {task.value} tasks")
    return Plan(task.value, metric.value, (task, metric))


def _check_configured(task: str, distinct: int, target: Any) -> None:
    import pandas as pd

    if task == "binary" and distinct != 2:
        raise ConfigError(
            f"keel.yaml says task: binary, but target '{target.name}' has {distinct} classes.",
            hint="Use task: multiclass, or task: auto.",
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise ConfigError(
            f"keel.yaml says task: regression, but target '{target.name}' is not numeric.",
            hint="Use a numeric target, or task: auto.",
        )
