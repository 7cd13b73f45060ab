"""New SQLite tracking stores, copied from a migrated template instead of migrated in place.

MLflow builds a new SQLite store by running every schema migration since its first release:
4.6 s here, against 4 ms to open an existing store, and every new project (and every test
project) paid it on its first command. keel migrates one template per MLflow version, keeps
it in its cache directory, and copies it to a new store's path. MLflow then opens the copy as
an existing store: it checks the schema revision and adds its default experiment, as it
would after migrating.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from keel.config import cache_dir

SQLITE_PREFIX = "sqlite:///"


def prepare_sqlite_store(tracking_uri: str) -> None:
    """Put a migrated, empty store at a ``sqlite:///`` URI's path if nothing is there yet.

    Anything else (a server URI, an existing file, a template that cannot be made) is left to
    MLflow, which creates or opens the store itself as before.
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return
    path = Path(tracking_uri[len(SQLITE_PREFIX) :])
    if path.exists() or not path.parent.is_dir():
        return
    template = _template()
    if template is None:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(template, partial)
        with contextlib.suppress(FileExistsError):  # another process created the store meanwhile: keep theirs
            os.link(partial, path)
    except OSError:
        return  # MLflow creates the store itself
    finally:
        partial.unlink(missing_ok=True)


def _template() -> Path | None:
    """The migrated template for the installed MLflow, made on first use; None if it cannot be."""
    import mlflow

    folder = cache_dir()
    template = folder / f"mlflow-{mlflow.__version__}-sqlite-template.db"
    if _is_template(template):
        return template
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            built = Path(work) / "template.db"
            _migrate(built)
            os.replace(built, template)  # atomic: a reader sees no template or a whole one
    except (OSError, sqlite3.Error):
        return None
    return template if _is_template(template) else None


def _migrate(path: Path) -> None:
    """Let MLflow create and migrate a store at ``path``, then take out the default experiment,
    whose artifact location names the directory it was made in (MLflow adds it back, with the
    right location, when it first opens a copy)."""
    from mlflow import MlflowClient

    MlflowClient(f"{SQLITE_PREFIX}{path}").get_experiment_by_name("Default")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM experiments WHERE experiment_id = 0 AND name = 'Default'")
        if db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]:
            raise sqlite3.DatabaseError("a new MLflow store holds experiments besides Default")


def _is_template(path: Path) -> bool:
    """A readable SQLite file with MLflow's schema revision and no experiments."""
    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
            experiments = db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
    except sqlite3.Error:
        return False
    return len(revision) == 1 and experiments == 0
