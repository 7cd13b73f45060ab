"""``run``: analyze → train → export → promote, for one project file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keel.api.data import analyze
from keel.api.models import ExportResult, export, promote
from keel.api.train import TrainOptions, TrainResult, train
from keel.config import Project
from keel.data.snapshot import DatasetVersion
from keel.data.triage import TriageOptions
from keel.errors import RegistryError
from keel.registry.champion import AliasChange

Step = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    data: DatasetVersion
    trained: TrainResult
    exported: ExportResult
    promotion: AliasChange | None
    refused: str | None


def run(
    project: Project,
    options: TrainOptions = TrainOptions(),
    *,
    on_step: Step | None = None,
    on_trial: Callable[..., None] | None = None,
) -> RunResult:
    """Chain the stages; a refused promotion is reported, not raised (the champion stays)."""
    step = on_step or (lambda _message: None)
    step("analyzing the data")
    data = analyze(project.data_path, store=project.store_path, options=TriageOptions.from_config(project.config))
    trained = train(project, options, on_step=step, on_trial=on_trial)
    exported = export(project, trained.version.ref, on_step=step)
    step(f"promoting {trained.version.ref}")
    try:
        return RunResult(data, trained, exported, promote(project, trained.version.ref), None)
    except RegistryError as exc:
        return RunResult(data, trained, exported, None, str(exc))
