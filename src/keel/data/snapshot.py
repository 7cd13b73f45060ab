"""Content-addressed data snapshots: the exact bytes a run learned from.

A snapshot directory is named by the SHA-256 of the source file and holds a
copy of those bytes, the triage report and a small metadata file. Analysing
the same bytes again reuses it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.data.load import load_table
from keel.data.triage import DROPPED, TriageReport, triage
from keel.errors import DataError, closest
from keel.store import Store, atomic_write_json, publish_dir, read_json, sha256_file, staging_dir


@dataclass(frozen=True)
class DatasetVersion:
    """One snapshot: its hash, where its bytes live in the store, and its triage."""

    digest: str
    source: str
    file: Path
    rows: int
    columns: int
    created_at: str
    triage: TriageReport

    @property
    def short(self) -> str:
        return self.digest[:12]

    def load(self) -> Any:
        return load_table(self.file)


def snapshot(path: Path | str, store: Store, target: str | None = None, drop: tuple[str, ...] = ()) -> DatasetVersion:
    """Snapshot ``path`` into ``store`` (reused when the same bytes were seen before)."""
    source = Path(path)
    if not source.is_file():
        load_table(source)  # raises the clear error for a missing/odd path
    digest = sha256_file(source)
    folder = store.snapshot_dir(digest)
    cached = _reuse(folder, target, drop)
    if cached is not None:
        return cached
    frame = load_table(source)
    check_target(frame, target, source)
    report = triage(frame, target, drop)
    return _write(folder, source, digest, frame.shape, report)


def check_target(frame: Any, target: str | None, source: Path | str) -> None:
    """A DataError naming the nearest column when ``target`` is not in ``frame``."""
    if target is None or target in frame.columns:
        return
    guess = closest(target, [str(c) for c in frame.columns])
    hint = f"Did you mean '{guess}'?" if guess else f"Columns are: {', '.join(map(str, frame.columns))}."
    raise DataError(f"target column '{target}' is not in {source}.", hint=hint)


def load_snapshot(store: Store, digest: str) -> DatasetVersion:
    """A stored snapshot by full hash or unique prefix."""
    matches = sorted(p for p in (store.root / "data").glob(f"{digest}*") if (p / "meta.json").is_file())
    if len(matches) != 1:
        what = "no" if not matches else "more than one"
        raise DataError(f"{what} data snapshot matches '{digest}' in {store.root}.", hint="Run `keel analyze` first.")
    return _read(matches[0])


def _reuse(folder: Path, target: str | None, drop: tuple[str, ...]) -> DatasetVersion | None:
    if not (folder / "meta.json").is_file():
        return None
    version = _read(folder)
    triaged_for = version.triage.target.name if version.triage.target else None
    dropped = {c.name for c in version.triage.columns if c.reason == DROPPED}
    if triaged_for == target and dropped == set(drop):
        return version
    report = triage(version.load(), target, drop)  # same bytes, another question
    atomic_write_json(folder / "triage.json", report.to_dict())
    return _read(folder)


def _write(folder: Path, source: Path, digest: str, shape: tuple[int, int], report: TriageReport) -> DatasetVersion:
    staged = staging_dir(folder)
    try:
        shutil.copyfile(source, staged / f"data{source.suffix.lower()}")
        meta = {
            "digest": digest,
            "source": str(source.resolve()),
            "file": f"data{source.suffix.lower()}",
            "rows": shape[0],
            "columns": shape[1],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_json(staged / "triage.json", report.to_dict())
        atomic_write_json(staged / "meta.json", meta)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return _read(publish_dir(staged, folder))


def _read(folder: Path) -> DatasetVersion:
    meta = read_json(folder / "meta.json")
    report = TriageReport.from_dict(read_json(folder / "triage.json"))
    return DatasetVersion(
        digest=meta["digest"],
        source=meta["source"],
        file=folder / meta["file"],
        rows=int(meta["rows"]),
        columns=int(meta["columns"]),
        created_at=meta["created_at"],
        triage=report,
    )
