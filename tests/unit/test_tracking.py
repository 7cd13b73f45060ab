"""What the tracker writes beside a model, and what it costs to import."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from keel.tracking.manifest import frozen_requirements


def test_frozen_requirements_read_from_the_headers_match_the_parsed_metadata() -> None:
    parsed = {f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]}
    lines = frozen_requirements().splitlines()
    assert set(lines) == parsed and lines == sorted(lines, key=str.lower)
    assert any(line.startswith("scikit-learn==") for line in lines)


SKOPS_PROBE = """
import sys
import sklearn
from keel.tracking.mlflow_tracker import skops_io
sio = skops_io()
print("torch" in sys.modules)
from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES
from skops.io._utils import get_type_name
from sklearn.utils import all_estimators
names = {get_type_name(c) for _, c in all_estimators() if get_type_name(c).startswith("sklearn.")}
print(set(SKLEARN_ESTIMATOR_TYPE_NAMES) == names, "torch" in sys.modules)
"""


def test_skops_is_imported_without_torch_and_trusts_the_same_estimators() -> None:
    """With the text extra, a plain `import skops.io` imports torch (about 2.4 s here) through
    scikit-learn's array-API adapter for it; keel's import skips that adapter only."""
    pytest.importorskip("torch")
    result = subprocess.run([sys.executable, "-c", SKOPS_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # torch stayed out while skops listed the estimators; all_estimators itself imports it later
    assert result.stdout.split() == ["False", "True", "True"]


def _schema(path: Path) -> tuple[set[frozenset[str]], list[tuple[str, ...]]]:
    """Every table and index with its lines as a set: MLflow's migrations list a table's
    constraints in an order that varies from one migration of a new store to the next."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        statements = [row[0] for row in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return {frozenset(line.strip().rstrip(",") for line in sql.splitlines()) for sql in statements}, revision


def test_a_new_store_copied_from_the_template_is_the_store_mlflow_migrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from keel.tracking.mlflow_tracker import MlflowTracker
    from keel.tracking.sqlite_store import prepare_sqlite_store

    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path / "cache"))
    MlflowClient(f"sqlite:///{tmp_path / 'migrated.db'}").search_experiments()  # MLflow's own way
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'copied.db'}", "m", tmp_path / "artifacts")
    assert _schema(tmp_path / "copied.db") == _schema(tmp_path / "migrated.db")
    run = tracker.start_run("train", {"keel.role": "parent"})
    tracker.log_metrics(run, {"auc": 0.9})
    tracker.end_run(run)
    client = MlflowClient(f"sqlite:///{tmp_path / 'copied.db'}")
    assert {e.name for e in client.search_experiments()} == {"Default", "m"}
    assert client.get_run(run).data.metrics == {"auc": 0.9}

    existing = tmp_path / "copied.db"
    before = existing.read_bytes()
    prepare_sqlite_store(f"sqlite:///{existing}")  # a store that exists is never replaced
    assert existing.read_bytes() == before
    prepare_sqlite_store("http://127.0.0.1:5000")  # a server URI is MLflow's business
    assert not (tmp_path / "missing").exists()
    prepare_sqlite_store(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")  # nor does it make folders
    assert not (tmp_path / "missing").exists()


def test_a_damaged_template_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from keel.tracking.sqlite_store import prepare_sqlite_store

    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path / "cache"))
    prepare_sqlite_store(f"sqlite:///{tmp_path / 'first.db'}")
    (template,) = (tmp_path / "cache").iterdir()
    template.write_bytes(b"not a database")
    prepare_sqlite_store(f"sqlite:///{tmp_path / 'second.db'}")
    assert _schema(tmp_path / "second.db") == _schema(tmp_path / "first.db")
    assert [e.name for e in MlflowClient(f"sqlite:///{tmp_path / 'second.db'}").search_experiments()] == ["Default"]
