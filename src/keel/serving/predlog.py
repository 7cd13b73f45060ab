"""The prediction log: append-only Parquet segments, written in the background.

Requests copy their rows into preallocated column arrays (one block per column
layout, grown by doubling; a few microseconds per request under a lock); a
thread swaps the blocks out and writes them as one Parquet segment every
``flush_seconds``, through a temporary file and a rename, so a reader never sees
half a segment and a killed server loses at most the last interval. ``close``
flushes what is left.

The writer shares the interpreter with the event loop, so it must do almost no
Python work per request: an earlier design kept each request's arrays and
concatenated them at flush time, and that loop (about 10 microseconds a request,
holding the GIL) raised single-row p99 from 0.3 ms to 9 ms at concurrency 1.
Now a flush slices whole columns, hands them to Arrow without copies and
encodes Parquet without the GIL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keel.schema import LOG_ID, LOG_LABEL, LOG_MODEL, LOG_REQUEST, LOG_ROUTE, LOG_SCORE, LOG_TIME, LOG_VERSION

if TYPE_CHECKING:
    from keel.serving.predictor import Predictions, Predictor

INITIAL_ROWS = 1024
MAX_PENDING_ROWS = 1_000_000  # rows kept for retry while writes fail; beyond, the oldest are dropped
MAX_BACKOFF = 30.0  # seconds between retries at most
logger = logging.getLogger("keel.serving.predlog")
FLUSH_SWITCH_SECONDS = 0.00005


class _Block:
    """The rows of one column layout since the last flush, in preallocated arrays."""

    def __init__(self, columns: Mapping[str, np.ndarray], tags: Mapping[str, str], capacity: int) -> None:
        self.size = 0
        self.stamps = np.empty(capacity, np.int64)
        self.columns = {name: np.empty(capacity, values.dtype) for name, values in columns.items()}
        self.tags = {name: np.empty(capacity, object) for name in tags}

    @property
    def capacity(self) -> int:
        return len(self.stamps)

    def add(self, columns: Mapping[str, np.ndarray], tags: Mapping[str, str], stamp: int) -> None:
        n = len(next(iter(columns.values())))
        start, end = self.size, self.size + n
        if end > self.capacity:
            self._grow(max(2 * self.capacity, end))
        self.stamps[start:end] = stamp
        for name, values in columns.items():
            self.columns[name][start:end] = values
        for name, value in tags.items():
            self.tags[name][start:end] = value
        self.size = end

    def _grow(self, capacity: int) -> None:
        def grown(old: np.ndarray) -> np.ndarray:
            new = np.empty(capacity, old.dtype)
            new[: self.size] = old[: self.size]
            return new

        self.stamps = grown(self.stamps)
        self.columns = {name: grown(values) for name, values in self.columns.items()}
        self.tags = {name: grown(values) for name, values in self.tags.items()}

    def table(self) -> object:
        import pyarrow as pa

        n = self.size
        arrays: dict[str, object] = {LOG_TIME: pa.array(self.stamps[:n], type=pa.timestamp("us"))}
        arrays |= {name: pa.array(values[:n], type=pa.string()) for name, values in self.tags.items()}
        arrays |= {name: _arrow(values[:n]) for name, values in self.columns.items()}
        return pa.table(arrays)


class PredictionLog:
    """The log of one server (or one batch).

    **Write errors** (a full disk, a read-only mount) do not stop it: rows of a failed flush
    stay pending and are retried, with the retry interval doubling up to ``MAX_BACKOFF``
    seconds, and the log resumes by itself when writes succeed again. Memory stays bounded:
    beyond ``max_pending_rows`` rows waiting, the **oldest** pending rows are dropped (newer
    rows are more use to the monitor) and counted. ``status()`` says whether it is healthy
    (the server's /health turns "degraded"), and ``on_error`` / ``on_drop`` feed the
    server's ``keel_predlog_errors_total`` and ``keel_predlog_dropped_rows_total``.
    """

    def __init__(self, directory: Path, flush_seconds: float = 1.0, max_pending_rows: int = MAX_PENDING_ROWS) -> None:
        self.directory = directory
        self.flush_seconds = flush_seconds
        self.max_pending_rows = max_pending_rows
        self.on_error: Callable[[], None] | None = None
        self.on_drop: Callable[[int], None] | None = None
        self.errors = 0
        self.dropped_rows = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._pending: list[_Block] = []
        self._blocks: dict[tuple[tuple[str, ...], tuple[str, ...]], _Block] = {}
        self._capacity: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: threading.Thread | None = None

    def start(self) -> PredictionLog:
        _warm_up()  # now, not at the first flush: that must take milliseconds, not seconds
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="keel-prediction-log", daemon=True)
        self._thread.start()
        return self

    def append(self, columns: Mapping[str, np.ndarray], tags: Mapping[str, str] | None = None) -> None:
        """Log one batch of rows: equal-length arrays, one per column, and ``tags`` (column ->
        one string for every row of the batch: model, version, request id). Stamped now."""
        tags = tags or {}
        key = (tuple(columns), tuple(tags))
        stamp = time.time_ns() // 1000
        with self._lock:
            block = self._blocks.get(key)
            if block is None:
                block = self._blocks[key] = _Block(columns, tags, self._capacity.get(key, INITIAL_ROWS))
            block.add(columns, tags, stamp)

    def status(self) -> dict[str, object]:
        """Whether the last flush succeeded, and the error and drop counts."""
        return {
            "ok": self.failing_since is None,
            "errors": self.errors,
            "dropped_rows": self.dropped_rows,
            "pending_rows": sum(b.size for b in self._pending),
            "last_error": self.last_error,
            "failing_for_seconds": None if self.failing_since is None else time.monotonic() - self.failing_since,
        }

    def flush(self) -> list[Path]:
        """Write everything logged so far; returns the segments written. A failed write raises
        OSError, and its rows and every later one stay pending for the next flush."""
        with self._lock:
            blocks, self._blocks = self._blocks, {}
            for key, block in blocks.items():  # the next interval starts at this one's size
                self._capacity[key] = block.capacity
        with self._write_lock:
            queue = [*self._pending, *(b for b in blocks.values() if b.size)]
            self._pending = []
            written: list[Path] = []
            with _short_switches():
                for i, block in enumerate(queue):
                    try:
                        written.append(self._write(block))
                    except OSError as exc:
                        self._pending = queue[i:]
                        self._failed(exc)
                        raise
            if self.failing_since is not None:
                logger.warning("prediction log: writing again after %d error(s)", self.errors)
            self.failing_since, self.last_error = None, None
            return written

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            logger.error("prediction log: cannot write to %s (%s); rows are kept and retried", self.directory, exc)
        if self.on_error is not None:
            self.on_error()
        dropped = 0
        while self._pending and sum(b.size for b in self._pending) > self.max_pending_rows:
            dropped += self._pending.pop(0).size  # the oldest first
        if dropped:
            self.dropped_rows += dropped
            logger.error(
                "prediction log: dropped the %d oldest unwritten rows (over %d pending)", dropped, self.max_pending_rows
            )
            if self.on_drop is not None:
                self.on_drop(dropped)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except OSError:
            lost = sum(b.size for b in self._pending)
            logger.error("prediction log: %d rows could not be written before shutdown (%s)", lost, self.last_error)

    def _run(self) -> None:
        delay = self.flush_seconds
        while not self._stop.wait(delay):
            try:
                self.flush()
                delay = self.flush_seconds
            except OSError:
                delay = min(MAX_BACKOFF, max(2 * delay, self.flush_seconds))

    def _write(self, block: _Block) -> Path:
        import pyarrow.parquet as pq

        self._sequence += 1
        final = self.directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self._sequence:06d}.parquet"
        tmp = final.with_name(f".{final.name}.tmp")
        try:
            pq.write_table(block.table(), tmp)
            os.replace(tmp, final)
        except OSError:
            with suppress(OSError):  # a half-written segment would hold the space it lacked
                tmp.unlink(missing_ok=True)
            raise
        return final


@contextmanager
def _short_switches() -> Iterator[None]:
    """While the writer works, the event loop waits for the GIL at each hand-off: make those
    waits short for the few milliseconds of a flush, and leave the usual interval for the rest
    of the time. With _warm_up: single-row p99 at concurrency 1 went from 0.65 to 0.25 ms
    (bench/serve.py), as without a log."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, FLUSH_SWITCH_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _warm_up() -> None:
    """Import pyarrow and run each conversion once: the first timestamp array alone took
    135 ms, holding the GIL, which the first flush under load would otherwise pay."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    # The system allocator gives freed memory back; Arrow's default jemalloc pool kept ~15 MB
    # more resident after the first minutes under load (bench/serve.py --soak).
    pa.set_memory_pool(pa.system_memory_pool())
    block = _Block({"x": np.zeros(1, np.float32), "c": np.array(["a"], dtype=object)}, {"t": "v"}, 1)
    block.add({"x": np.zeros(1, np.float32), "c": np.array(["a"], dtype=object)}, {"t": "v"}, 0)
    pq.write_table(block.table(), io.BytesIO())


def _arrow(values: np.ndarray) -> object:
    import pyarrow as pa

    if values.dtype == object:
        return pa.array(values, type=pa.string())
    return pa.array(values)


def log_entry(
    predictor: Predictor,
    arrays: dict[str, np.ndarray],
    outputs: Predictions,
    request_id: str,
    route: str,
    ids: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A request's prediction-log rows: outputs and inputs per row (and the rows' ids, when the
    server logs them), and its tags (one value per request)."""
    bundle = predictor.bundle
    tags = {LOG_MODEL: bundle.model, LOG_VERSION: bundle.version, LOG_REQUEST: request_id, LOG_ROUTE: route}
    columns = (
        {LOG_SCORE: outputs.score} if outputs.labels is None else {LOG_SCORE: outputs.score, LOG_LABEL: outputs.labels}
    )
    if ids is not None:
        columns[LOG_ID] = ids
    return columns | arrays, tags
