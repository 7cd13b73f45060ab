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
