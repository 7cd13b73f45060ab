"""The retrain loop's pure parts: the cooldown, leaving the golden rows out, joining labels."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from keel.api.monitor import join_labels
from keel.api.retrain import _cooldown, _in_golden
from keel.errors import MonitorError
from keel.monitoring.performance import LOG_TRUTH
from keel.schema import LOG_ID

EVENTS = [
    {"action": "promote", "version": "1", "at": "2026-11-20T10:00:00Z"},
    {"action": "refused", "version": "2", "at": "2026-11-23T09:00:00Z"},
    {"action": "rollback", "version": "1", "at": "2026-11-24T08:00:00Z"},
]


def test_cooldown_counts_from_the_last_champion_change_not_refusals() -> None:
    at = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    waiting = _cooldown(EVENTS, 24, at)
    assert "rollback of version 1" in waiting and "2026-11-25T08:00:00Z" in waiting
    assert _cooldown(EVENTS, 12, at) == ""  # 12 h after the rollback
    assert _cooldown(EVENTS[1:2], 24, at) == ""  # a refusal changes no champion
    assert _cooldown(EVENTS, 0, at) == "" and _cooldown([], 24, at) == ""


def test_golden_rows_are_found_by_their_inputs_as_the_model_sees_them() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"x": rng.normal(size=200), "c": rng.choice(["a", "b", None], 200), "y": rng.integers(0, 2, 200)}
    )
    golden = pd.DataFrame(
        {
            "x": frame.x.iloc[:20].astype("float32"),  # stored as the canonical float32
            "c": frame.c.iloc[:20].fillna(""),  # missing categories stored as ''
            "keel_target": frame.y.iloc[:20].astype(str),
        }
    )
    found = _in_golden(frame, golden)
    assert found[:20].all() and not found[20:].any()
    assert not _in_golden(frame, golden[["keel_target"]]).any()  # no shared input column: nothing matches


def log_with_ids(ids: list[str | None]) -> pa.Table:
    return pa.table({LOG_ID: pa.array(ids, type=pa.string()), "keel_score": pa.array(np.linspace(0, 1, len(ids)))})


def test_labels_join_by_id_and_leave_unlabelled_rows_null() -> None:
    truth = pa.table({"id": ["a", "c"], LOG_TRUTH: [1, 0]})
    joined = join_labels(log_with_ids(["a", "b", "c", None, "a"]), truth, "row_id")
    assert joined[LOG_TRUTH].to_pylist() == [1, None, 0, None, 1]


def test_labels_that_cannot_join_say_why() -> None:
    truth = pa.table({"id": ["x"], LOG_TRUTH: [1]})
    with pytest.raises(MonitorError, match="none of the 1 labels"):
        join_labels(log_with_ids(["a", "b"]), truth, "row_id")
    with pytest.raises(MonitorError, match="no ids"):
        join_labels(pa.table({"keel_score": [0.5]}), truth, "row_id")
