"""Reading and marking tracked runs: the final run of each family, dead ends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keel.errors import RegistryError
from keel.tracking.mlflow_tracker import mlflow_errors
from keel.tracking.sqlite_store import prepare_sqlite_store

DEAD_END_TAG = "keel.dead_end"


@dataclass(frozen=True)
class FinalRun:
    """A family's final model in one training: its metrics and what it was trying."""

    run_id: str
    parent_id: str
    started: int
    family: str
    hypothesis: str
    metric: str
    greater_is_better: bool
    value: float
    low: float
    high: float
    dead_end: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class RunStore:
    """The runs of one experiment (the project's model name) in an MLflow tracking store."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.uri = tracking_uri
        with mlflow_errors(tracking_uri):
            from mlflow import MlflowClient

            prepare_sqlite_store(tracking_uri)
            self._client = MlflowClient(tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
        if found is None:
            raise RegistryError(f"no runs of '{experiment}' in {tracking_uri}.", hint="Run `keel train` first.")
        self.experiment_id = found.experiment_id

    def finals(self, limit: int = 200) -> list[FinalRun]:
        """The final run of every family of every training, newest first."""
        with mlflow_errors(self.uri):
            runs = self._client.search_runs(
                [self.experiment_id],
                "tags.`keel.role` = 'final'",
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )
        return [_final(r) for r in runs]

    def find(self, prefix: str) -> Any:
        """A run by its id or a unique prefix of it."""
        with mlflow_errors(self.uri):
            runs = self._client.search_runs([self.experiment_id], max_results=5000)
        matches = [r for r in runs if r.info.run_id.startswith(prefix)]
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise RegistryError(
                f"{what} of this project match '{prefix}'.", hint="`keel runs compare` lists the runs with their ids."
            )
        return matches[0]

    def get(self, run_id: str) -> Any:
        with mlflow_errors(self.uri):
            return self._client.get_run(run_id)

    def curves(self, run_id: str, keys: tuple[str, ...] = ("train_loss", "valid_loss")) -> dict[str, list[float]]:
        """Per-iteration metric histories of a run (the training curves), by key."""
        out = {}
        with mlflow_errors(self.uri):
            for key in keys:
                history = sorted(self._client.get_metric_history(run_id, key), key=lambda m: m.step)
                if history:
                    out[key] = [float(m.value) for m in history]
        return out

    def mark_dead_end(self, run_id: str, why: str) -> None:
        with mlflow_errors(self.uri):
            self._client.set_tag(run_id, DEAD_END_TAG, why)


def _final(run: Any) -> FinalRun:
    tags, metrics = run.data.tags, run.data.metrics
    metric = tags.get("keel.metric", "")
    return FinalRun(
        run_id=run.info.run_id,
        parent_id=tags.get("mlflow.parentRunId", ""),
        started=int(run.info.start_time or 0),
        family=tags.get("keel.family", ""),
        hypothesis=tags.get("keel.hypothesis", ""),
        metric=metric,
        greater_is_better=tags.get("keel.greater_is_better", "true") == "true",
        value=float(metrics.get(metric, float("nan"))),
        low=float(metrics.get(f"{metric}_ci_low", float("nan"))),
        high=float(metrics.get(f"{metric}_ci_high", float("nan"))),
        dead_end=tags.get(DEAD_END_TAG, ""),
        tags=dict(tags),
        params=json.loads(tags.get("keel.params", "{}")),
    )
