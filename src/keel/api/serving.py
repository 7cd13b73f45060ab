"""``serve`` and ``predict``: run the champion's verified ONNX bundle, and nothing else.

This module (and what it imports) stays free of scikit-learn and MLflow: the
server process must not load the training stack.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.config import Engine, Project, load_project
from keel.data.load import iter_table
from keel.errors import ConfigError, DataError, ServeError
from keel.exporting.bundle import Bundle, load_bundle
from keel.serving.batch import score_chunk
from keel.serving.metrics import MULTIPROCESS_ENV
from keel.serving.predictor import Predictor
from keel.store import Store, output_path, read_serving_aliases

Progress = Callable[[int, int | None], None]
logger = logging.getLogger("keel.serving")
MAX_CRASHES = 5  # worker deaths within CRASH_WINDOW_SECONDS before `keel serve --workers N` gives up
CRASH_WINDOW_SECONDS = 60.0
RESTART_MAX_SECONDS = 30.0  # a dead worker is restarted after 1, 2, 4, ... s, at most this
ADMIN_TOKEN_ENV = "KEEL_ADMIN_TOKEN"  # bearer token of the admin endpoints; unset: they are off
WORKER_ENV = "KEEL_SERVE_WORKER"  # what each `keel serve --workers N` process serves (JSON)


def load_alias(store: Store, model: str, alias: str = "champion") -> Bundle:
    """The verified bundle that ``alias`` points at (hash-checked against the registry's record)."""
    version, digest = read_serving_aliases(store, model).resolve(alias)
    return load_bundle(store.bundle_dir(model, version), digest)


def build_app(project: Project, alias: str = "champion", bundle: Bundle | None = None, *, follow: bool = True) -> Any:
    """The ASGI app serving ``alias`` of the project's model (or ``bundle``, already verified).

    ``follow``: watch the registry's aliases and hot-swap when they move; off for a server
    started on a fixed bundle directory (``keel serve --bundle``).
    """
    from keel.serving.app import ServingState, Source, create_app
    from keel.serving.metrics import ServingMetrics
    from keel.serving.predlog import PredictionLog

    store = Store(project.store_path)
    settings = project.config.serving
    bundle = bundle or load_alias(store, project.name, alias)
    log = PredictionLog(store.predictions_dir(bundle.model), settings.log_flush_seconds)
    source = Source(
        stamp=lambda: hash((_stamp(store.serving_file(project.name)), _stamp(store.kill_file(project.name)))),
        read=lambda: _routing(store, project.name, alias, settings.on_disabled == "previous"),
        poll_seconds=settings.reload_poll_seconds,
        disable=lambda version: _kill(store, project.name, version),
    )
    state = ServingState(
        Predictor(bundle),
        log,
        settings.max_batch_rows,
        settings.max_request_bytes,
        os.environ.get(ADMIN_TOKEN_ENV) or None,
        source if follow else None,
        canary_share=settings.canary_share,
        canary_key=settings.canary_key,
        id_column=settings.id_column,
        body_timeout=settings.body_timeout_seconds,
        metrics=ServingMetrics(settings.latency_budget_ms / 1000),
    )
    return create_app(state)


def _routing(store: Store, model: str, alias: str, fall_back: bool) -> Any:
    """What the serving file asks for now, each bundle verified: ``alias`` answers (the
    champion before it when the kill switch disabled it and ``fall_back``; else nothing, and
    requests get 503), canary and shadow beside it unless disabled, at the rollout's share."""
    from keel.serving.app import Routing

    aliases = read_serving_aliases(store, model)
    disabled = set(aliases.disabled) | set(_killed(store, model))
    version, digest = aliases.resolve(alias)
    unavailable = ""
    if version in disabled:
        fallback = aliases.fallback if fall_back and aliases.fallback not in disabled else None
        if fallback is None:
            why = "no earlier champion to fall back to" if fall_back else "serving.on_disabled is 'unavailable'"
            unavailable = (
                f"{model}@{version} is disabled by the kill switch ({why}); "
                f"re-enable it with `keel alias remove disabled {model}`"
            )
        else:
            version, digest = fallback, aliases.digests.get(fallback)
    bundles: dict[str, Bundle | None] = {
        "champion": None if unavailable else load_bundle(store.bundle_dir(model, version), digest)
    }
    for route in ("canary", "shadow"):
        target = aliases.aliases.get(route)
        if target is not None and target not in disabled:
            bundles[route] = load_bundle(store.bundle_dir(model, target), aliases.digests.get(target))
    return Routing(bundles, aliases.canary_share, unavailable)


def _killed(store: Store, model: str) -> list[str]:
    """The versions the admin kill switch disabled (``POST /admin/disable``)."""
    from keel.store import read_json

    file = store.kill_file(model)
    try:
        payload = read_json(file) if file.is_file() else {}
        return [str(v) for v in payload.get("versions", [])]
    except (ValueError, AttributeError):
        logger.error("%s is corrupt; ignoring it (delete it to clear the kill switch)", file)
        return []


def _kill(store: Store, model: str, version: str | None) -> None:
    """Disable ``version`` on every server of the model (None: clear); atomic, so each worker
    reads the whole file."""
    from keel.store import atomic_write_json

    versions = [] if version is None else sorted({*_killed(store, model), version})
    atomic_write_json(
        store.kill_file(model), {"versions": versions, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    )


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
    workers: int = 1,
    bundle_dir: Path | str | None = None,
    on_ready: Callable[[str, Bundle], None] | None = None,
    engine: Engine | None = None,
    replicas: int = 1,
) -> None:
    """Serve the champion (or the bundle in ``bundle_dir``) over HTTP until interrupted.

    SIGINT/SIGTERM shut down gracefully. With ``workers`` > 1, that many worker processes
    each bind the port with SO_REUSEPORT, so the kernel spreads connections evenly over them
    (with one shared listening socket, as uvicorn's ``--workers`` does, one busy worker often
    accepted all 32 connections of a load test and the others idled). Each worker loads and
    verifies the bundle itself, follows the aliases itself and writes its own prediction-log
    segments; ``/metrics``, whichever worker answers, adds up all of them. A worker that dies
    is started again after 1, 2, 4, ... s (at most ``RESTART_MAX_SECONDS``); after more than
    ``MAX_CRASHES`` deaths within ``CRASH_WINDOW_SECONDS`` the supervisor stops the others and
    fails with a clear error instead of restarting a crashing worker forever.

    On the Ray engine, ``replicas`` copies of the same app run on Ray Serve instead (see
    keel.engines.ray_serving), each verifying its bundle and following the aliases itself.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    if engine is not None and engine.name == "ray":
        if workers != 1:
            raise ConfigError("--workers is for the local engine.", hint="On Ray, use --replicas N.")
        _serve_on_ray(project, host, port, bundle_dir, on_ready, engine, replicas)
        return
    if replicas != 1:
        raise ConfigError("--replicas is for the Ray engine.", hint="Add --engine ray, or use --workers N here.")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = project.config.serving
    bundle = _startup_bundle(project, bundle_dir)  # hashes verified here, before any worker starts
    host, port = host or settings.host, port or settings.port
    if workers > 1 and port == 0:
        raise ConfigError("--workers needs a fixed --port: each worker binds the same one.")
    if on_ready is not None:
        on_ready(f"http://{host}:{port}", bundle)
    if workers == 1:
        from keel.serving.app import tune_server_process
        from keel.serving.protocol import server_options

        app = build_app(project, bundle=bundle, follow=bundle_dir is None)
        tune_server_process()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **server_options(settings))
        return
    spec = {"project": str(project.root), "bundle": str(bundle_dir) if bundle_dir else None, "host": host, "port": port}
    with tempfile.TemporaryDirectory(prefix="keel-metrics-") as metrics_dir:
        env = os.environ | {MULTIPROCESS_ENV: metrics_dir, WORKER_ENV: json.dumps(spec)}
        _supervise(workers, env)


def _serve_on_ray(
    project: Project,
    host: str | None,
    port: int | None,
    bundle_dir: Path | str | None,
    on_ready: Callable[[str, Bundle], None] | None,
    engine: Engine,
    replicas: int,
) -> None:
    from keel.engines.ray import connected
    from keel.engines.ray_serving import serve as serve_replicas

    if replicas < 1:
        raise ConfigError(f"--replicas must be at least 1, got {replicas}.")
    settings = project.config.serving
    bundle = _startup_bundle(project, bundle_dir)
    host, port = host or settings.host, port or settings.port
    fixed = str(bundle_dir) if bundle_dir else None

    def build() -> Any:  # runs on each replica: it verifies the bundle again itself
        from keel.serving.app import tune_server_process

        os.makedirs(os.environ[MULTIPROCESS_ENV], exist_ok=True)  # on another node of the cluster
        app = build_app(project, bundle=_startup_bundle(project, fixed), follow=fixed is None)
        tune_server_process()  # the replica's process is the server's
        return app

    env = {k: v for k in (ADMIN_TOKEN_ENV,) if (v := os.environ.get(k))}
    # The replicas of one machine share their metrics as local workers do: /metrics, whichever
    # replica answers, adds up all of that machine's replicas.
    with tempfile.TemporaryDirectory(prefix="keel-metrics-") as metrics_dir, connected(engine):
        env[MULTIPROCESS_ENV] = metrics_dir
        serve_replicas(
            project.name,
            build,
            host,
            port,
            replicas,
            lambda url: on_ready(url, bundle) if on_ready else None,
            env,
        )


def _supervise(workers: int, env: dict[str, str]) -> None:
    """Run ``workers`` worker processes until SIGINT/SIGTERM; restart any that dies meanwhile."""
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-c", "from keel.api.serving import worker_main; worker_main()"]
    stopping = threading.Event()

    def start() -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl-C in the terminal reaches only this supervisor, which then
        # sends each worker one SIGTERM (a second signal would make uvicorn skip its shutdown).
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[subprocess.Popen[bytes] | None] = [start() for _ in range(workers)]
    crashes: list[float] = []  # when workers died, for the give-up rule
    restart_at = [0.0] * workers
    try:
        while not stopping.wait(0.5):
            now = time.monotonic()
            for i, child in enumerate(children):
                if child is not None and child.poll() is not None:
                    crashes = [t for t in crashes if now - t < CRASH_WINDOW_SECONDS] + [now]
                    if len(crashes) > MAX_CRASHES:
                        raise ServeError(
                            f"{len(crashes)} server workers died within {CRASH_WINDOW_SECONDS:g} s (the last with "
                            f"exit code {child.returncode}); giving up instead of restarting them forever.",
                            hint="Read the workers' errors above; `keel serve` (one worker) shows them in full.",
                        )
                    delay = min(RESTART_MAX_SECONDS, 2.0 ** (len(crashes) - 1))
                    logger.error(
                        "worker %d exited with %s; starting another in %.0f s", child.pid, child.returncode, delay
                    )
                    children[i], restart_at[i] = None, now + delay
                if children[i] is None and now >= restart_at[i]:
                    children[i] = start()
    finally:
        running = [child for child in children if child is not None]
        for child in running:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # graceful: each flushes its prediction log
        for child in running:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def worker_main() -> None:
    """One ``keel serve --workers N`` process: its own SO_REUSEPORT socket, the same app."""
    import socket

    import uvicorn

    spec = json.loads(os.environ[WORKER_ENV])
    project = load_project(spec["project"])
    bundle_dir = spec["bundle"]
    from keel.serving.app import tune_server_process

    app = build_app(project, bundle=_startup_bundle(project, bundle_dir), follow=bundle_dir is None)
    tune_server_process()
    family = socket.AF_INET6 if ":" in spec["host"] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the kernel balances connections
    sock.bind((spec["host"], spec["port"]))
    sock.listen(2048)
    from keel.serving.protocol import server_options

    options = server_options(project.config.serving)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **options))
    server.run(sockets=[sock])


def _startup_bundle(project: Project, bundle_dir: Path | str | None) -> Bundle:
    if bundle_dir is None:
        return load_alias(Store(project.store_path), project.name)
    path = Path(bundle_dir)
    if not (path / "manifest.json").is_file():
        raise ConfigError(
            f"{path} is not a keel bundle (no manifest.json).",
            hint="Pass the directory `keel export` wrote (.keel/bundles/NAME/VERSION).",
        )
    return load_bundle(path)


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
    engine: Engine | None = None,
    log: bool = True,
) -> BatchResult:
    """Score a CSV or Parquet file in chunks with the champion; write Parquet or CSV.

    ``log``: every scored row also goes to the prediction log (route ``batch``, with
    ``serving.id_column`` as its id where the file has it), so ``keel monitor`` watches batch
    scoring as it watches the server; the log is written only once the output is complete.

    On the Ray engine: ``source`` is a Parquet file, directory or glob, scored over its blocks
    by Ray Data, and ``output`` a directory of Parquet files (keel.engines.ray_serving)."""
    if engine is not None and engine.name == "ray":
        result = _predict_on_ray(project, str(source), output, alias, engine)
        if log:
            _log_scored_files(project, result.output, alias)
        return result
    source = Path(source)
    target = Path(output) if output else source.with_name(f"{source.stem}.predictions.parquet")
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(f"cannot write predictions to '{target.name}'.", hint="Name a .parquet or .csv output file.")
    target = output_path(target, "predictions file")
    predictor = Predictor(load_alias(Store(project.store_path), project.name, alias), threads=2)
    chunks, total = iter_table(source)
    start, done = time.perf_counter(), 0
    tmp = target.with_name(f".{target.name}.tmp")
    writer = _Writer(tmp)
    entries = _BatchLog(project, predictor) if log else None
    try:
        for frame in chunks:
            scored, arrays, outputs = score_chunk(predictor, frame, done)
            writer.write(scored)
            if entries is not None:
                entries.add(frame, arrays, outputs)
            done += len(frame)
            if on_progress:
                on_progress(done, total)
        writer.close()
        os.replace(tmp, target)
        if entries is not None:
            entries.commit()
    finally:
        tmp.unlink(missing_ok=True)
        if entries is not None:
            entries.abort()
    bundle = predictor.bundle
    return BatchResult(source, target, done, bundle.model, bundle.version, time.perf_counter() - start)


class _BatchLog:
    """A batch's rows for the prediction log, committed when the whole output is (a failed batch
    logs nothing: its predictions were never delivered). Each chunk is written as a segment in
    a hidden staging folder at once, so memory stays one chunk whatever the file's size; the
    commit renames the segments into the log."""

    def __init__(self, project: Project, predictor: Predictor) -> None:
        import uuid

        from keel.serving.predlog import PredictionLog

        self.predictor = predictor
        self.id_column = project.config.serving.id_column
        self.request = f"batch-{uuid.uuid4().hex[:12]}"
        self.directory = Store(project.store_path).predictions_dir(predictor.bundle.model)
        self.staging = self.directory / f".{self.request}"
        self.log = PredictionLog(self.staging)

    def add(self, frame: Any, arrays: dict[str, Any], outputs: Any) -> None:
        import numpy as np

        from keel.serving.predlog import log_entry

        ids = None
        if self.id_column and self.id_column in frame.columns:
            ids = np.array([None if v is None or v != v else str(v) for v in frame[self.id_column]], dtype=object)
        columns, tags = log_entry(self.predictor, arrays, outputs, self.request, "batch", ids)
        self.staging.mkdir(parents=True, exist_ok=True)
        self.log.append(columns, tags)
        self.log.flush()

    def commit(self) -> None:
        for segment in sorted(self.staging.glob("*.parquet")):
            os.replace(segment, self.directory / segment.name)
        self.abort()

    def abort(self) -> None:
        import shutil

        shutil.rmtree(self.staging, ignore_errors=True)


def _log_scored_files(project: Project, output: Path, alias: str) -> None:
    """The prediction log of a batch scored on Ray, from the Parquet files it wrote."""
    import pyarrow.dataset as ds

    from keel.serving.batch import outputs_of_scored

    predictor = Predictor(load_alias(Store(project.store_path), project.name, alias))
    entries = _BatchLog(project, predictor)
    try:
        for batch in ds.dataset(str(output), format="parquet").to_batches():
            frame = batch.to_pandas()
            entries.add(frame, predictor.schema.frame_to_arrays(frame), outputs_of_scored(predictor, frame))
        entries.commit()
    finally:
        entries.abort()


def _predict_on_ray(
    project: Project, source: str, output: Path | str | None, alias: str, engine: Engine
) -> BatchResult:
    from keel.engines.ray import connected
    from keel.engines.ray_serving import predict as score_on_ray

    target = Path(output) if output else _partitioned_output(source)
    if target.suffix.lower() in (".parquet", ".csv") or (target.exists() and not target.is_dir()):
        raise DataError(
            f"on the Ray engine the output is a directory of Parquet files, not '{target.name}'.",
            hint="Name a directory: -o scored/",
        )
    if target.is_dir() and any(target.iterdir()):
        raise DataError(f"{target} is not empty.", hint="Name a new or empty directory: nothing is overwritten.")
    bundle = load_alias(Store(project.store_path), project.name, alias)  # verified here before any worker
    start = time.perf_counter()
    with connected(engine) as ray:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrency = max(1, cpus - 1)  # one CPU stays free for Ray Data's read and write tasks
        rows = score_on_ray(source, target, bundle.path, bundle.digest, concurrency)
    return BatchResult(Path(source), target, rows, bundle.model, bundle.version, time.perf_counter() - start)


def _partitioned_output(source: str) -> Path:
    """data.parquet -> data.predictions/, events/ -> events.predictions/, dir/*.parquet -> dir/predictions/."""
    if any(ch in source for ch in "*?["):
        return Path(source).parent / "predictions"
    path = Path(source.rstrip("/"))
    return path.with_name(f"{path.stem}.predictions")


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
