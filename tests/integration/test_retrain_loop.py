"""The monitor-and-retrain loop on real, time-ordered data (electricity, ../shared/datasets):
train on the first 150 days, replay days 400 to 429 through the running server, the monitor
flags the drift, measures every watched metric from labels joined by id and withholds the
label-free estimate (the inputs moved too far for it); a retrain on data where 30% of the
newer labels are flipped is refused by the label-quality check (the champion stays); a
retrain on the true data that refreshes the golden set from the newest labelled rows is
promoted and the server swaps to it; the refresh is in the history; the cooldown then stops
a further run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATASETS, TEST_THREADS, keel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data("electricity.parquet"),
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
    newer = (corrupted.day_index >= FIRST_DAYS).to_numpy()
    flipped = newer & (np.random.default_rng(0).random(len(corrupted)) < 0.3)  # 30% of the new labels
    corrupted.loc[flipped, "class"] = 1 - corrupted.loc[flipped, "class"]
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


def golden_digest(root: Path) -> str:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / '.keel' / 'mlflow.db'}")
    return str(client.get_registered_model("electricity").tags["keel.golden_sha256"])


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
    watched = {w["metric"]: w for w in performance["watched"]}
    assert set(watched) == {"roc_auc", "accuracy", "precision", "recall"}
    assert all(w["low"] <= w["value"] <= w["high"] and w["reference_se"] > 0 for w in watched.values())
    assert performance["estimated"] == {} and "domain classifier" in performance["estimate_hidden"]
    assert report["tests"] >= 8 and report["alert_alpha"] == pytest.approx(min(0.001, 0.01 / report["tests"]))

    refused = keel("retrain", "--trigger", "drift", "--data", "corrupted.parquet", "--json", cwd=root)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    result = json.loads(refused.stdout)
    assert result["action"] == "refused" and result["champion"] == "1" and result["challenger"] == "2"
    assert result["golden_excluded"] > 0
    checks = {c["name"]: c for c in result["decision"]["checks"]}
    assert not checks["label quality"]["passed"] and "look corrupted" in checks["label quality"]["detail"]
    assert checks["label quality"]["numbers"]["noise_estimate"] > 0.1  # for the right reason
    assert checks["golden rows unseen"]["passed"] and "newest labelled window" in checks
    assert "--force" not in result["reason"].split("keel promote")[0]  # retrain has no --force of its own
    assert champion(server.url) == "1"

    # With retrain.approval: required, a challenger that passes waits for a person's yes.
    (root / "keel.yaml").write_text(CONFIG.format(cooldown=0, threads=TEST_THREADS) + "  approval: required\n")
    held = keel("retrain", "--trigger", "drift", "--data", "through-replay.parquet", "--json", cwd=root)
    assert held.returncode == 0, held.stdout + held.stderr
    result = json.loads(held.stdout)
    assert result["action"] == "awaiting approval" and result["champion"] == "1", result
    assert all(c["passed"] for c in result["decision"]["checks"]), result["decision"]["checks"]
    assert champion(server.url) == "1"
    unexplained = keel("approve", "electricity@3", cwd=root)
    assert unexplained.returncode == 5 and "--reason" in unexplained.stderr
    approved = keel("approve", "electricity@3", "--reason", "read the report", "--detach", cwd=root)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    rollout = json.loads(keel("rollout", "status", "--json", cwd=root, check=True).stdout)
    assert rollout["status"] == "running" and rollout["version"] == "3" and rollout["reason"] == "read the report"
    again = keel("approve", "electricity@3", "--reason", "twice", cwd=root)
    assert again.returncode == 5 and "not awaiting approval" in again.stderr
    keel("rollout", "abort", "--reason", "promote directly in this test", cwd=root, check=True)
    (root / "keel.yaml").write_text(CONFIG.format(cooldown=0, threads=TEST_THREADS))
    actions = [e["action"] for e in json.loads(keel("history", "--json", cwd=root, check=True).stdout)]
    assert actions[-3:] == ["awaiting approval", "approve", "rollout abort"], actions

    promoted = keel("retrain", "--trigger", "drift", "--data", "through-replay.parquet", "--json", cwd=root)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    result = json.loads(promoted.stdout)
    assert result["action"] == "promoted" and result["champion"] == "4", result
    assert all(c["passed"] for c in result["decision"]["checks"]), result["decision"]["checks"]
    wait_for_version(server.url, "4")  # hot swap, no restart

    # The golden set moves forward: the newest labelled days are kept out of training and, their
    # labels being sound, become the yardstick, whatever the gate decides about this challenger.
    before = golden_digest(root)
    refreshed = keel("retrain", "--data", "through-replay.parquet", "--refresh-golden", "--json", cwd=root)
    assert refreshed.returncode in (0, 5), refreshed.stdout + refreshed.stderr
    result = json.loads(refreshed.stdout)
    assert result["golden_candidate"] >= 50 and result["challenger"] == "5"
    checks = {c["name"]: c for c in result["decision"]["checks"]}
    assert checks["label quality"]["passed"] and checks["golden rows unseen"]["passed"]
    assert "golden set refreshed" in result["decision"]["note"]
    assert checks["beats the champion"]["numbers"]["rows"] == result["golden_candidate"]
    events = json.loads(keel("history", "--json", cwd=root, check=True).stdout)
    refresh = [e for e in events if e["action"] == "golden refresh"]
    assert len(refresh) == 1 and refresh[0]["version"] == "5"
    assert golden_digest(root) != before

    (root / "keel.yaml").write_text(CONFIG.format(cooldown=24, threads=TEST_THREADS))
    waited = keel("retrain", "--data", "through-replay.parquet", "--json", cwd=root)
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)
    assert result["action"] == "skipped" and "cooldown" in result["reason"] and result["challenger"] is None

    history = keel("history", cwd=root, check=True).stdout
    assert "refused" in history and "keel retrain --trigger drift" in history
