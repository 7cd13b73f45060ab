"""ONNX Runtime sessions, the way keel runs every exported graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_session(model: bytes | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session; one intra-op thread by default.

    One thread per session keeps several workers from fighting over the cores
    (measured: multi-threaded sessions collapse throughput on 2 cores).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
