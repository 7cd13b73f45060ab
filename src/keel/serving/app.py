"""The HTTP app: validate inputs, run the ONNX graph, answer with the version, log, measure.

Routes:

- ``POST /predict`` with ``{"rows": [{column: value}, ...]}`` (keel's simple JSON);
- the Open Inference Protocol v2 REST API: ``GET /v2/health/live``, ``GET /v2/health/ready``,
  ``GET /v2/models/{name}`` (metadata), ``GET /v2/models/{name}/ready``,
  ``POST /v2/models/{name}/infer`` with one input tensor per column;
- ``GET /health``, ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (bearer token).

Errors are JSON: 400 for a body that is not JSON, 413 for a body or batch over the limits,
422 naming every bad row and column, 401/403 for admin calls without the token.

Hot swap: the app holds one ``Predictor`` reference. A background task polls the store's
serving file (rewritten by every promote and rollback); when the alias points at another
version it loads and verifies that bundle off the event loop, then swaps the reference.
A request reads the reference once, so requests in flight finish on the model they started
with and no request waits for a load.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from keel._version import __version__
from keel.errors import KeelError, SchemaError
from keel.exporting.bundle import Bundle
from keel.schema import (
    LOG_LABEL,
    LOG_MODEL,
    LOG_REQUEST,
    LOG_SCORE,
    LOG_TIME,
    LOG_VERSION,
    NUMERIC,
    InputSchema,
)
from keel.serving.metrics import ServingMetrics
from keel.serving.predictor import Predictions, Predictor
from keel.serving.predlog import PredictionLog

logger = logging.getLogger("keel.serving")


@dataclass
class Source:
    """Where the served bundle comes from: a change stamp of the alias file, and a loader of
    the bundle the alias points at now (verified)."""

    stamp: Callable[[], int]
    load: Callable[[], Bundle]
    poll_seconds: float = 1.0


@dataclass
class ServingState:
    """What the app serves: the current predictor (swapped whole on reload), its log, limits."""

    predictor: Predictor
    log: PredictionLog
    max_batch_rows: int = 10_000
    max_request_bytes: int = 16 * 2**20
    admin_token: str | None = None
    source: Source | None = None
    metrics: ServingMetrics = field(default_factory=ServingMetrics)

    @property
    def model(self) -> str:
        return self.predictor.bundle.model

    @property
    def version(self) -> str:
        return self.predictor.bundle.version


def create_app(state: ServingState) -> FastAPI:
    stamp = {"seen": state.source.stamp() if state.source else 0}
    lock = asyncio.Lock()

    async def reload(force: bool = False) -> dict[str, Any]:
        """Load what the alias points at and swap, if it is another bundle (or ``force``)."""
        if state.source is None:
            return {"reloaded": False, "reason": "this server was started on a fixed bundle"}
        async with lock:
            stamp["seen"] = await asyncio.to_thread(state.source.stamp)
            try:
                bundle = await asyncio.to_thread(state.source.load)
            except KeelError as exc:
                state.metrics.reloads.labels("failed").inc()
                logger.error("reload refused, still serving %s@%s: %s", state.model, state.version, exc)
                return {"reloaded": False, "reason": str(exc), "version": state.version}
            if bundle.digest == state.predictor.bundle.digest and not force:
                return {"reloaded": False, "reason": "already serving it", "version": state.version}
            previous = state.version
            state.predictor = await asyncio.to_thread(Predictor, bundle)
            state.metrics.serving(state.model, state.version)
            state.metrics.reloads.labels("swapped").inc()
            logger.warning("now serving %s@%s (was %s)", state.model, state.version, previous)
            return {"reloaded": True, "version": state.version, "previous": previous}

    async def watch() -> None:
        assert state.source is not None
        while True:
            await asyncio.sleep(state.source.poll_seconds)
            try:
                if await asyncio.to_thread(state.source.stamp) != stamp["seen"]:
                    await reload()
            except Exception:  # a watcher that dies would silently stop hot swaps
                logger.exception("checking the serving alias failed; will retry")

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        state.log.start()
        state.metrics.serving(state.model, state.version)
        watcher = asyncio.create_task(watch()) if state.source else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            state.log.close()

    app = FastAPI(title="keel model server", version=__version__, lifespan=lifespan)

    def reply(payload: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")

    async def read_json(request: Request) -> tuple[Any, Response | None]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > state.max_request_bytes:
            return None, reply({"error": f"request body over {state.max_request_bytes:,} bytes"}, 413)
        body = await request.body()
        if len(body) > state.max_request_bytes:
            return None, reply({"error": f"request body over {state.max_request_bytes:,} bytes"}, 413)
        try:
            return orjson.loads(body), None
        except orjson.JSONDecodeError as exc:
            return None, reply({"error": f"malformed JSON body: {exc}"}, 400)

    def score(
        predictor: Predictor, arrays: dict[str, np.ndarray], endpoint: str, started: float
    ) -> tuple[Predictions, str]:
        outputs = predictor.predict(arrays)
        request_id = uuid.uuid4().hex
        state.log.append(_log_columns(predictor, arrays, outputs, request_id))
        state.metrics.observe(endpoint, predictor.bundle.version, time.perf_counter() - started, outputs.score)
        return outputs, request_id

    def failed(endpoint: str, version: str, status: int, payload: dict[str, Any]) -> Response:
        state.metrics.errors.labels(endpoint, version, str(status)).inc()
        return reply(payload, status)

    @app.get("/health")
    async def health() -> Response:
        return reply({"status": "ok", "model": state.model, "version": state.version})

    @app.post("/predict", openapi_extra=_request_doc(state.predictor.schema))
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        predictor = state.predictor  # one model for the whole request, even across a swap
        version = predictor.bundle.version
        payload, error = await read_json(request)
        if error is not None:
            return failed("predict", version, error.status_code, orjson.loads(error.body))
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            return failed(
                "predict",
                version,
                422,
                {"error": 'the body must be a JSON object {"rows": [{column: value, ...}, ...]}'},
            )
        if len(rows) > state.max_batch_rows:
            return failed(
                "predict",
                version,
                413,
                {"error": f"{len(rows)} rows exceed the limit of {state.max_batch_rows} per request"},
            )
        try:
            arrays = predictor.schema.rows_to_arrays(rows)
        except SchemaError as exc:
            return failed("predict", version, 422, {"error": str(exc), "problems": exc.problems})
        outputs, request_id = score(predictor, arrays, "predict", started)
        return reply(
            {
                "model": predictor.bundle.model,
                "version": version,
                "request_id": request_id,
                "predictions": predictor.to_json(outputs),
            }
        )

    @app.get("/v2/health/live")
    async def live() -> Response:
        return reply({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return reply({"ready": True})

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        if name != state.model:
            return reply({"error": f"unknown model '{name}'; this server serves '{state.model}'"}, 404)
        return reply(_metadata(state.predictor))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        if name != state.model:
            return reply({"error": f"unknown model '{name}'; this server serves '{state.model}'"}, 404)
        return reply({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer", openapi_extra=_infer_doc(state.predictor.schema))
    async def infer(name: str, request: Request) -> Response:
        started = time.perf_counter()
        predictor = state.predictor
        version = predictor.bundle.version
        if name != predictor.bundle.model:
            return failed(
                "infer",
                version,
                404,
                {"error": f"unknown model '{name}'; this server serves '{predictor.bundle.model}'"},
            )
        payload, error = await read_json(request)
        if error is not None:
            return failed("infer", version, error.status_code, orjson.loads(error.body))
        try:
            columns, request_id = _infer_inputs(payload)
            rows = len(next(iter(columns.values()))) if columns else 0
            if rows > state.max_batch_rows:
                return failed(
                    "infer",
                    version,
                    413,
                    {"error": f"{rows} rows exceed the limit of {state.max_batch_rows} per request"},
                )
            arrays = predictor.schema.columns_to_arrays(columns)
        except SchemaError as exc:
            return failed("infer", version, 422, {"error": str(exc), "problems": exc.problems})
        outputs, logged_id = score(predictor, arrays, "infer", started)
        return reply(
            {
                "model_name": predictor.bundle.model,
                "model_version": version,
                "id": request_id or logged_id,
                "parameters": {"request_id": logged_id},
                "outputs": _infer_outputs(predictor, outputs),
            }
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = state.metrics.render()
        return Response(body, 200, media_type=content_type)

    @app.post("/admin/reload")
    async def admin_reload(request: Request) -> Response:
        denied = _check_token(state.admin_token, request.headers.get("authorization", ""))
        if denied is not None:
            return reply({"error": denied[1]}, denied[0])
        return reply(await reload(force=True))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        logger.exception("internal error")
        return reply({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    return app


def _check_token(expected: str | None, header: str) -> tuple[int, str] | None:
    if not expected:
        return 403, "admin endpoints are off: start the server with KEEL_ADMIN_TOKEN set"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        return 401, "admin endpoints need 'Authorization: Bearer <KEEL_ADMIN_TOKEN>'"
    return None


def _infer_inputs(payload: Any) -> tuple[dict[str, list[Any]], str | None]:
    """Column name -> values from an inference request's ``inputs`` (shape [N] or [N, 1])."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise SchemaError(
            [{"row": None, "column": None, "problem": "the body must be an inference request with 'inputs'"}]
        )
    columns: dict[str, list[Any]] = {}
    problems = []
    for tensor in payload["inputs"]:
        if (
            not isinstance(tensor, dict)
            or not isinstance(tensor.get("name"), str)
            or not isinstance(tensor.get("data"), list)
        ):
            problems.append({"row": None, "column": None, "problem": "every input needs a 'name' and a 'data' list"})
            continue
        shape = tensor.get("shape")
        data = tensor["data"]
        if data and isinstance(data[0], list):  # a nested [[v], [v], ...] tensor
            data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        if isinstance(shape, list) and shape and (len(shape) > 2 or (len(shape) == 2 and shape[1] != 1)):
            problems.append(
                {
                    "row": None,
                    "column": tensor["name"],
                    "problem": f"shape {shape}: one column per input, [N] or [N, 1]",
                }
            )
            continue
        columns[tensor["name"]] = data
    if problems:
        raise SchemaError(problems)
    request_id = payload.get("id")
    return columns, str(request_id) if request_id is not None else None


def _infer_outputs(predictor: Predictor, outputs: Predictions) -> list[dict[str, Any]]:
    n = len(outputs.score)
    if outputs.labels is None or outputs.probabilities is None:
        return [{"name": "value", "datatype": "FP64", "shape": [n], "data": outputs.score.tolist()}]
    k = outputs.probabilities.shape[1]
    return [
        {"name": "label", "datatype": "BYTES", "shape": [n], "data": outputs.labels.tolist()},
        {"name": "probabilities", "datatype": "FP32", "shape": [n, k], "data": outputs.probabilities.ravel().tolist()},
    ]


def _metadata(predictor: Predictor) -> dict[str, Any]:
    bundle = predictor.bundle
    inputs = [
        {"name": c.name, "datatype": "FP32" if c.kind == NUMERIC else "BYTES", "shape": [-1, 1]}
        for c in predictor.schema.columns
    ]
    if predictor.classes is None:
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    else:
        outputs = [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(predictor.classes)]},
        ]
    return {
        "name": bundle.model,
        "versions": [bundle.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"classes": predictor.classes, "bundle_sha256": bundle.digest},
    }


def _log_columns(
    predictor: Predictor, arrays: dict[str, np.ndarray], outputs: Predictions, request_id: str
) -> dict[str, np.ndarray]:
    n = len(outputs.score)
    now = np.full(n, np.datetime64(time.time_ns() // 1000, "us"))
    meta = {
        LOG_TIME: now,
        LOG_MODEL: np.full(n, predictor.bundle.model, dtype=object),
        LOG_VERSION: np.full(n, predictor.bundle.version, dtype=object),
        LOG_REQUEST: np.full(n, request_id, dtype=object),
        LOG_SCORE: outputs.score,
    }
    if outputs.labels is not None:
        meta[LOG_LABEL] = outputs.labels
    return meta | arrays


def _row_schema(schema: InputSchema) -> dict[str, Any]:
    properties = {
        c.name: {"type": ["number", "null"]} if c.kind == NUMERIC else {"type": ["string", "null"]}
        for c in schema.columns
    }
    return {"type": "object", "properties": properties, "required": schema.names}


def _request_doc(schema: InputSchema) -> dict[str, Any]:
    """The /predict request body in the OpenAPI document, from the model's schema."""
    body = {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": _row_schema(schema), "minItems": 1}},
        "required": ["rows"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def _infer_doc(schema: InputSchema) -> dict[str, Any]:
    """The v2 inference request in the OpenAPI document."""
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": schema.names},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    body = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": tensor}},
        "required": ["inputs"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
