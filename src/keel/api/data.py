"""``analyze``, ``validate``: triage a data file into a snapshot; check new data against a contract."""

from __future__ import annotations

from pathlib import Path

from keel.data.contract import Contract, ValidationReport, validate_frame
from keel.data.load import load_table
from keel.data.snapshot import DatasetVersion, load_snapshot, snapshot
from keel.data.triage import TriageOptions
from keel.store import Store


def analyze(
    data: Path | str,
    *,
    store: Path | str = ".keel",
    options: TriageOptions = TriageOptions(),
    test: Path | str | None = None,
) -> DatasetVersion:
    """Snapshot ``data`` into ``store`` and triage it (reused for the same bytes and options).

    >>> version = analyze("adult.parquet", options=TriageOptions(target="income"))  # doctest: +SKIP
    >>> [f.id for f in version.triage.findings if f.severity == "block"]  # doctest: +SKIP
    []
    """
    return snapshot(Path(data), Store(Path(store)).ensure(), options, test)


def validate(data: Path | str, *, store: Path | str, against: str, model: str | None = None) -> ValidationReport:
    """Check ``data`` against a contract: ``against`` is a snapshot hash (or prefix), or an alias
    such as ``champion`` of ``model``, whose bundle schema is the contract its server enforces."""
    frame = load_table(data)
    root = Store(Path(store))
    if model is not None and not _looks_like_digest(against):
        from keel.api.serving import load_alias

        bundle = load_alias(root, model, against)
        return validate_frame(frame, Contract(bundle.schema), f"{bundle.model}@{bundle.version} ({against})")
    version = load_snapshot(root, against)
    return validate_frame(frame, version.contract, f"snapshot {version.short}")


def _looks_like_digest(text: str) -> bool:
    return len(text) >= 6 and all(c in "0123456789abcdef" for c in text.lower())


def snapshots(store: Path | str) -> list[DatasetVersion]:
    """The store's data snapshots, newest first."""
    from keel.data.snapshot import list_snapshots

    return list_snapshots(Store(Path(store)))


def show_snapshot(store: Path | str, digest: str) -> DatasetVersion:
    """One snapshot by its hash or a unique prefix."""
    return load_snapshot(Store(Path(store)), digest)


def write_report(version: DatasetVersion, title: str) -> Path:
    """The snapshot's triage as an HTML page in its folder (rewritten atomically)."""
    from keel.data.report import render_html
    from keel.store import atomic_write_bytes

    page = render_html(version.triage, title=title, digest=version.digest)
    return atomic_write_bytes(version.folder / "report.html", page.encode("utf-8"))


def copy_report(report: Path, target: Path | str) -> Path:
    """A copy of a report where the user asked (never over a directory or a non-report file)."""
    import shutil

    from keel.store import output_path

    destination = output_path(Path(target), "HTML report")
    shutil.copyfile(report, destination)
    return destination
