from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.profile import build_profile, drift_of, load_profile, profile_column, psi
from keel.schema import CATEGORICAL, NUMERIC


def test_same_distribution_has_near_zero_psi(rng: np.random.Generator) -> None:
    reference = profile_column("x", NUMERIC, rng.normal(size=20_000))
    assert drift_of(reference, rng.normal(size=20_000)).psi < 0.01


def test_shifted_distribution_is_flagged(rng: np.random.Generator) -> None:
    reference = profile_column("x", NUMERIC, rng.normal(size=20_000))
    assert drift_of(reference, rng.normal(loc=1.0, size=20_000)).psi > 0.25


def test_missing_values_have_their_own_bin(rng: np.random.Generator) -> None:
    values = rng.normal(size=1000)
    reference = profile_column("x", NUMERIC, values)
    current = values.copy()
    current[:500] = np.nan
    drift = drift_of(reference, current)
    assert drift.missing_reference == 0.0
    assert drift.missing_current == 0.5
    assert drift.psi > 1.0


def test_unseen_categories_fall_into_other() -> None:
    reference = profile_column("c", CATEGORICAL, np.array(["a", "b"] * 500, dtype=object))
    drift = drift_of(reference, np.array(["zzz"] * 1000, dtype=object))
    assert drift.psi > 5


def test_profiles_round_trip_through_json_dicts(rng: np.random.Generator) -> None:
    arrays = {"x": rng.normal(size=100).astype(np.float32), "c": np.array(["a", "", "b", "a"] * 25, dtype=object)}
    profiles = load_profile(build_profile(arrays, {"x": NUMERIC, "c": CATEGORICAL}))
    assert profiles["c"].categories == ["a", "b"]
    assert abs(profiles["c"].missing_share - 0.25) < 1e-9
    assert abs(sum(profiles["x"].shares) - 1.0) < 1e-9


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=12), st.lists(st.floats(0, 1), min_size=2, max_size=12))
def test_psi_is_never_negative(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    assert psi(np.array(a[:n]) + 1e-3, np.array(b[:n]) + 1e-3) >= -1e-12
