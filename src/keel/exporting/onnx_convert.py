"""Convert a fitted keel pipeline (transforms + model) into one ONNX graph."""

from __future__ import annotations

from typing import Any

from keel.errors import ExportError
from keel.exporting.converters import register_converters
from keel.schema import NUMERIC, InputSchema

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def convert_pipeline(pipeline: Any, schema: InputSchema, classification: bool) -> tuple[bytes, InputSchema]:
    """The ONNX bytes of ``pipeline``, and the schema with each column's graph input name.

    Each column is its own graph input ([N, 1], float32 or string), in schema order.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_converters()
    types = [
        (c.name, FloatTensorType([None, 1]) if c.kind == NUMERIC else StringTensorType([None, 1]))
        for c in schema.columns
    ]
    model = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline  # a Pipeline, or an ensemble of them
    options = {id(model): {"zipmap": False}} if classification else None
    try:
        graph = convert_sklearn(pipeline, initial_types=types, options=options, target_opset=TARGET_OPSET)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot convert the pipeline to ONNX: {first}",
            hint="Only transforms and models with an ONNX converter may be in the serving path.",
        ) from exc
    names = [i.name for i in graph.graph.input]
    return graph.SerializeToString(), schema.with_input_names(names)
