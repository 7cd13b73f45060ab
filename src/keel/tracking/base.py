"""The Tracker seam: where runs, their parameters, metrics and files are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    """Records runs. Training calls it; it never calls back into training.

    A run is opened with ``start_run`` (returns its id), receives parameters,
    metrics, a model and files, and is closed with ``end_run``. An
    implementation owns its storage; callers only hold run ids.
    """

    def start_run(self, name: str, tags: dict[str, str]) -> str: ...

    def log_params(self, run_id: str, params: dict[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None: ...

    def log_curves(self, run_id: str, curves: dict[str, list[float]]) -> None:
        """Per-iteration series (e.g. train and validation loss), step = iteration."""
        ...

    def log_model(self, run_id: str, model: Any) -> str:
        """Store a fitted pipeline; return a URI the registry can register."""
        ...

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None: ...

    def end_run(self, run_id: str, status: str = "FINISHED") -> None: ...
