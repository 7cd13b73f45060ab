"""``import keel`` is cheap and its public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

import keel

HEAVY = ("sklearn", "mlflow", "lightgbm", "optuna", "onnxruntime", "pandas", "skl2onnx", "fastapi")


def test_import_keel_loads_no_heavy_library() -> None:
    code = f"import sys, keel; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_pinned() -> None:
    assert keel.__all__ == [
        "__version__",
        "TrainOptions",
        "analyze",
        "build_app",
        "evaluate",
        "export",
        "history",
        "load_project",
        "monitor",
        "predict_file",
        "promote",
        "rollback",
        "run",
        "serve",
        "train",
    ]
    for name in keel.__all__:
        assert getattr(keel, name) is not None
