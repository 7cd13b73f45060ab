"""Batch scoring on Ray Data and serving replicas on Ray Serve (see keel.engines.ray).
Nothing here imports training code: ``keel serve`` and ``keel predict`` stay light."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Scorer:
    """One Ray Data worker: the verified bundle in an ONNX Runtime session, reused per block."""

    def __init__(self, bundle_dir: str, digest: str) -> None:
        from keel.exporting.bundle import load_bundle
        from keel.serving.predictor import Predictor

        self.predictor = Predictor(load_bundle(Path(bundle_dir), digest), threads=1)

    def __call__(self, frame: Any) -> Any:
        from keel.serving.batch import score_frame

        return score_frame(self.predictor, frame, 0)


def predict(source: str, output: Path, bundle_dir: Path, digest: str, concurrency: int) -> int:
    """Score ``source`` (a Parquet file, directory or glob) into the Parquet directory
    ``output`` with ``concurrency`` scoring actors of one CPU each; returns the number of rows.

    Leave the cluster at least one CPU besides the actors: Ray Data's file listing, read and
    write tasks need one, and with every CPU held by an actor the job waits forever."""
    import glob

    import pyarrow.parquet as pq
    import ray.data

    if any(ch in source for ch in "*?["):
        paths = sorted(glob.glob(source))
    elif Path(source).is_dir():  # sorted here: a directory lists in no particular order
        paths = sorted(str(p) for p in Path(source).rglob("*.parquet"))
    else:
        paths = [source]
    if not paths or not all(Path(p).exists() for p in paths):
        from keel.errors import DataError

        raise DataError(f"no Parquet data at {source}.", hint="Give a Parquet file, a directory of them, or a glob.")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True  # output rows in input order, as locally
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    dataset = ray.data.read_parquet(paths)
    scored = dataset.map_batches(
        _Scorer,
        fn_constructor_args=(str(bundle_dir), digest),
        batch_format="pandas",
        batch_size=65_536,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )
    output.mkdir(parents=True, exist_ok=True)
    scored.write_datasink(_ordered_parquet(str(output)))
    return sum(int(pq.read_metadata(f).num_rows) for f in sorted(output.glob("part-*.parquet")))


def _ordered_parquet(folder: str) -> Any:
    """A Ray Data sink writing each write task's blocks, in order, to ``part-NNNNNN.parquet``
    (one row group per block). Ray's own ``write_parquet`` goes through Arrow's threaded
    dataset writer, which reorders rows within a file: measured here, 3,000,000 rows came
    back out of order."""
    from ray.data import Datasink

    class OrderedParquet(Datasink):
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def write(self, blocks: Any, ctx: Any) -> None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            path = Path(self.folder) / f"part-{ctx.task_idx:06d}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            writer = None
            try:
                for block in blocks:
                    table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if writer is not None:
                tmp.replace(path)  # a killed task leaves a .tmp file, never a partial part

    return OrderedParquet(folder)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops Ray Serve as Ctrl-C does


# -- serving replicas on Ray Serve -------------------------------------------------------


def serve(
    name: str,
    build_app: Callable[[], Any],
    host: str,
    port: int,
    replicas: int,
    on_ready: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> None:
    """Run ``replicas`` copies of the app ``build_app`` makes (called on each replica) on Ray
    Serve, behind Ray's HTTP proxy at host:port, until interrupted; ``env`` (the admin token)
    is set on every replica, wherever in the cluster it runs."""
    from ray import serve as ray_serve

    options: dict[str, Any] = {"num_cpus": 1}
    if env:
        options["runtime_env"] = {"env_vars": env}
    deployment: Any = ray_serve.deployment(
        ray_serve.ingress(build_app)(), name="keel", num_replicas=replicas, ray_actor_options=options
    )
    ray_serve.start(http_options={"host": host, "port": port})
    ray_serve.run(deployment.bind(), name=name, route_prefix="/")
    signal.signal(signal.SIGTERM, _interrupt)  # after ray.init, which installs its own handler
    on_ready(f"http://{host}:{port}")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.shutdown()
