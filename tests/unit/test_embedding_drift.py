"""The embedding-distance drift check on synthetic embeddings: calibrated against chance by
permutation, so resamples of one distribution are not flagged and a moved topic is."""

from __future__ import annotations

import numpy as np
import pytest

from keel.monitoring.embedding import EmbeddingLimits, centroid_distance, embedding_drift


def topics(rng: np.random.Generator, n: int, share_b: float, dim: int = 64) -> np.ndarray:
    """Unit vectors around two topic directions, ``share_b`` of them around the second."""
    a, b = np.zeros(dim), np.zeros(dim)
    a[0], b[1] = 1.0, 1.0
    centre = np.where(rng.random(n)[:, None] < share_b, b, a)
    vectors = centre + rng.normal(0, 0.6, (n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_same_distribution_is_not_flagged(rng: np.random.Generator) -> None:
    flagged = 0
    for draw in range(20):
        reference, current = topics(rng, 1500, 0.15), topics(rng, 400, 0.15)
        result = embedding_drift("text", reference, current, "test", EmbeddingLimits(drift_distance=1e-9, seed=draw))
        flagged += result.status != "ok"
        assert result.chance > 0 and result.distance >= 0
    assert flagged <= 1  # alpha 0.001, with no effect floor at all


@pytest.mark.parametrize(("share", "status"), [(0.5, "alert"), (0.2, "ok")])
def test_a_moved_topic_is_flagged_by_size(rng: np.random.Generator, share: float, status: str) -> None:
    reference, current = topics(rng, 1500, 0.15), topics(rng, 400, share)
    result = embedding_drift(
        "text", reference, current, "test", EmbeddingLimits(drift_distance=0.01, alert_distance=0.05)
    )
    assert result.status == status, result
    assert "cosine distance" in result.describe()


def test_centroid_distance_is_zero_for_the_same_mean_and_grows_with_the_move() -> None:
    x = np.eye(3)
    assert centroid_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)
    assert centroid_distance(x[:1], x[1:2]) == pytest.approx(1.0)
