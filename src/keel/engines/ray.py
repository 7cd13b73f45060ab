"""The Ray engine: search trials on Ray Tune, batch scoring on Ray Data, serving replicas on
Ray Serve, each running the same keel code as the local engine.

- **Search** (``keel.engines.ray_search``): Ray Tune runs the trials; keel's own Optuna study drives them, the
  one the local engine uses (same storage, so resumable; same TPE sampler, search space and
  median pruner). A Tune searcher asks the study for each trial's parameters and tells it
  the result; a Tune scheduler reports each trial's validation loss to the study as the
  rounds go and stops the trial when the study's pruner says so. Trials come back to the
  driver, which tracks them in MLflow exactly as local ones.
- **Batch scoring** (``keel.engines.ray_serving.predict``): Ray Data reads a Parquet file, directory or glob, scores
  its blocks with the champion's ONNX bundle (each worker verifies the bundle's hashes
  before loading it), and writes the scored blocks as a Parquet directory. The scoring
  function is the local engine's.
- **Serving** (``keel.engines.ray_serving.serve``): Ray Serve runs N replicas of the local server's app (built by
  ``keel.api.serving.build_app`` on each replica: the same validation, log and hot swap),
  behind Ray's HTTP proxy on 127.0.0.1 unless told otherwise.

Ray listens on every interface of the machines it runs on; run it where that is acceptable
(the tests run it in a private network namespace).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keel.config import Engine
from keel.errors import ConfigError

INSTALL_HINT = 'Install the extra: pip install "keel[ray]" (Ray 2.60 with Tune, Data and Serve).'


def require_ray() -> Any:
    """The ray module, or one clear line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray, which is not installed.", hint=INSTALL_HINT) from None
    return ray


@contextmanager
def connected(engine: Engine) -> Iterator[Any]:
    """Ray, connected to ``engine.address`` or started here (``engine.num_cpus``), for the
    duration of the block; a Ray instance started here is shut down after it."""
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file under the home directory
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ warnings are not the user's business
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if engine.address:
        options["address"] = engine.address
    else:
        options |= {"num_cpus": engine.num_cpus, "_temp_dir": str(_temp_dir())}
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {engine.address}: {exc}",
            hint="Check the address (ray://HEAD:10001) and that the cluster runs the same Ray and Python versions.",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _temp_dir() -> Path:
    """Ray's session files; Unix socket paths must stay under 108 bytes, so a short path."""
    path = Path("/tmp") / f"keel-ray-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path
