"""keel: from a data set to a guarded production model, and keeping it healthy.

The verbs of the lifecycle, importable without loading any heavy library::

    import keel
    project = keel.load_project("examples/adult")
    keel.train(project)
    keel.export(project)
    keel.promote(project)

Each name resolves on first use (see ``_API``); ``import keel`` itself loads
neither scikit-learn, MLflow nor LightGBM.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from keel._version import __version__

_API = {
    "load_project": "keel.config",
    "analyze": "keel.api.data",
    "train": "keel.api.train",
    "TrainOptions": "keel.api.train",
    "evaluate": "keel.api.evaluate",
    "export": "keel.api.models",
    "promote": "keel.api.models",
    "history": "keel.api.models",
    "rollback": "keel.api.models",
    "serve": "keel.api.serving",
    "build_app": "keel.api.serving",
    "predict_file": "keel.api.serving",
    "monitor": "keel.api.monitor",
    "run": "keel.api.run",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'keel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
