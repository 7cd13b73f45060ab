"""The label-quality check on shared data sets, with 10% to 50% of the new labels flipped and
with honest labels after real concept drift (bench/label_quality.py has the full counts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATASETS
from keel.evaluation.labels import SELF_ROWS, label_quality_check, self_agreement

pytestmark = pytest.mark.shared_data("adult.parquet", "electricity.parquet")


def sets(name: str) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """(golden rows, labels, new rows, labels): adult's random halves, or electricity's days
    100-149 against days 500-549 (the relation of price to class changed in between)."""
    if name == "electricity":
        frame = pd.read_parquet(SHARED_DATASETS / "electricity.parquet")
        y = frame.pop("class").to_numpy()
        day = frame.pop("day_index").to_numpy()
        x = frame.drop(columns=["t_index"])
        old, new = (day >= 100) & (day < 150), (day >= 500) & (day < 550)
        return x[old], y[old], x[new], y[new]
    frame = pd.read_parquet(SHARED_DATASETS / "adult.parquet").drop(columns=["split"])
    y = frame.pop("income").astype(str).str.strip(".").eq(">50K").to_numpy().astype(np.int64)
    order = np.random.default_rng(0).permutation(len(frame))[:8000]
    return frame.iloc[order[:4000]], y[order[:4000]], frame.iloc[order[4000:]], y[order[4000:]]


@pytest.mark.parametrize("name", ["adult", "electricity"])
def test_flips_are_refused_and_honest_labels_pass(name: str) -> None:
    golden, golden_y, new, new_y = sets(name)
    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(golden[c]) else "categorical" for c in golden.columns}
    rows = min(len(golden_y), len(new_y), SELF_ROWS)
    then = self_agreement(golden, kinds, golden_y, rows)
    assert label_quality_check(then, self_agreement(new, kinds, new_y, rows)).passed
    rng = np.random.default_rng(1)
    for flip in (0.1, 0.3, 0.5):
        noisy = np.where(rng.random(len(new_y)) < flip, 1 - new_y, new_y)
        check = label_quality_check(then, self_agreement(new, kinds, noisy, rows))
        assert not check.passed, (flip, check.detail)
        assert check.numbers["noise_estimate"] == pytest.approx(flip, abs=0.1)
