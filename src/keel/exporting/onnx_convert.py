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
    options: dict[int, dict[str, Any]] = {id(model): {"zipmap": False}} if classification else {}
    options |= {id(v): {"locale": "C"} for v in _text_vectorizers(pipeline)}
    try:
        graph = convert_sklearn(pipeline, initial_types=types, options=options or None, target_opset=TARGET_OPSET)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot convert the pipeline to ONNX: {first}",
            hint="Only transforms and models with an ONNX converter may be in the serving path.",
        ) from exc
    names = [i.name for i in graph.graph.input]
    return graph.SerializeToString(), schema.with_input_names(names)


def _text_vectorizers(estimator: Any) -> list[Any]:
    """Every fitted TF-IDF vectoriser inside a pipeline, column transformer or ensemble. Their
    graphs lower-case with ONNX's StringNormalizer, whose default locale (en_US.UTF-8) many
    machines lack (ONNX Runtime then refuses the model); tokens are ASCII
    (keel.schema.TOKEN_PATTERN), so the "C" locale, present everywhere, lower-cases them
    identically."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if isinstance(estimator, TfidfVectorizer):
        return [estimator]
    children: list[Any] = []
    children += [step for _, step in getattr(estimator, "steps", [])]  # Pipeline
    children += [t for _, t, _ in getattr(estimator, "transformers_", [])]  # fitted ColumnTransformer
    children += list(getattr(estimator, "estimators_", None) or [])  # an ensemble's fitted pipelines
    return [v for child in children for v in _text_vectorizers(child)]
