"""Export of the transformer text families: one ONNX graph (encoder with merged adapters,
pooling, head, softmax) fed by the model's own tokenizer.json, parity in logits against
PyTorch, and optional INT8 dynamic quantization within an accuracy budget.

The graph takes ``input_ids`` and ``attention_mask`` [N, tokens] and returns ``label`` [N],
``probabilities`` [N, classes] and ``logits`` [N, classes]: the first two as every other
classifier bundle, so the Predictor, the gate and the monitor read them unchanged.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ExportError
from keel.exporting.feed import Feeder
from keel.exporting.parity import Parity
from keel.exporting.runtime import make_session
from keel.schema import InputSchema, arrays_to_frame

OPSET = 17


def is_transformer(pipeline: Any) -> bool:
    """Whether a fitted pipeline reads its text through a transformer encoder."""
    steps = getattr(pipeline, "steps", None) or []
    return any(type(step).__module__.startswith("keel.textmodels.") for _, step in steps)


@dataclass(frozen=True)
class TransformerGraph:
    model: bytes
    tokens: dict[str, Any]  # {"column", "max_length"}: bundle metadata, read by the Feeder
    tokenizer: str  # tokenizer.json
    network: Any  # the PyTorch module the graph was exported from (EncoderHead): parity's reference
    encoder: str  # the encoder's id (the monitor embeds texts with it)


def convert_transformer(pipeline: Any, schema: InputSchema) -> TransformerGraph:
    """The whole pipeline as one graph; LoRA adapters are merged into the encoder first."""
    import torch

    from keel.textmodels.nets import Served

    if not schema.columns or len(schema.columns) != 1:
        raise ExportError("a transformer pipeline reads exactly one text column.")
    features, head = pipeline.steps[0][1], pipeline.steps[-1][1]
    network, tokenizer, max_length, encoder = _network(features, head)
    served = Served(network).eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    buffer = io.BytesIO()
    batch = {0: "batch"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # the tracer's notes on shape checks it folds: parity below proves the graph
            torch.onnx.export(
                served,
                (ids, mask),
                buffer,  # type: ignore[arg-type]  # a file object works; torch's annotation names paths only
                input_names=["input_ids", "attention_mask"],
                output_names=["label", "probabilities", "logits"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "label": batch,
                    "probabilities": batch,
                    "logits": batch,
                },
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"cannot export the text model to ONNX: {str(exc).splitlines()[0]}") from exc
    tokens = {"column": schema.columns[0].name, "max_length": int(max_length)}
    return TransformerGraph(buffer.getvalue(), tokens, tokenizer, network, encoder)


def _network(features: Any, head: Any) -> tuple[Any, str, int, str]:
    """(EncoderHead, tokenizer.json, max length, encoder id) of an embeddings or fine-tuned pipeline."""
    import torch

    from keel.textmodels.estimators import EncoderClassifier, TextEncoder
    from keel.textmodels.models import load_encoder
    from keel.textmodels.nets import EncoderHead, merged

    if isinstance(head, EncoderClassifier):
        return merged(head.network()), head.tokenizer_, head.max_length, head.model
    if not isinstance(features, TextEncoder) or not hasattr(head, "coef_"):
        raise ExportError(f"no ONNX export for a text pipeline ending in {type(head).__name__}.")
    _, encoder = load_encoder(str(features._directory()))
    coef = np.asarray(head.coef_, dtype=np.float32)
    intercept = np.asarray(head.intercept_, dtype=np.float32)
    if coef.shape[0] == 1:  # binary logistic regression: P(1) = sigmoid(z) = softmax([0, z])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros(1, dtype=np.float32), intercept])
    network = EncoderHead(encoder, coef.shape[0], normalize=True)
    with torch.no_grad():
        network.head.weight.copy_(torch.from_numpy(coef))
        network.head.bias.copy_(torch.from_numpy(intercept))
    return network.eval(), features.tokenizer_, features.max_length, features.model


def logit_parity(
    graph: TransformerGraph, pipeline: Any, schema: InputSchema, arrays: dict[str, np.ndarray], tolerance: float
) -> Parity:
    """max |PyTorch - ONNX| logit on held-out texts (enforced), and how often the graph's label
    agrees with the fitted pipeline's (recorded)."""
    from keel.textmodels.nets import logits_of

    feeder = Feeder(schema, graph.tokens, graph.tokenizer)
    outputs = feeder.run(make_session(graph.model), arrays)
    texts = list(arrays[graph.tokens["column"]])
    reference = logits_of(graph.network, graph.tokenizer, texts, graph.tokens["max_length"])
    diff = float(np.max(np.abs(reference - outputs[2]))) if len(texts) else 0.0
    native = np.asarray(pipeline.predict_proba(arrays_to_frame(schema, arrays)))
    agreement = float(np.mean(native.argmax(axis=1) == outputs[0].ravel())) if len(texts) else 1.0
    return Parity(len(texts), "logits", diff, tolerance, agreement, diff <= tolerance)


def quantize(
    graph: TransformerGraph, schema: InputSchema, arrays: dict[str, np.ndarray], y: np.ndarray, budget: float
) -> tuple[bytes | None, dict[str, Any]]:
    """INT8 dynamic quantization of the graph's weights, kept (first element) only if held-out
    accuracy drops by less than ``budget`` (a fraction: 0.01 is one point)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph.model)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # ORT's advice to pre-process first: not an error
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
        int8 = target.read_bytes()
    feeder = Feeder(schema, graph.tokens, graph.tokenizer)
    fp32_out = feeder.run(make_session(graph.model), arrays)
    int8_out = feeder.run(make_session(int8), arrays)
    fp32_accuracy = float(np.mean(fp32_out[0].ravel() == y))
    int8_accuracy = float(np.mean(int8_out[0].ravel() == y))
    drop = fp32_accuracy - int8_accuracy
    accepted = drop < budget or drop <= 0
    record = {
        "method": "dynamic int8 (onnxruntime.quantization, QInt8 weights)",
        "rows": len(y),
        "fp32_accuracy": fp32_accuracy,
        "int8_accuracy": int8_accuracy,
        "accuracy_drop": drop,
        "budget": budget,
        "accepted": accepted,
        "int8_max_logit_diff": float(np.max(np.abs(fp32_out[2] - int8_out[2]))) if len(y) else 0.0,
        "fp32_bytes": len(graph.model),
        "int8_bytes": len(int8),
    }
    return (int8 if accepted else None), record
