"""The HTTP app: validate JSON rows, run the ONNX graph, answer with the version, log.

Routes: ``GET /health``, ``POST /predict`` with ``{"rows": [{column: value}, ...]}``.
Errors are JSON: 400 for a body that is not JSON, 413 for too many rows, 422
naming every bad row and column.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from keel._version import __version__
from keel.errors import SchemaError
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
from keel.serving.predictor import Predictions, Predictor
from keel.serving.predlog import PredictionLog


@dataclass
class ServingState:
    """What the app serves: one predictor, its log, and limits."""

    predictor: Predictor
    log: PredictionLog
    max_batch_rows: int = 10_000

    @property
    def model(self) -> str:
        return self.predictor.bundle.model

    @property
    def version(self) -> str:
        return self.predictor.bundle.version


def create_app(state: ServingState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        state.log.start()
        try:
            yield
        finally:
            state.log.close()

    app = FastAPI(title="keel model server", version=__version__, lifespan=lifespan)

    def reply(payload: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return reply({"status": "ok", "model": state.model, "version": state.version})

    @app.post("/predict", openapi_extra=_request_doc(state.predictor.schema))
    async def predict(request: Request) -> Response:
        body = await request.body()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return reply({"error": f"malformed JSON body: {exc}"}, 400)
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            return reply({"error": 'the body must be a JSON object {"rows": [{column: value, ...}, ...]}'}, 422)
        if len(rows) > state.max_batch_rows:
            return reply({"error": f"{len(rows)} rows exceed the limit of {state.max_batch_rows} per request"}, 413)
        try:
            arrays = state.predictor.schema.rows_to_arrays(rows)
        except SchemaError as exc:
            return reply({"error": str(exc), "problems": exc.problems}, 422)
        outputs = state.predictor.predict(arrays)
        request_id = uuid.uuid4().hex
        state.log.append(_log_columns(state, arrays, outputs, request_id))
        return reply(
            {
                "model": state.model,
                "version": state.version,
                "request_id": request_id,
                "predictions": state.predictor.to_json(outputs),
            }
        )

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        return reply({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    return app


def _log_columns(
    state: ServingState, arrays: dict[str, np.ndarray], outputs: Predictions, request_id: str
) -> dict[str, np.ndarray]:
    n = len(outputs.score)
    now = np.full(n, np.datetime64(time.time_ns() // 1000, "us"))
    meta = {
        LOG_TIME: now,
        LOG_MODEL: np.full(n, state.model, dtype=object),
        LOG_VERSION: np.full(n, state.version, dtype=object),
        LOG_REQUEST: np.full(n, request_id, dtype=object),
        LOG_SCORE: outputs.score,
    }
    if outputs.labels is not None:
        meta[LOG_LABEL] = outputs.labels
    return meta | arrays


def _request_doc(schema: InputSchema) -> dict[str, Any]:
    """The /predict request body in the OpenAPI document, from the model's schema."""
    properties = {
        c.name: {"type": ["number", "null"]} if c.kind == NUMERIC else {"type": ["string", "null"]}
        for c in schema.columns
    }
    row = {"type": "object", "properties": properties, "required": schema.names}
    body = {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": row, "minItems": 1}},
        "required": ["rows"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
