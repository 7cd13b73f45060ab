"""Prometheus metrics of one server: requests, errors, latency and predictions per version.

Each app gets its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import numpy as np

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ServingMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "keel_requests", "Answered prediction requests", ["endpoint", "version"], registry=self.registry
        )
        self.rows = Counter("keel_rows", "Scored rows", ["version"], registry=self.registry)
        self.errors = Counter(
            "keel_errors", "Refused or failed requests", ["endpoint", "version", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "keel_request_seconds",
            "Time from request to response body (validation, model, log hand-off)",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
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
        self.info = Gauge(
            "keel_model_info", "The served model version (1)", ["model", "version"], registry=self.registry
        )

    def serving(self, model: str, version: str) -> None:
        self.info.clear()
        self.info.labels(model, version).set(1)

    def observe(self, endpoint: str, version: str, seconds: float, scores: np.ndarray) -> None:
        self.requests.labels(endpoint, version).inc()
        self.rows.labels(version).inc(len(scores))
        self.latency.labels(endpoint, version).observe(seconds)
        histogram = self.scores.labels(version)
        for value in scores[:1000].tolist():  # a huge batch adds its first 1,000 rows only
            histogram.observe(value)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
