"""Prometheus metrics of one server: requests, errors, latency and predictions per version
and per route (champion, canary, shadow: a rollout compares the canary's with the champion's
over the same window, see keel.monitoring.online).

Each app gets its own registry, so several apps in one process (tests) do not collide.
Under ``keel serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set), each worker writes its
values to files there and ``/metrics``, whichever worker answers, adds up all of them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def latency_buckets(budget_seconds: float | None = None) -> tuple[float, ...]:
    """The latency histogram's bounds, with the latency budget as one of them: how many requests
    took longer than the budget is then exact, not interpolated."""
    bounds = set(LATENCY_BUCKETS) | ({round(budget_seconds, 6)} if budget_seconds else set())
    return tuple(sorted(bounds))


class ServingMetrics:
    def __init__(self, latency_budget_seconds: float | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "keel_requests", "Answered prediction requests", ["endpoint", "version", "route"], registry=self.registry
        )
        self.rows = Counter("keel_rows", "Scored rows", ["version"], registry=self.registry)
        self.errors = Counter(
            "keel_errors",
            "Refused or failed requests",
            ["endpoint", "version", "status", "route"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "keel_request_seconds",
            "Time from request to response body (validation, model, log hand-off); the shadow's own scoring",
            ["endpoint", "version", "route"],
            buckets=latency_buckets(latency_budget_seconds),
            registry=self.registry,
        )
        self.scores = Histogram(
            "keel_prediction_score",
            "Predicted score: P(positive) for binary, max P for multiclass, the value for regression",
            ["version"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.reloads = Counter("keel_reloads", "Bundle reloads by result", ["result"], registry=self.registry)
        self.log_errors = Counter(
            "keel_predlog_errors", "Prediction log flushes that failed (rows kept and retried)", registry=self.registry
        )
        self.log_dropped = Counter(
            "keel_predlog_dropped_rows",
            "Logged rows dropped, oldest first, while writes failed beyond the pending limit",
            registry=self.registry,
        )
        self.info = Gauge(
            "keel_model_info",
            "The served model version (1)",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._served: tuple[str, str] | None = None
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    def serving(self, model: str, version: str) -> None:
        if self._served is not None:
            self.info.labels(*self._served).set(0)  # a file-backed value survives clear(); zero it
        self.info.labels(model, version).set(1)
        self._served = (model, version)

    def observe(self, endpoint: str, version: str, seconds: float, scores: np.ndarray, route: str = "champion") -> None:
        children = self._children.get((endpoint, version, route))
        if children is None:
            children = self._children[(endpoint, version, route)] = (
                self.requests.labels(endpoint, version, route),
                self.rows.labels(version),
                self.latency.labels(endpoint, version, route),
                self.scores.labels(version),
            )
        requests, rows, latency, histogram = children
        requests.inc()
        rows.inc(len(scores))
        latency.observe(seconds)
        _observe_many(histogram, scores)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Mark this worker gone, so its live gauges leave the sum."""
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid())


def _observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe`` for every value, with one increment per bucket instead of one
    call per value (a 100-row batch spent ~10% of its time in those calls). Uses the
    histogram's bucket counters, which prometheus_client keeps per bucket (not cumulative);
    falls back to observing one value at a time if that layout ever changes."""
    if len(values) < 16:  # numpy's per-call overhead costs more than a few observe calls
        for value in values.tolist():
            histogram.observe(value)
        return
    finite = values[np.isfinite(values)]
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in finite[:1000].tolist():
            histogram.observe(value)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), finite, side="left"), minlength=len(bounds))
    for i, count in enumerate(counts.tolist()):
        if count:
            buckets[i].inc(count)
    total.inc(float(finite.sum()))
