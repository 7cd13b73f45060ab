"""The HTTP app: validate inputs, run the ONNX graph, answer with the version, log, measure.

Routes:

- ``POST /predict`` with ``{"rows": [{column: value}, ...]}`` (keel's simple JSON);
- the Open Inference Protocol v2 REST API: ``GET /v2/health/live``, ``GET /v2/health/ready``,
  ``GET /v2/models/{name}`` (metadata), ``GET /v2/models/{name}/ready``,
  ``POST /v2/models/{name}/infer`` with one input tensor per column;
- ``GET /health``, ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (bearer token).

Errors are JSON: 400 for a body that is not JSON, 413 for a body or batch over the limits,
422 naming every bad row and column, 401/403 for admin calls without the token.

Hot swap: the app holds one ``Predictor`` reference per alias. A background task polls the
store's serving file (rewritten by every promote, rollback and alias change); when an alias
points at another version it loads and verifies that bundle off the event loop, then swaps
the reference. A request reads its reference once, so requests in flight finish on the
model they started with and no request waits for a load.

Canary and shadow: when the registry has a ``canary`` alias, ``serving.canary_share`` of the
requests are answered by it, sticky by ``serving.canary_key`` (a column: the same value
always goes the same way; without one, requests are drawn at random). When it has a
``shadow`` alias, every request is also scored by the shadow after the response is sent,
and logged with ``keel_route = shadow`` and the same request id; the caller never sees it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hmac
import itertools
import logging
import os
import random
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from keel._version import __version__
from keel.errors import KeelError, SchemaError
from keel.exporting.bundle import Bundle
from keel.schema import (
    NUMERIC,
    InputSchema,
)
from keel.serving.metrics import ServingMetrics
from keel.serving.predictor import Predictions, Predictor
from keel.serving.predlog import PredictionLog, log_entry

logger = logging.getLogger("keel.serving")


CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"
GIL_SWITCH_SECONDS = 0.0002
RETRY_MAX_SECONDS = 60.0  # a refused swap is tried again after 1, 2, 4, ... s, at most this apart


@dataclass(frozen=True)
class Routing:
    """What the registry asks this server to serve now (``Source.read``)."""

    bundles: dict[str, Bundle | None]  # champion, canary, shadow: verified bundles (None: not set)
    canary_share: float | None = None  # a rollout step's share; None: serving.canary_share
    unavailable: str = ""  # why nothing may answer (the champion disabled, nothing to fall back to)


@dataclass
class Source:
    """Where the served bundles come from: a change stamp of the alias file, the routing it
    asks for (bundles verified), and the kill switch's writer (``disable(version)``; None
    clears it), which every worker then reads back."""

    stamp: Callable[[], int]
    read: Callable[[], Routing]
    poll_seconds: float = 1.0
    disable: Callable[[str | None], None] | None = None


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
    routes: dict[str, Predictor] = field(default_factory=dict)  # canary, shadow
    canary_share: float = 0.1
    canary_key: str | None = None
    id_column: str | None = None  # a request field logged as keel_id (not a model input)
    refused: dict[str, Any] | None = None  # the last swap the aliases asked for and the bundle failed
    body_timeout: float = 30.0  # seconds for a request body to arrive (408 beyond)
    unavailable: str = ""  # the kill switch left nothing to serve: requests get 503 with this

    def route(self, key: Any) -> tuple[Predictor, str]:
        """The predictor that answers this request: the canary for its share, else the champion."""
        canary = self.routes.get(CANARY)
        if canary is None or self.canary_share <= 0:
            return self.predictor, CHAMPION
        sticky = self.canary_key is not None and key is not None
        draw = zlib.crc32(str(key).encode()) % 10_000 / 10_000 if sticky else random.random()
        return (canary, CANARY) if draw < self.canary_share else (self.predictor, CHAMPION)

    @property
    def model(self) -> str:
        return self.predictor.bundle.model

    @property
    def version(self) -> str:
        return self.predictor.bundle.version


def tune_server_process() -> None:
    """Process-wide settings that a server process wants and a library must not impose: the
    entry points of ``keel serve`` (one process, each worker, each Ray replica) call it once
    the app is built; ``create_app`` never does, so an app built inside someone else's process
    (a test, a notebook) leaves that process as it was.

    - The GIL switch interval: the log writer thread must hand the GIL back within a fraction
      of a millisecond, not Python's default 5 ms; with the default, requests that ran during
      a flush waited up to 5 ms at every hand-off (p99 18 ms at concurrency 1).
    - ``gc.freeze``: everything imported and loaded so far lives as long as the server; kept
      out of the collector's full passes, which otherwise walk it all (p99 18 ms -> 2 ms).
    """
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    gc.collect()
    gc.freeze()


def create_app(state: ServingState) -> Any:
    """The server's ASGI app: FastAPI for every route, with the two prediction routes also
    answered by a thin ASGI layer in front of it (``_FastRoutes``), which skips FastAPI's
    per-request routing and dependency machinery (about a third of the CPU of a one-row
    request). Both paths run the same handlers below.
    """
    stamp = {"seen": state.source.stamp() if state.source else 0}
    configured_share = state.canary_share
    ids = itertools.count(1)
    prefix = f"{os.getpid():x}{os.urandom(6).hex()}-"

    def next_id() -> str:
        """A request id unique to this server process (cheaper than uuid4 on every request)."""
        return f"{prefix}{next(ids):x}"

    lock = asyncio.Lock()

    async def reload(force: bool = False) -> dict[str, Any]:
        """Load what the aliases point at and swap what changed (everything with ``force``)."""
        if state.source is None:
            return {"reloaded": False, "reason": "this server was started on a fixed bundle"}
        async with lock:
            stamp["seen"] = await asyncio.to_thread(state.source.stamp)
            try:
                routing = await asyncio.to_thread(state.source.read)
            except KeelError as exc:
                state.metrics.reloads.labels("failed").inc()
                attempts = 1 + (state.refused or {}).get("attempts", 0)
                delay = min(RETRY_MAX_SECONDS, 2.0 ** (attempts - 1))
                state.refused = {
                    "reason": str(exc),
                    "serving": state.version,
                    "attempts": attempts,
                    "retry_at": time.monotonic() + delay,
                }
                logger.error(
                    "reload refused, still serving %s@%s (retry %d in %.0f s): %s",
                    state.model,
                    state.version,
                    attempts,
                    delay,
                    exc,
                )
                return {"reloaded": False, "reason": str(exc), "version": state.version}
            state.refused = None
            previous = state.version
            swapped = []
            bundles = routing.bundles
            state.canary_share = configured_share if routing.canary_share is None else routing.canary_share
            if routing.unavailable != state.unavailable:
                state.unavailable = routing.unavailable
                swapped.append("unavailable" if routing.unavailable else "available")
            champion = bundles.get(CHAMPION)
            if champion is not None and (force or champion.digest != state.predictor.bundle.digest):
                state.predictor = await asyncio.to_thread(Predictor, champion)
                swapped.append(CHAMPION)
            for alias in (CANARY, SHADOW):
                bundle, current = bundles.get(alias), state.routes.get(alias)
                if bundle is None and current is not None:
                    state.routes = {k: v for k, v in state.routes.items() if k != alias}
                    swapped.append(alias)
                elif bundle is not None and (force or current is None or bundle.digest != current.bundle.digest):
                    state.routes = state.routes | {alias: await asyncio.to_thread(Predictor, bundle)}
                    swapped.append(alias)
            routes = {alias: p.bundle.version for alias, p in state.routes.items()}
            if not swapped:
                return {
                    "reloaded": False,
                    "reason": "already serving them",
                    "version": state.version,
                    "routes": routes,
                    "canary_share": state.canary_share,
                }
            state.metrics.serving(state.model, state.version)
            state.metrics.reloads.labels("swapped").inc()
            logger.warning("now serving %s@%s (was %s), routes %s", state.model, state.version, previous, routes)
            return {
                "reloaded": True,
                "version": state.version,
                "previous": previous,
                "routes": routes,
                "canary_share": state.canary_share,
                "unavailable": state.unavailable,
            }

    async def watch() -> None:
        assert state.source is not None
        while True:
            await asyncio.sleep(state.source.poll_seconds)
            try:
                retry = state.refused is not None and time.monotonic() >= state.refused["retry_at"]
                if retry or await asyncio.to_thread(state.source.stamp) != stamp["seen"]:
                    await reload()  # a refused swap is tried again, backing off, until it loads
            except Exception:  # a watcher that dies would silently stop hot swaps
                logger.exception("checking the serving alias failed; will retry")

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        state.log.on_error = state.metrics.log_errors.inc
        state.log.on_drop = state.metrics.log_dropped.inc
        state.log.start()
        state.metrics.serving(state.model, state.version)
        watcher = None
        if state.source is not None:
            await reload()  # canary and shadow, when set
            watcher = asyncio.create_task(watch())
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            state.log.close()
            state.metrics.close()

    app = FastAPI(title="keel model server", version=__version__, lifespan=lifespan)

    def reply(payload: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")

    async def read_body(request: Request) -> bytes | None:
        """The body, or None when it is over the limit (declared or actual)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > state.max_request_bytes:
            return None
        body = await request.body()
        return None if len(body) > state.max_request_bytes else body

    def parse(body: bytes | None) -> tuple[Any, tuple[int, dict[str, Any]] | None]:
        """The JSON payload, or the status and error that refuse the body."""
        if body is None:
            return None, (413, {"error": f"request body over {state.max_request_bytes:,} bytes"})
        try:
            return orjson.loads(body), None
        except orjson.JSONDecodeError as exc:
            return None, (400, {"error": f"malformed JSON body: {exc}"})

    def score(
        predictor: Predictor,
        arrays: dict[str, np.ndarray],
        endpoint: str,
        started: float,
        route: str,
        ids: np.ndarray | None,
    ) -> tuple[Predictions, str]:
        outputs = predictor.predict(arrays)
        request_id = next_id()
        state.log.append(*log_entry(predictor, arrays, outputs, request_id, route, ids))
        state.metrics.observe(endpoint, predictor.bundle.version, time.perf_counter() - started, outputs.score, route)
        return outputs, request_id

    def shadow_task(rows: Any, columns: Any, request_id: str, ids: np.ndarray | None) -> BackgroundTask | None:
        """Score the request with the shadow after the response has gone; log it, answer nobody."""
        shadow = state.routes.get(SHADOW)
        if shadow is None:
            return None

        def run() -> None:
            started = time.perf_counter()
            try:
                schema = shadow.schema
                arrays = schema.rows_to_arrays(rows) if rows is not None else schema.columns_to_arrays(columns)
                outputs = shadow.predict(arrays)
                state.log.append(*log_entry(shadow, arrays, outputs, request_id, SHADOW, ids))
                state.metrics.observe(
                    "shadow", shadow.bundle.version, time.perf_counter() - started, outputs.score, SHADOW
                )
            except SchemaError:  # the request the shadow cannot take: a failed request, had it answered
                state.metrics.errors.labels("shadow", shadow.bundle.version, "422", SHADOW).inc()
            except Exception as exc:  # the shadow must never hurt the answer
                state.metrics.errors.labels("shadow", shadow.bundle.version, type(exc).__name__, SHADOW).inc()

        return BackgroundTask(run)

    def validated(
        endpoint: str, predictor: Predictor, rows: int, convert: Callable[[], dict[str, np.ndarray]], route: str
    ) -> tuple[dict[str, np.ndarray], Response | None]:
        """Canonical arrays, or the 413/422 answer that refuses the request."""
        version = predictor.bundle.version
        if rows > state.max_batch_rows:
            problem = f"{rows} rows exceed the limit of {state.max_batch_rows} per request"
            return {}, failed(endpoint, version, 413, {"error": problem}, route)
        try:
            return convert(), None
        except SchemaError as exc:
            return {}, failed(endpoint, version, 422, {"error": str(exc), "problems": exc.problems}, route)

    def failed(endpoint: str, version: str, status: int, payload: dict[str, Any], route: str = CHAMPION) -> Response:
        """A refused or failed request, counted against the route that would have answered it
        (a rollout compares the canary's failures with the champion's)."""
        state.metrics.errors.labels(endpoint, version, str(status), route).inc()
        return reply(payload, status)

    def scored(
        endpoint: str,
        predictor: Predictor,
        arrays: dict[str, np.ndarray],
        started: float,
        route: str,
        ids: np.ndarray | None,
    ) -> tuple[Predictions, str] | Response:
        """``score``, or the 500 that a model failing at run time answers (counted on its route)."""
        try:
            return score(predictor, arrays, endpoint, started, route, ids)
        except Exception as exc:
            logger.exception("%s@%s failed to score a request", predictor.bundle.model, predictor.bundle.version)
            problem = f"internal error ({type(exc).__name__}); see the server log"
            return failed(endpoint, predictor.bundle.version, 500, {"error": problem}, route)

    def disabled(endpoint: str) -> Response:
        payload = {"error": state.unavailable, "model": state.model}
        response = failed(endpoint, state.version, 503, payload)
        response.headers["retry-after"] = "30"
        return response

    @app.get("/health")
    async def health() -> Response:
        """ "ok", or "degraded" (still answering, still 200) while the prediction log cannot
        write: predictions then go unmonitored, which an operator must hear about."""
        log = state.log.status()
        healthy = log["ok"] and state.refused is None and not state.unavailable
        body: dict[str, Any] = {"status": "ok" if healthy else "degraded", "model": state.model}
        body["version"] = state.version
        if state.unavailable:
            body["unavailable"] = state.unavailable
        if state.routes:
            body["routes"] = {alias: p.bundle.version for alias, p in state.routes.items()}
            if CANARY in state.routes:
                body["canary_share"] = state.canary_share
        if not log["ok"]:
            body["prediction_log"] = log
        if state.refused is not None:  # the registry asks for a bundle this server cannot verify
            body["swap_refused"] = {k: v for k, v in state.refused.items() if k != "retry_at"}
        return reply(body)

    async def predict_body(body: bytes | None) -> Response:
        started = time.perf_counter()
        payload, error = parse(body)
        rows = payload.get("rows") if isinstance(payload, dict) else None
        first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        predictor, route = state.route(first.get(state.canary_key) if state.canary_key else None)
        version = predictor.bundle.version  # one model for the whole request, even across a swap
        if state.unavailable and route == CHAMPION:
            return disabled("predict")
        if error is not None:
            return failed("predict", version, *error, route)
        if not isinstance(rows, list):
            problem = 'the body must be a JSON object {"rows": [{column: value, ...}, ...]}'
            return failed("predict", version, 422, {"error": problem}, route)
        arrays, refused = validated(
            "predict", predictor, len(rows), lambda: predictor.schema.rows_to_arrays(rows), route
        )
        if refused is not None:
            return refused
        ids = _ids([row.get(state.id_column) for row in rows]) if state.id_column else None
        result = scored("predict", predictor, arrays, started, route, ids)
        if isinstance(result, Response):
            return result
        outputs, request_id = result
        answer = {
            "model": predictor.bundle.model,
            "version": version,
            "request_id": request_id,
            "predictions": predictor.to_json(outputs),
        }
        response = reply(answer)
        response.background = shadow_task(rows, None, request_id, ids)
        return response

    @app.post("/predict", openapi_extra=_request_doc(state.predictor.schema))
    async def predict(request: Request) -> Response:
        return await predict_body(await read_body(request))

    @app.get("/v2/health/live")
    async def live() -> Response:
        return reply({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return reply({"ready": True})

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        if name != state.model:
            return reply({"error": _unknown_model(name, state.model)}, 404)
        return reply(_metadata(state.predictor))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        if name != state.model:
            return reply({"error": _unknown_model(name, state.model)}, 404)
        return reply({"name": name, "ready": True})

    async def infer_body(name: str, body: bytes | None) -> Response:
        started = time.perf_counter()
        payload, error = parse(body)
        try:
            columns, request_id = _infer_inputs(payload) if error is None else ({}, None)
        except SchemaError as exc:
            return failed("infer", state.version, 422, {"error": str(exc), "problems": exc.problems})
        key = columns.get(state.canary_key) if state.canary_key else None
        predictor, route = state.route(key[0] if isinstance(key, list) and key else None)
        version = predictor.bundle.version
        if name != predictor.bundle.model:
            return failed("infer", version, 404, {"error": _unknown_model(name, predictor.bundle.model)}, route)
        if state.unavailable and route == CHAMPION:
            return disabled("infer")
        if error is not None:
            return failed("infer", version, *error, route)
        rows = len(next(iter(columns.values()))) if columns else 0
        arrays, refused = validated(
            "infer", predictor, rows, lambda: predictor.schema.columns_to_arrays(columns), route
        )
        if refused is not None:
            return refused
        given = columns.get(state.id_column) if state.id_column else None
        ids = _ids(given) if isinstance(given, list) and len(given) == rows else None
        result = scored("infer", predictor, arrays, started, route, ids)
        if isinstance(result, Response):
            return result
        outputs, logged_id = result
        answer = {
            "model_name": predictor.bundle.model,
            "model_version": version,
            "id": request_id or logged_id,
            "parameters": {"request_id": logged_id},
            "outputs": _infer_outputs(predictor, outputs),
        }
        response = reply(answer)
        response.background = shadow_task(None, columns, logged_id, ids)
        return response

    @app.post("/v2/models/{name}/infer", openapi_extra=_infer_doc(state.predictor.schema))
    async def infer(name: str, request: Request) -> Response:
        return await infer_body(name, await read_body(request))

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

    @app.post("/admin/disable")
    async def admin_disable(request: Request) -> Response:
        """The kill switch: ``{"version": "V"}`` takes V out of traffic on every worker (the
        champion's requests go to the champion before it, or get 503 per
        ``serving.on_disabled``); ``{"version": null}`` clears it."""
        denied = _check_token(state.admin_token, request.headers.get("authorization", ""))
        if denied is not None:
            return reply({"error": denied[1]}, denied[0])
        if state.source is None or state.source.disable is None:
            return reply({"error": "this server was started on a fixed bundle: nothing to fall back to"}, 409)
        payload, error = parse(await read_body(request))
        if error is not None:
            return reply(error[1], error[0])
        version = payload.get("version") if isinstance(payload, dict) else None
        if (
            not isinstance(payload, dict)
            or "version" not in payload
            or not (version is None or isinstance(version, str | int))
        ):
            return reply({"error": 'the body must be {"version": "V"} (or {"version": null} to clear)'}, 422)
        await asyncio.to_thread(state.source.disable, None if version is None else str(version))
        return reply(await reload())

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        logger.exception("internal error")
        return reply({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    return _FastRoutes(app, predict_body, infer_body, state.max_request_bytes, state.body_timeout)


class _FastRoutes:
    """``POST /predict`` and ``POST /v2/models/{name}/infer`` straight to their handlers;
    everything else (docs, health, metrics, admin, lifespan) to the FastAPI app."""

    INFER_PREFIX, INFER_SUFFIX = "/v2/models/", "/infer"

    def __init__(self, app: FastAPI, predict: Any, infer: Any, max_bytes: int, body_timeout: float = 30.0) -> None:
        self.app, self.predict, self.infer, self.max_bytes = app, predict, infer, max_bytes
        self.body_timeout = body_timeout

    def __getattr__(self, name: str) -> Any:  # routes, openapi(), state, ... of the FastAPI app
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            call = None
            if path == "/predict":
                call = self.predict
            elif path.startswith(self.INFER_PREFIX) and path.endswith(self.INFER_SUFFIX):
                name = path[len(self.INFER_PREFIX) : -len(self.INFER_SUFFIX)]
                if name and "/" not in name:
                    call = functools.partial(self.infer, name)
            if call is not None:
                try:
                    async with asyncio.timeout(self.body_timeout):
                        body = await self._body(scope, receive)
                except TimeoutError:  # a client trickling its body does not hold the server
                    payload = {"error": f"request body not received within {self.body_timeout:g} s"}
                    late = Response(orjson.dumps(payload), 408, media_type="application/json")
                    late.headers["connection"] = "close"
                    await late(scope, receive, send)
                    return
                try:
                    response = await call(body)
                except Exception as exc:
                    logger.exception("internal error")
                    payload = {"error": f"internal error ({type(exc).__name__}); see the server log"}
                    response = Response(orjson.dumps(payload), 500, media_type="application/json")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _body(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        """The request body, or None when it is over the limit (declared or actual)."""
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _unknown_model(name: str, served: str) -> str:
    return f"unknown model '{name}'; this server serves '{served}'"


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
    problems: list[dict[str, object]] = []
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


def _ids(values: list[Any]) -> np.ndarray:
    """The rows' ids as strings (None where a row sent none), for the log's keel_id column."""
    return np.array([None if v is None else str(v) for v in values], dtype=object)


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
