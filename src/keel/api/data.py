"""``analyze``: triage a data file and store it as a content-addressed snapshot."""

from __future__ import annotations

from pathlib import Path

from keel.data.snapshot import DatasetVersion, snapshot
from keel.store import Store


def analyze(
    data: Path | str, *, target: str | None = None, store: Path | str = ".keel", drop: tuple[str, ...] = ()
) -> DatasetVersion:
    """Snapshot ``data`` into ``store`` and triage it (reused for the same bytes).

    >>> version = analyze("examples/adult/adult_sample.parquet", target="income", store=tmp)  # doctest: +SKIP
    >>> version.triage.target.classes  # doctest: +SKIP
    {'<=50K': 3807, '>50K': 1193}
    """
    return snapshot(Path(data), Store(Path(store)).ensure(), target, drop)
