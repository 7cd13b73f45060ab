"""Parity of the ONNX graph with the native pipeline, and its latency."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from keel.exporting.feed import Feeder
from keel.exporting.runtime import make_session
from keel.schema import InputSchema, arrays_to_frame


@dataclass(frozen=True)
class Parity:
    """Native vs ONNX outputs on the same held-out rows.

    ``max_diff`` is absolute for probabilities. For regression values it is
    relative to the largest |prediction| (at least 1): the graph computes in
    float32, whose rounding scales with the output's range, so a row whose
    value is near zero would otherwise show a large relative error.
    """

    rows: int
    output: str
    max_diff: float
    tolerance: float
    label_agreement: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Latency:
    single_row_p50_ms: float
    single_row_p99_ms: float
    batch_rows: int
    batch_rows_per_s: float
    batch32_p50_ms: float | None = None  # one request of 32 rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_parity(
    pipeline: Any,
    model: bytes,
    schema: InputSchema,
    arrays: dict[str, np.ndarray],
    classification: bool,
    tolerance: float,
) -> Parity:
    """Score ``arrays`` with both the pipeline and the ONNX graph and compare."""
    session = make_session(model)
    outputs = session.run(None, schema.onnx_feed(arrays))
    frame = arrays_to_frame(schema, arrays)
    rows = len(frame)
    if classification:
        native = pipeline.predict_proba(frame)
        diff = float(np.max(np.abs(native - outputs[1])))
        agreement = float(np.mean(native.argmax(axis=1) == outputs[0].ravel()))
        return Parity(rows, "probabilities", diff, tolerance, agreement, diff <= tolerance and agreement == 1.0)
    native = np.asarray(pipeline.predict(frame), dtype=np.float64).ravel()
    got = outputs[0].astype(np.float64).ravel()
    diff = float(np.max(np.abs(native - got)) / max(1.0, float(np.max(np.abs(native)))))
    return Parity(rows, "value", diff, tolerance, None, diff <= tolerance)


def measure_latency(
    model: bytes,
    schema: InputSchema,
    arrays: dict[str, np.ndarray],
    repeats: int = 300,
    feeder: Feeder | None = None,
) -> Latency:
    """Single-row p50/p99, the p50 of 32-row requests, and batch throughput of the ONNX graph
    (one thread), each from canonical arrays: a transformer graph's time includes tokenising."""
    session = make_session(model)
    feed = feeder or Feeder(schema)
    rows = len(next(iter(arrays.values())))

    def p50_p99(count: int, times: int) -> tuple[float, float]:
        starts = [(j * count) % max(1, rows - count + 1) for j in range(times)]
        picks = [{k: v[i : i + count] for k, v in arrays.items()} for i in starts]
        session.run(None, feed(picks[0]))
        timings = []
        for pick in picks:
            start = time.perf_counter()
            session.run(None, feed(pick))
            timings.append(time.perf_counter() - start)
        ms = np.array(timings) * 1000
        return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))

    one_p50, one_p99 = p50_p99(1, repeats)
    batch32 = p50_p99(32, max(10, repeats // 10))[0] if rows >= 32 else None
    start = time.perf_counter()
    feed.run(session, arrays)
    batch_seconds = time.perf_counter() - start
    return Latency(one_p50, one_p99, rows, rows / max(batch_seconds, 1e-9), batch32)
