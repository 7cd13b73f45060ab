"""Content-addressed data snapshots: the exact bytes a run learned from.

A snapshot directory is named by the SHA-256 of the source file and holds a copy of
those bytes, the triage report, the data contract (column types, ranges, categories,
nullability) and a small metadata file. Analysing the same bytes with the same options
reuses it; new options re-run triage on the stored copy.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.data.contract import Contract, build_contract
from keel.data.load import load_frame, load_table
from keel.data.triage import TRIAGE_VERSION, TriageOptions, TriageReport, triage
from keel.errors import DataError, closest
from keel.store import Store, atomic_write_json, publish_dir, read_json, sha256_file, staging_dir


@dataclass(frozen=True)
class DatasetVersion:
    """One snapshot: its hash, where its bytes live in the store, its triage and contract."""

    digest: str
    source: str
    file: Path
    rows: int
    columns: int
    created_at: str
    triage: TriageReport
    contract: Contract
    test_digest: str | None = None

    @property
    def short(self) -> str:
        return self.digest[:12]

    @property
    def folder(self) -> Path:
        return self.file.parent

    def load(self) -> Any:
        return load_table(self.file)


def snapshot(
    path: Path | str, store: Store, options: TriageOptions = TriageOptions(), test: Path | str | None = None
) -> DatasetVersion:
    """Snapshot ``path`` into ``store`` and triage it (reused for the same bytes and options)."""
    source = Path(path)
    if not source.is_file():
        load_table(source)  # raises the clear error for a missing or odd path
    digest = sha256_file(source)
    test_digest = sha256_file(Path(test)) if test is not None and Path(test).is_file() else None
    folder = store.snapshot_dir(digest)
    if (folder / "meta.json").is_file():
        version = _read(folder)
        current = version.triage.version == TRIAGE_VERSION
        if current and version.triage.options == options and version.test_digest == test_digest:
            return version
        return _retriage(folder, load_frame(version.file), options, test, test_digest)
    frame = load_frame(source)
    report = triage(frame, options, load_frame(test) if test is not None else None)
    return _write(folder, source, digest, frame.shape, report, test_digest)


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
        raise DataError(
            f"{what} data snapshot matches '{digest}' in {store.root}.", hint="`keel data list` shows the snapshots."
        )
    return _read(matches[0])


def list_snapshots(store: Store) -> list[DatasetVersion]:
    """Every snapshot in the store, newest first."""
    folders = [p for p in (store.root / "data").glob("*") if (p / "meta.json").is_file()]
    return sorted((_read(p) for p in folders), key=lambda v: v.created_at, reverse=True)


def _retriage(
    folder: Path, frame: Any, options: TriageOptions, test: Path | str | None, test_digest: str | None
) -> DatasetVersion:
    report = triage(frame, options, load_frame(test) if test is not None else None)
    atomic_write_json(folder / "triage.json", report.to_dict())
    atomic_write_json(folder / "contract.json", build_contract(report).to_dict())
    meta = read_json(folder / "meta.json") | {"test_digest": test_digest}
    atomic_write_json(folder / "meta.json", meta)
    return _read(folder)


def _write(
    folder: Path, source: Path, digest: str, shape: tuple[int, int], report: TriageReport, test_digest: str | None
) -> DatasetVersion:
    staged = staging_dir(folder)
    try:
        shutil.copyfile(source, staged / f"data{source.suffix.lower()}")
        (staged / f"data{source.suffix.lower()}").chmod(0o444)
        meta = {
            "digest": digest,
            "source": str(source.resolve()),
            "file": f"data{source.suffix.lower()}",
            "rows": int(shape[0]),
            "columns": int(shape[1]),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "test_digest": test_digest,
        }
        contract = build_contract(report)
        atomic_write_json(staged / "triage.json", report.to_dict())
        atomic_write_json(staged / "contract.json", contract.to_dict())
        atomic_write_json(staged / "meta.json", meta)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return _read(publish_dir(staged, folder))


def _read(folder: Path) -> DatasetVersion:
    meta = read_json(folder / "meta.json")
    return DatasetVersion(
        digest=meta["digest"],
        source=meta["source"],
        file=folder / meta["file"],
        rows=int(meta["rows"]),
        columns=int(meta["columns"]),
        created_at=meta["created_at"],
        triage=TriageReport.from_dict(read_json(folder / "triage.json")),
        contract=Contract.from_dict(read_json(folder / "contract.json")),
        test_digest=meta.get("test_digest"),
    )
