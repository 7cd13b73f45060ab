"""Calibrated drift: few false alarms at any sample size, a small real shift found, and the
prediction control chart, unseen categories, new nulls, windows and the webhook."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from keel.api.monitor import _between, _window, _windows, notify
from keel.monitoring.drift import Thresholds, chance_threshold, report
from keel.profile import build_profile, load_profile
from keel.schema import CATEGORICAL, LOG_SCORE, LOG_TIME, NUMERIC

N_REFERENCE = 50_000


def training(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """20 columns of varied shapes: normal, skewed, discrete, with missing values, categorical."""
    n = N_REFERENCE
    cols: dict[str, np.ndarray] = {}
    for i in range(6):
        cols[f"normal{i}"] = rng.normal(loc=i, scale=1 + i, size=n)
    for i in range(4):
        cols[f"skewed{i}"] = rng.lognormal(sigma=0.5 + i / 2, size=n)
    for i in range(3):
        cols[f"count{i}"] = rng.poisson(1 + 3 * i, size=n).astype(np.float64)
    for i in range(3):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.1 * (i + 1)] = np.nan
        cols[f"gappy{i}"] = x
    for i in range(3):
        cols[f"cat{i}"] = rng.choice(np.array([f"v{j}" for j in range(3 + 4 * i)], dtype=object), size=n)
    cols[LOG_SCORE] = rng.beta(2, 5, size=n)
    return cols


def kinds(cols: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: CATEGORICAL if name.startswith("cat") else NUMERIC for name in cols}


def as_table(cols: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({k: pa.array(v, type=pa.string()) if v.dtype == object else pa.array(v) for k, v in cols.items()})


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, np.ndarray], dict]:
    cols = training(np.random.default_rng(7))
    return cols, load_profile(build_profile(cols, kinds(cols)))


def resample(cols: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    pick = rng.integers(0, N_REFERENCE, size=rows)
    return {name: values[pick] for name, values in cols.items()}


@pytest.mark.parametrize("rows", [10_000, 1_000_000])
def test_a_resample_of_the_reference_flags_fewer_than_5_percent_of_columns(reference, rows: int) -> None:
    cols, profile = reference
    flagged = []
    for seed in range(3):
        current = as_table(resample(cols, rows, np.random.default_rng(100 + seed)))
        result = report("m", "1", profile, current, Thresholds())
        flagged += [c.column for c in result.columns if c.status != "ok"]
        assert (result.prediction is not None and not result.prediction.alert) or rows == 1_000_000
    assert len(flagged) < 0.05 * 3 * len(profile), flagged


def test_a_tenth_of_a_standard_deviation_in_one_column_is_found_at_10000_rows(reference) -> None:
    cols, profile = reference
    for seed in range(5):
        current = resample(cols, 10_000, np.random.default_rng(200 + seed))
        current["normal2"] = current["normal2"] + 0.1 * np.nanstd(cols["normal2"])
        result = report("m", "1", profile, as_table(current), Thresholds())
        statuses = {c.column: c.status for c in result.columns}
        assert statuses["normal2"] != "ok", result.columns[0]
        assert sum(s != "ok" for s in statuses.values()) <= 2  # the shifted column, at most one chance flag


def test_a_small_shift_that_chance_explains_at_1m_rows_is_still_too_small_to_flag(reference) -> None:
    cols, profile = reference
    current = resample(cols, 1_000_000, np.random.default_rng(5))
    current["normal0"] = current["normal0"] + 0.03  # beyond chance at a million rows, PSI ~0.001
    column = {c.column: c for c in report("m", "1", profile, as_table(current), Thresholds()).columns}["normal0"]
    assert column.psi > column.chance_threshold and column.status == "ok"


def test_chance_threshold_shrinks_with_sample_size() -> None:
    assert chance_threshold(50_000, 1_000, 10, 0.001) > chance_threshold(50_000, 1_000_000, 10, 0.001)
    assert chance_threshold(50_000, 0, 10, 0.001) == float("inf")


def test_the_mean_prediction_is_watched_on_a_control_chart(reference) -> None:
    cols, profile = reference
    current = resample(cols, 5_000, np.random.default_rng(3))
    quiet = report("m", "1", profile, as_table(current), Thresholds()).prediction
    assert quiet is not None and abs(quiet.sigmas) < 2 and not quiet.alert
    current[LOG_SCORE] = np.clip(current[LOG_SCORE] + 0.02, 0, 1)
    moved = report("m", "1", profile, as_table(current), Thresholds()).prediction
    assert moved is not None and moved.sigmas > 2 and moved.alert


def test_unseen_categories_and_new_nulls_are_named(reference) -> None:
    cols, profile = reference
    current = resample(cols, 2_000, np.random.default_rng(4))
    current["cat0"][:400] = "never-seen"
    current["normal1"][:100] = np.nan
    columns = {c.column: c for c in report("m", "1", profile, as_table(current), Thresholds()).columns}
    assert columns["cat0"].unseen_share == pytest.approx(0.2)
    assert columns["cat0"].status == "alert"
    assert any("never saw" in note for note in columns["cat0"].notes)
    assert any("missing values appeared" in note for note in columns["normal1"].notes)


def test_windows_split_the_log_by_time() -> None:
    start = datetime(2026, 11, 1)
    stamps = np.array([start + timedelta(hours=h) for h in range(72)], dtype="datetime64[us]")
    table = pa.table({LOG_TIME: pa.array(stamps), "x": pa.array(np.arange(72.0))})
    windows = _windows(table, _window("1d"))
    assert [w.num_rows for _, w in windows] == [24, 24, 24]
    assert windows[1][0] == start + timedelta(days=1)
    assert _between(table, start + timedelta(hours=10), start + timedelta(hours=20)).num_rows == 10


def test_the_webhook_gets_the_alert(reference, tmp_path: Path) -> None:
    cols, profile = reference
    current = resample(cols, 2_000, np.random.default_rng(9))
    current["normal3"] = current["normal3"] + 5 * np.nanstd(cols["normal3"])
    result = report("m", "1", profile, as_table(current), Thresholds())
    assert result.alerting
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        problem = notify(f"http://127.0.0.1:{server.server_port}/hook", result, tmp_path / "r.json")
    finally:
        thread.join(timeout=10)
        server.server_close()
    assert problem is None
    assert received[0]["model"] == "m" and received[0]["alerts"][0]["columns"][0]["column"] == "normal3"
    assert notify("http://127.0.0.1:1/hook", result, tmp_path / "r.json") is not None  # refused: said, not raised


def test_the_html_report_shows_the_columns_and_the_plots_over_time(reference) -> None:
    from keel.monitoring.report import render_html

    cols, profile = reference
    rng = np.random.default_rng(12)
    windows = []
    for day in range(3):
        current = resample(cols, 3_000, rng)
        current["normal4"] = current["normal4"] + day * np.nanstd(cols["normal4"])  # drifts more each day
        windows.append(report("m", "1", profile, as_table(current), Thresholds(), f"2026-11-0{day + 1}", None))
    overall = report("m", "1", profile, as_table(current), Thresholds())
    overall = type(overall)(**{**overall.__dict__, "windows": windows})
    page = render_html(overall, 0.005, 2.0)
    assert page.count("<img") == 2 and "normal4" in page and "alert" in page
    assert windows[0].columns[0].bins and len(windows[0].columns[0].bins) == len(windows[0].columns[0].reference_shares)


def test_columns_of_one_severity_are_ranked_by_drift_times_importance(reference) -> None:
    cols, profile = reference
    current = resample(cols, 5_000, np.random.default_rng(13))
    current["normal0"] = current["normal0"] + 3 * np.nanstd(cols["normal0"])  # both alert; normal0 drifts more
    current["normal1"] = current["normal1"] + 2 * np.nanstd(cols["normal1"])
    plain = [c.column for c in report("m", "1", profile, as_table(current), Thresholds()).columns[:2]]
    assert plain == ["normal0", "normal1"]
    weights = {name: 0.01 for name in cols} | {"normal1": 0.9}  # the model barely uses normal0
    ranked = report("m", "1", profile, as_table(current), Thresholds(), importance=weights).columns[:2]
    assert [c.column for c in ranked] == ["normal1", "normal0"] and ranked[0].importance == 0.9
