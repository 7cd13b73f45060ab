"""The prediction log: append-only Parquet segments, written in the background.

Requests append column batches to a buffer (cheap, under a lock); a thread
writes the buffer as one Parquet segment every ``flush_seconds``, through a
temporary file and a rename, so a reader never sees half a segment and a
killed server loses at most the last interval. ``close`` flushes what is left.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np


class PredictionLog:
    def __init__(self, directory: Path, flush_seconds: float = 1.0) -> None:
        self.directory = directory
        self.flush_seconds = flush_seconds
        self._buffer: list[Mapping[str, np.ndarray]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: threading.Thread | None = None

    def start(self) -> PredictionLog:
        import pyarrow.parquet  # noqa: F401  # now, not at the first flush: that must take milliseconds, not seconds

        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="keel-prediction-log", daemon=True)
        self._thread.start()
        return self

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        """Queue one batch of rows (equal-length arrays, one per column)."""
        with self._lock:
            self._buffer.append(columns)

    def flush(self) -> list[Path]:
        """Write everything buffered so far; returns the segments written."""
        with self._lock:
            batches, self._buffer = self._buffer, []
        if not batches:
            return []
        with self._write_lock:
            return [self._write(group) for group in _group_by_columns(batches)]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def _write(self, batches: list[Mapping[str, np.ndarray]]) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = list(batches[0])
        table = pa.table({name: _arrow(np.concatenate([b[name] for b in batches])) for name in names})
        self._sequence += 1
        final = self.directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self._sequence:06d}.parquet"
        tmp = final.with_name(f".{final.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        return final


def _group_by_columns(batches: list[Mapping[str, np.ndarray]]) -> list[list[Mapping[str, np.ndarray]]]:
    groups: dict[tuple[str, ...], list[Mapping[str, np.ndarray]]] = {}
    for batch in batches:
        groups.setdefault(tuple(batch), []).append(batch)
    return list(groups.values())


def _arrow(values: np.ndarray) -> object:
    import pyarrow as pa

    if values.dtype == object:
        return pa.array(values, type=pa.string())
    return pa.array(values)
