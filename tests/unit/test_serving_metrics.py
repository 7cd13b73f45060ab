from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.serving.metrics import ServingMetrics


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1, max_value=2, allow_nan=False), min_size=1, max_size=50))
def test_bulk_score_histogram_matches_one_observation_per_value(values: list[float]) -> None:
    bulk, one_by_one = ServingMetrics(), ServingMetrics()
    bulk.observe("predict", "1", 0.001, np.asarray(values))
    one_by_one.observe("predict", "1", 0.001, np.asarray(values[:0]))
    for value in values:
        one_by_one.scores.labels("1").observe(value)
    one_by_one.rows.labels("1").inc(len(values))
    got, want = samples(bulk), samples(one_by_one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert np.isclose(got[key], value, rtol=1e-9, atol=1e-9), key
