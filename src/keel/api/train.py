"""``train``: fit the baseline and candidate families, track every run, register the best."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.config import Project
from keel.data.snapshot import DatasetVersion, snapshot
from keel.data.triage import TriageOptions
from keel.errors import ConfigError, TrainingError
from keel.evaluation.metrics import is_better
from keel.planning.rules import Plan
from keel.profile import build_profile
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.schema import LOG_LABEL
from keel.store import Store
from keel.tracking import manifest
from keel.tracking.base import Tracker
from keel.training.fit import Candidate, fit_candidate, predictions_of
from keel.training.prepare import Prepared, prepare

Step = Callable[[str], None]


@dataclass
class TrainResult:
    """What ``train`` made: every candidate, the best one, and its registered version."""

    data: DatasetVersion
    plan: Plan
    candidates: list[Candidate]
    best: Candidate
    version: ModelVersion
    tracking_uri: str


def train(
    project: Project,
    *,
    allow: dict[str, str] | None = None,
    tracker: Tracker | None = None,
    on_step: Step | None = None,
) -> TrainResult:
    """Train every configured family on the project's data and register the best one.

    Refuses data whose triage found a blocking problem, unless ``allow`` maps that
    check's id (or its check name) to a reason, which is recorded with every run.
    """
    step = on_step or (lambda _message: None)
    cfg, store = project.config, Store(project.store_path).ensure()
    step("snapshotting and triaging the data")
    dataset = snapshot(project.data_path, store, TriageOptions.from_config(project.config))
    allowed = check_blocking(dataset, allow or {})
    data = prepare(dataset.load(), cfg, str(project.data_path), dataset.triage)
    step("connecting to the tracking store")
    if tracker is None:
        from keel.tracking.mlflow_tracker import MlflowTracker

        tracker = MlflowTracker(project.tracking_uri, cfg.name, store.artifacts)
    tags = _lineage(project, dataset, data)
    if allowed:
        tags["keel.allowed_checks"] = json.dumps(allowed)
    candidates = []
    for family in cfg.train.families:
        step(f"fitting {family} on {len(data.train):,} rows")
        candidate = fit_candidate(family, data, cfg.seed, cfg.train.threads)
        step(f"tracking {family}")
        _track(tracker, candidate, data, tags, cfg.target)
        candidates.append(candidate)
    best = _best(candidates, data.plan)
    step(f"registering {best.family} as a new version of {cfg.name}")
    version = _register(project, best, tags | {"keel.family": best.family})
    return TrainResult(dataset, data.plan, candidates, best, version, project.tracking_uri)


def check_blocking(dataset: DatasetVersion, allow: dict[str, str]) -> dict[str, str]:
    """The allowed blocking findings (id -> reason); TrainingError for any other one."""
    blocking = dataset.triage.blocking
    known = {f.id for f in blocking} | {f.check for f in blocking}
    unknown = [a for a in allow if a not in known]
    if unknown:
        listed = ", ".join(sorted(f.id for f in blocking)) or "none"
        raise ConfigError(f"--allow {unknown[0]} matches no blocking finding of this data (blocking: {listed}).")
    if any(not reason.strip() for reason in allow.values()):
        raise ConfigError("--allow needs --reason '...': the override is recorded with the runs.")
    refused = [f for f in blocking if f.id not in allow and f.check not in allow]
    if refused:
        first = refused[0]
        more = f" ({len(refused) - 1} more blocking finding(s))" if len(refused) > 1 else ""
        raise TrainingError(
            f"training refused: {first.message}{more}",
            hint=f"Fix the data or drop the column in keel.yaml; or override with "
            f"--allow {first.id} --reason '...'. `keel analyze` lists every finding.",
        )
    return {f.id: allow.get(f.id, allow.get(f.check, "")) for f in blocking}


def _lineage(project: Project, dataset: DatasetVersion, data: Prepared) -> dict[str, str]:
    cfg = project.config
    tags = manifest.environment() | {
        "keel.data_digest": dataset.digest,
        "keel.data_source": dataset.source,
        "keel.seed": str(cfg.seed),
        "keel.test_size": str(cfg.split.test_size),
        "keel.task": data.plan.task,
        "keel.metric": data.plan.metric,
        "keel.greater_is_better": str(data.plan.greater_is_better).lower(),
        "keel.target": cfg.target,
    }
    commit = manifest.git_commit(project.root)
    if commit:
        tags["keel.git_commit"] = commit
    return tags


def _track(tracker: Tracker, candidate: Candidate, data: Prepared, tags: dict[str, str], target: str) -> None:
    run_id = tracker.start_run(candidate.family, tags | {"keel.family": candidate.family})
    candidate.run_id = run_id
    try:
        estimator = candidate.pipeline.steps[-1][1]
        tracker.log_params(run_id, {"family": candidate.family, **estimator.get_params()})
        tracker.log_metrics(run_id, candidate.metrics | {"fit_seconds": candidate.fit_seconds})
        candidate.model_uri = tracker.log_model(run_id, candidate.pipeline)
        with tempfile.TemporaryDirectory() as tmp:
            _write_run_files(Path(tmp), candidate, data, tags, target)
            tracker.log_artifacts(run_id, Path(tmp), "keel")
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id)


def _write_run_files(folder: Path, candidate: Candidate, data: Prepared, tags: dict[str, str], target: str) -> None:
    """What export and reproduction need beside the model: schema, meta, hold-out rows, profile."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {
        "family": candidate.family,
        "target": target,
        "classes": data.classes,
        "metrics": candidate.metrics,
        "plan": data.plan.to_dict(),
        "lineage": tags,
    }
    (folder / "model_meta.json").write_text(json.dumps(meta, indent=2))
    (folder / "schema.json").write_text(json.dumps(data.schema.to_dict(), indent=2))
    (folder / "requirements.txt").write_text(manifest.frozen_requirements())
    holdout = data.rows(data.test) | {"keel_target": data.y[data.test]}
    pq.write_table(pa.table(holdout), folder / "holdout.parquet")
    (folder / "profile.json").write_text(json.dumps(_profile(candidate, data)))


def _profile(candidate: Candidate, data: Prepared) -> dict[str, Any]:
    """Reference profile: training inputs, and predictions on the hold-out rows."""
    kinds = {c.name: c.kind for c in data.schema.columns}
    inputs = build_profile(data.rows(data.train), kinds)
    predicted = predictions_of(candidate.pipeline, data, data.test)
    out_kinds = {name: ("categorical" if name == LOG_LABEL else "numeric") for name in predicted}
    return inputs | build_profile(predicted, out_kinds)


def _best(candidates: list[Candidate], plan: Plan) -> Candidate:
    best = candidates[0]
    for candidate in candidates[1:]:
        if is_better(candidate.metrics[plan.metric], best.metrics[plan.metric], plan.greater_is_better):
            best = candidate
    if np.isnan(best.metrics[plan.metric]):
        raise TrainingError(f"no candidate has a valid {plan.metric}; nothing was registered.")
    return best


def _register(project: Project, best: Candidate, tags: dict[str, str]) -> ModelVersion:
    registry = MlflowRegistry(project.tracking_uri)
    metric = tags["keel.metric"]
    keep = (
        "keel.data_digest",
        "keel.seed",
        "keel.test_size",
        "keel.task",
        "keel.metric",
        "keel.greater_is_better",
        "keel.target",
        "keel.family",
        "keel.version",
        "keel.git_commit",
    )
    version_tags = {k: tags[k] for k in keep if k in tags} | {"keel.metric_value": repr(best.metrics[metric])}
    return registry.register(project.name, best.model_uri, best.run_id, version_tags)
