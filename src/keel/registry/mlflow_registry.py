"""Model versions and aliases in MLflow's model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import ModelNotFoundError
from keel.tracking.mlflow_tracker import mlflow_errors, skops_io
from keel.tracking.sqlite_store import prepare_sqlite_store


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its model lives and what was recorded with it."""

    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class MlflowRegistry:
    """Registered models in one MLflow tracking store."""

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri
        with mlflow_errors(tracking_uri):
            from mlflow import MlflowClient

            prepare_sqlite_store(tracking_uri)
            self._client = MlflowClient(tracking_uri, registry_uri=tracking_uri)

    def register(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> ModelVersion:
        with mlflow_errors(self.uri):
            if not self._exists(name):
                self._client.create_registered_model(name)
            mv = self._client.create_model_version(name, model_uri, run_id=run_id, tags=tags)
        return self.get(name, str(mv.version))

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A version by number, or the newest one when ``version`` is None."""
        if not self._exists(name):
            known = self.model_names()
            hint = f"Registered models: {', '.join(known)}." if known else "Run `keel train` first."
            raise ModelNotFoundError(f"model '{name}' is not in the registry at {self.uri}.", hint=hint)
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise ModelNotFoundError(f"model '{name}' has no versions.", hint="Run `keel train` first.")
            return versions[-1]
        with mlflow_errors(self.uri):
            try:
                mv = self._client.get_model_version(name, version)
            except Exception as exc:
                if "RESOURCE_DOES_NOT_EXIST" not in str(exc) and "not found" not in str(exc).lower():
                    raise
                listed = ", ".join(v.version for v in self.versions(name))
                raise ModelNotFoundError(
                    f"model '{name}' has no version {version}.", hint=f"Versions: {listed}."
                ) from None
        return _version(mv)

    def versions(self, name: str) -> list[ModelVersion]:
        with mlflow_errors(self.uri):
            found = self._client.search_model_versions(f"name = '{name}'")
        return sorted((_version(mv) for mv in found), key=lambda v: int(v.version))

    def model_names(self) -> list[str]:
        with mlflow_errors(self.uri):
            return sorted(m.name for m in self._client.search_registered_models())

    def aliases(self, name: str) -> dict[str, str]:
        with mlflow_errors(self.uri):
            model = self._client.get_registered_model(name)
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with mlflow_errors(self.uri):
            self._client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        with mlflow_errors(self.uri):
            self._client.delete_registered_model_alias(name, alias)

    def model_tags(self, name: str) -> dict[str, str]:
        with mlflow_errors(self.uri):
            return {str(k): str(v) for k, v in (self._client.get_registered_model(name).tags or {}).items()}

    def set_model_tags(self, name: str, tags: dict[str, str]) -> None:
        with mlflow_errors(self.uri):
            for key, value in tags.items():
                self._client.set_registered_model_tag(name, key, value)

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        with mlflow_errors(self.uri):
            for key, value in tags.items():
                self._client.set_model_version_tag(name, version, key, value)

    def download(self, run_id: str, artifact_path: str, dst: Path) -> Path:
        with mlflow_errors(self.uri):
            return Path(self._client.download_artifacts(run_id, artifact_path, str(dst)))

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        with mlflow_errors(self.uri):
            self._client.log_artifacts(run_id, str(local_dir), artifact_path)

    def load_pipeline(self, version: ModelVersion) -> Any:
        """The fitted scikit-learn pipeline of a version (skops; trusted types are checked)."""
        import mlflow
        import mlflow.sklearn

        skops_io()  # before MLflow imports it, without torch
        with mlflow_errors(self.uri):
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            return mlflow.sklearn.load_model(f"models:/{version.name}/{version.version}")

    def _exists(self, name: str) -> bool:
        with mlflow_errors(self.uri):
            return bool(self._client.search_registered_models(f"name = '{_quote(name)}'"))


def _version(mv: Any) -> ModelVersion:
    return ModelVersion(str(mv.name), str(mv.version), str(mv.run_id), str(mv.source), dict(mv.tags or {}))


def _quote(name: str) -> str:
    return name.replace("'", "''")
