"""The monitor-and-retrain loop on real, time-ordered data (electricity, ../shared/datasets):
train on the first 150 days, replay days 400 to 429 through the running server, the monitor
flags the drift and measures performance from labels joined by id, a retrain on data whose
newest labels are corrupted is refused (the champion stays), a retrain on the true data is
promoted by the gate and the server swaps to it, and the cooldown then stops a third run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import SHARED_DATASETS, TEST_THREADS, keel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATASETS / "electricity.parquet").is_file(), reason="../shared/datasets is absent"),
]

FIRST_DAYS, REPLAY = 150, (400, 430)
CONFIG = """\
name: electricity
data: first.parquet
target: class
time_column: t_index
drop: [day_index]
train:
  families: [baseline, lightgbm]
  budget_seconds: 12
  threads: {threads}
serving:
  id_column: t_index
  reload_poll_seconds: 0.2
  log_flush_seconds: 0.2
retrain:
  cooldown_hours: {cooldown}
"""


def project(root: Path) -> tuple[Path, pd.DataFrame]:
    data = pd.read_parquet(SHARED_DATASETS / "electricity.parquet")
    root.mkdir()
    data[data.day_index < FIRST_DAYS].to_parquet(root / "first.parquet", index=False)
    seen = data[data.day_index < REPLAY[1]]  # the labels have arrived for the replayed days
    seen.to_parquet(root / "through-replay.parquet", index=False)
    corrupted = seen.copy()
    newer = corrupted.day_index >= FIRST_DAYS
    corrupted.loc[newer, "class"] = 1 - corrupted.loc[newer, "class"]  # every new label flipped
    corrupted.to_parquet(root / "corrupted.parquet", index=False)
    (root / "keel.yaml").write_text(CONFIG.format(cooldown=0, threads=TEST_THREADS))
    return root, data


def replay(url: str, data: pd.DataFrame) -> pd.DataFrame:
    """One request per day (48 half-hours), with t_index as the row id; returns the labels."""
    days = data[(data.day_index >= REPLAY[0]) & (data.day_index < REPLAY[1])]
    with httpx.Client(base_url=url, timeout=10) as client:
        for _, rows in days.groupby("day_index"):
            body = {"rows": rows.drop(columns=["class", "day_index"]).to_dict("records")}
            response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["version"] == "1"
    return days[["t_index", "class"]]


def champion(url: str) -> str:
    return str(httpx.get(f"{url}/health", timeout=5).json()["version"])


def wait_for_version(url: str, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while champion(url) != version and time.monotonic() < deadline:
        time.sleep(0.2)
    assert champion(url) == version


def test_drift_is_flagged_a_corrupted_retrain_refused_and_a_true_one_promoted(tmp_path: Path, start_server) -> None:
    root, data = project(tmp_path / "electricity")
    for command in ("train", "export", "promote"):
        keel(command, cwd=root, check=True)
    server = start_server(root)
    labels = replay(server.url, data)
    labels.to_csv(root / "labels.csv", index=False)
    time.sleep(1.0)  # the log flushes every 0.2 s

    monitored = keel("monitor", "--labels", "labels.csv", "--fail-on-drift", "--json", cwd=root)
    assert monitored.returncode == 10, monitored.stderr
    report = json.loads(monitored.stdout)
    assert report["rows"] == len(labels)
    statuses = {c["column"]: c["status"] for c in report["columns"]}
    assert statuses["nswprice"] == "alert", statuses  # prices fell after the first 150 days
    assert report["prediction"]["alert"]
    assert report["domain"]["status"] == "alert" and report["domain"]["auc"] > 0.9
    performance = report["performance"]
    assert performance["labelled"] == len(labels) and performance["metric"] == "roc_auc"
    assert performance["low"] <= performance["value"] <= performance["high"]
    assert set(performance["estimated"]) == {"accuracy", "roc_auc"}

    refused = keel("retrain", "--trigger", "drift", "--data", "corrupted.parquet", "--json", cwd=root)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    result = json.loads(refused.stdout)
    assert result["action"] == "refused" and result["champion"] == "1" and result["challenger"] == "2"
    assert result["golden_excluded"] > 0
    checks = {c["name"]: c for c in result["decision"]["checks"]}
    assert not checks["beats the champion"]["passed"]  # the frozen golden labels expose it
    assert checks["golden rows unseen"]["passed"]
    assert "newest labelled window" in checks
    assert champion(server.url) == "1"

    promoted = keel("retrain", "--trigger", "drift", "--data", "through-replay.parquet", "--json", cwd=root)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    result = json.loads(promoted.stdout)
    assert result["action"] == "promoted" and result["champion"] == "3", result
    assert all(c["passed"] for c in result["decision"]["checks"])
    wait_for_version(server.url, "3")  # hot swap, no restart

    (root / "keel.yaml").write_text(CONFIG.format(cooldown=24, threads=TEST_THREADS))
    waited = keel("retrain", "--data", "through-replay.parquet", "--json", cwd=root)
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)
    assert result["action"] == "skipped" and "cooldown" in result["reason"] and result["challenger"] is None

    history = keel("history", cwd=root, check=True).stdout
    assert "refused" in history and "keel retrain --trigger drift" in history
