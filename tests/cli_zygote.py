"""A warm interpreter that forks one real ``python -m keel`` process per CLI call of the tests.

A fresh ``python -m keel train`` spends about 8 s of CPU importing MLflow, scikit-learn,
skops, LightGBM and the rest before it does any work, and the suite makes about 150 CLI calls.
This process imports all of that once, then, for each request, forks a child that takes the
call's working directory, environment and argument list, points its stdin at /dev/null and
its stdout and stderr at files, and runs ``keel`` exactly as ``python -m keel`` does (runpy),
leaving through the normal interpreter exit (SystemExit, atexit handlers, thread joins). The
child is a separate process with its own exit code; only the imports are shared.

Protocol, one JSON line each way on the zygote's stdin and stdout:
request ``{"args", "cwd", "env", "stdout", "stderr"}``; replies ``{"pid"}`` as soon as the
child exists, then ``{"status"}`` (``os.waitstatus_to_exitcode``: negative for a signal).

tests/conftest.py starts one per test process; ``KEEL_TEST_FRESH_CLI=1`` turns it off.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

PRELOAD = (
    "keel.cli.main",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.linear_model",
    "scipy.stats",
    "lightgbm",
    "xgboost",
    "optuna",
    "skl2onnx",
    "polars",
    "pyarrow.parquet",
    "keel.api.train",
    "keel.api.models",
    "keel.api.monitor",
)


def preload() -> None:
    import importlib

    from keel.tracking.mlflow_tracker import skops_io

    skops_io()  # first, with keel's import guard, as a CLI process imports it
    for name in PRELOAD:
        importlib.import_module(name)
    # ONNX Runtime is not fork-safe once imported: a forked child hung or aborted at exit
    # ("terminate called after throwing an instance of 'std::system_error'"). Each child that
    # needs it imports it itself.
    if "onnxruntime" in sys.modules:
        raise RuntimeError("a preloaded module imported onnxruntime, which cannot be forked")


def serve(requests: int, replies: int) -> dict[str, object] | None:
    """Answer requests until stdin closes (returns None); in a forked child, return its request."""
    incoming = os.fdopen(requests, "r")
    outgoing = os.fdopen(replies, "w")
    for line in incoming:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            incoming.close()
            outgoing.close()
            return request
        outgoing.write(json.dumps({"pid": pid}) + "\n")
        outgoing.flush()
        _, status = os.waitpid(pid, 0)
        outgoing.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        outgoing.flush()
    return None


def become(request: dict[str, object]) -> None:
    """Turn this forked child into ``python -m keel ARGS`` run in the request's directory."""
    null = os.open(os.devnull, os.O_RDONLY)
    stdout = os.open(str(request["stdout"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stderr = os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for source, target in ((null, 0), (stdout, 1), (stderr, 2)):
        os.dup2(source, target)
        os.close(source)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    sys.argv = ["keel", *request["args"]]  # type: ignore[misc]
    runpy.run_module("keel", run_name="__main__", alter_sys=True)


def main() -> None:
    # The protocol moves off fds 0 and 1, which each child takes over for its own stdio.
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # the zygote's own prints (there should be none) go to its stderr
    preload()
    request = serve(requests, replies)
    if request is not None:
        become(request)  # leaves through SystemExit, as python -m keel does


if __name__ == "__main__":
    main()
