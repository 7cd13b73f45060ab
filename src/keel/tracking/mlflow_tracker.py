"""Tracker backed by MLflow (SQLite in the store by default, or a server URI)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keel.errors import RegistryError
from keel.tracking.sqlite_store import prepare_sqlite_store

MAX_PARAM_LENGTH = 6000
# Types a skops-saved pipeline may contain; anything else is refused, not trusted.
TRUSTED_MODULES = (
    "sklearn.",
    "lightgbm.",
    "xgboost.",
    "numpy.",
    "collections.",
    "builtins.",
    "scipy.",
    "keel.textmodels.",
)
MODEL_REQUIREMENTS = ["scikit-learn", "lightgbm", "xgboost-cpu", "skops", "numpy", "pandas"]


class MlflowTracker:
    """Runs in one MLflow experiment, named after the project's model."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None) -> None:
        with mlflow_errors(tracking_uri):
            from mlflow import MlflowClient

            self._uri = tracking_uri
            prepare_sqlite_store(tracking_uri)
            self._client = MlflowClient(tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
            if found is not None:
                self.experiment_id = found.experiment_id
            else:
                location = artifact_root.resolve().as_uri() if artifact_root and _is_local(tracking_uri) else None
                self.experiment_id = self._client.create_experiment(experiment, artifact_location=location)

    def start_run(self, name: str, tags: dict[str, str]) -> str:
        run = self._client.create_run(self.experiment_id, run_name=name, tags=tags)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        batch = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(batch), 100):
            self._client.log_batch(run_id, params=batch[start : start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_curves(self, run_id: str, curves: dict[str, list[float]]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [
            Metric(name, float(v), now, step) for name, values in curves.items() for step, v in enumerate(values, 1)
        ]
        for start in range(0, len(points), 1000):
            self._client.log_batch(run_id, metrics=points[start : start + 1000])

    def log_model(self, run_id: str, model: Any) -> str:
        """Save the pipeline with MLflow's sklearn flavour (skops, no pickle)."""
        import mlflow
        import mlflow.sklearn

        trusted = trusted_types(model)
        mlflow.set_tracking_uri(self._uri)
        with warnings.catch_warnings(), mlflow.start_run(run_id=run_id):
            # MLflow warns that sklearn's untyped predict() gets no input validation; keel validates inputs itself.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                skops_trusted_types=trusted,
                pip_requirements=MODEL_REQUIREMENTS,
            )
        return str(info.model_uri)

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self._client.log_artifacts(run_id, str(local_dir), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._client.set_terminated(run_id, status=status)


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load ``model``; refuses types outside TRUSTED_MODULES."""
    sio = skops_io()
    found = sio.get_untrusted_types(data=sio.dumps(model))
    foreign = [t for t in found if not t.startswith(TRUSTED_MODULES)]
    if foreign:
        raise RegistryError(
            f"the model holds types keel will not trust when loading: {', '.join(foreign)}.",
            hint="Use estimators from scikit-learn, LightGBM or XGBoost.",
        )
    return list(found)


def skops_io() -> Any:
    """``skops.io``, imported without the array libraries scikit-learn merely lists.

    Importing skops.io lists scikit-learn's estimators (``sklearn.utils.all_estimators``),
    which imports every sklearn package to find its subpackages, among them
    ``sklearn.externals.array_api_compat.torch``: that imports torch whenever the text extra
    is installed, although all_estimators then skips ``externals``. Refusing those modules
    during the import leaves skops's trusted types as they were (208 sklearn estimators either
    way) and took the import from 3.1 s to 0.8 s here, in every process that saves or loads a
    model. Call it before MLflow's sklearn flavour imports skops itself.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    blocker = _SkipArrayBackends()
    sys.meta_path.insert(0, blocker)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(blocker)
    return skops.io


class _SkipArrayBackends:
    """An import hook refusing scikit-learn's array-API adapters for libraries not yet imported."""

    PREFIX = "sklearn.externals.array_api_compat."
    BACKENDS = ("torch", "cupy", "dask", "jax")

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        import sys

        backend = name[len(self.PREFIX) :].split(".")[0] if name.startswith(self.PREFIX) else ""
        if backend in self.BACKENDS and backend not in sys.modules:
            raise ImportError(f"{name} skipped while skops lists scikit-learn's estimators")
        return None


@contextmanager
def mlflow_errors(tracking_uri: str) -> Iterator[None]:
    """Turn MLflow's storage failures into one clear RegistryError."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:  # MLflow raises many types; classify by name to keep imports lazy
        kind = type(exc).__name__
        if kind in ("OperationalError", "DatabaseError", "IntegrityError") or "database" in str(exc).lower():
            raise RegistryError(
                f"the tracking store at {tracking_uri} cannot be used: {_first_line(exc)}",
                hint="It may be locked by another process or corrupt; retry, or point MLFLOW_TRACKING_URI elsewhere.",
            ) from exc
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri
