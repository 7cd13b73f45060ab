"""``serve`` and ``predict``: run the champion's verified ONNX bundle, and nothing else.

This module (and what it imports) stays free of scikit-learn and MLflow: the
server process must not load the training stack.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.config import Project
from keel.data.load import iter_table
from keel.errors import DataError, SchemaError
from keel.exporting.bundle import Bundle, load_bundle
from keel.serving.predictor import Predictor
from keel.store import Store, read_serving_aliases

Progress = Callable[[int, int | None], None]
ADMIN_TOKEN_ENV = "KEEL_ADMIN_TOKEN"  # bearer token of the admin endpoints; unset: they are off


def load_alias(store: Store, model: str, alias: str = "champion") -> Bundle:
    """The verified bundle that ``alias`` points at (hash-checked against the registry's record)."""
    version, digest = read_serving_aliases(store, model).resolve(alias)
    return load_bundle(store.bundle_dir(model, version), digest)


def build_app(project: Project, alias: str = "champion", bundle: Bundle | None = None) -> Any:
    """The ASGI app serving ``alias`` of the project's model (or ``bundle``, already verified)."""
    from keel.serving.app import ServingState, Source, create_app
    from keel.serving.predlog import PredictionLog

    store = Store(project.store_path)
    settings = project.config.serving
    bundle = bundle or load_alias(store, project.name, alias)
    log = PredictionLog(store.predictions_dir(project.name), settings.log_flush_seconds)
    source = Source(
        stamp=lambda: _stamp(store.serving_file(project.name)),
        load=lambda name: _load_route(store, project.name, alias if name == "champion" else name),
        poll_seconds=settings.reload_poll_seconds,
    )
    state = ServingState(
        Predictor(bundle),
        log,
        settings.max_batch_rows,
        settings.max_request_bytes,
        os.environ.get(ADMIN_TOKEN_ENV) or None,
        source,
        canary_share=settings.canary_share,
        canary_key=settings.canary_key,
    )
    return create_app(state)


def _load_route(store: Store, model: str, alias: str) -> Bundle | None:
    """The verified bundle of ``alias``; None for a canary or shadow alias that is not set."""
    aliases = read_serving_aliases(store, model)
    if alias not in aliases.aliases and alias in ("canary", "shadow"):
        return None
    version, digest = aliases.resolve(alias)
    return load_bundle(store.bundle_dir(model, version), digest)


def _stamp(file: Path) -> int:
    """Changes whenever promote or rollback rewrites the serving file (atomic rename: new inode)."""
    try:
        status = file.stat()
    except FileNotFoundError:
        return 0
    return hash((status.st_ino, status.st_mtime_ns, status.st_size))


def serve(
    project: Project,
    *,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[str, Bundle], None] | None = None,
) -> None:
    """Serve the champion over HTTP until interrupted (SIGINT/SIGTERM shut down gracefully)."""
    import uvicorn

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = project.config.serving
    bundle = load_alias(Store(project.store_path), project.name)  # hashes verified once, here
    app = build_app(project, bundle=bundle)
    host, port = host or settings.host, port or settings.port
    if on_ready is not None:
        on_ready(f"http://{host}:{port}", bundle)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@dataclass(frozen=True)
class BatchResult:
    source: Path
    output: Path
    rows: int
    model: str
    version: str
    seconds: float


def predict_file(
    project: Project,
    source: Path | str,
    output: Path | str | None = None,
    *,
    alias: str = "champion",
    on_progress: Progress | None = None,
) -> BatchResult:
    """Score a CSV or Parquet file in chunks with the champion; write Parquet or CSV."""
    source = Path(source)
    target = Path(output) if output else source.with_name(f"{source.stem}.predictions.parquet")
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(f"cannot write predictions to '{target.name}'.", hint="Name a .parquet or .csv output file.")
    predictor = Predictor(load_alias(Store(project.store_path), project.name, alias), threads=2)
    chunks, total = iter_table(source)
    start, done = time.perf_counter(), 0
    tmp = target.with_name(f".{target.name}.tmp")
    writer = _Writer(tmp)
    try:
        for frame in chunks:
            writer.write(_score(predictor, frame, done))
            done += len(frame)
            if on_progress:
                on_progress(done, total)
        writer.close()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    bundle = predictor.bundle
    return BatchResult(source, target, done, bundle.model, bundle.version, time.perf_counter() - start)


def _score(predictor: Predictor, frame: Any, offset: int) -> Any:
    try:
        arrays = predictor.schema.frame_to_arrays(frame)
    except SchemaError as exc:
        raise DataError(f"rows {offset}-{offset + len(frame) - 1}: {exc}", hint=exc.hint) from None
    out = predictor.predict(arrays)
    result = frame.copy()
    if out.labels is not None and out.probabilities is not None and predictor.classes is not None:
        result["prediction"] = out.labels
        for i, name in enumerate(predictor.classes):
            result[f"probability_{name}"] = out.probabilities[:, i].astype(np.float64)
    else:
        result["prediction"] = out.score
    result["model"] = predictor.bundle.model
    result["model_version"] = predictor.bundle.version
    return result


class _Writer:
    """Appends DataFrame chunks to one Parquet or CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = ".parquet" in path.name
        self._writer: Any = None
        self._first = True

    def write(self, frame: Any) -> None:
        if not self.parquet:
            frame.to_csv(self.path, mode="w" if self._first else "a", header=self._first, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))
        self._first = False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
