"""Parity of the ONNX graph with the native pipeline, and its latency."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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


def measure_latency(model: bytes, schema: InputSchema, arrays: dict[str, np.ndarray], repeats: int = 300) -> Latency:
    """Single-row p50/p99 and batch throughput of the ONNX graph (one thread)."""
    session = make_session(model)
    feed = schema.onnx_feed(arrays)
    one = {k: v[:1] for k, v in feed.items()}
    session.run(None, one)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, one)
        timings.append(time.perf_counter() - start)
    start = time.perf_counter()
    session.run(None, feed)
    batch_seconds = time.perf_counter() - start
    rows = len(next(iter(feed.values())))
    ms = np.array(timings) * 1000
    return Latency(float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), rows, rows / max(batch_seconds, 1e-9))
