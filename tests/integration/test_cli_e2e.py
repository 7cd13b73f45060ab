"""The real CLI and the real server, end to end, in a temporary project directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import TEST_BUDGET_SECONDS, copy_example, keel

pytestmark = pytest.mark.slow

FORBIDDEN_IN_SERVER = {"sklearn", "mlflow", "lightgbm", "skl2onnx", "onnxmltools", "skops", "optuna"}


def rows(project: Path, n: int) -> list[dict[str, object]]:
    frame = pd.read_parquet(project / "adult_sample.parquet").drop(columns=["income", "split"]).head(n)
    return json.loads(frame.to_json(orient="records"))


def logged(project: Path) -> pd.DataFrame:
    files = sorted((project / ".keel" / "predictions" / "adult-income").glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_train_export_promote_serve_rollback(project_dir: Path, start_server) -> None:
    analyzed = keel("analyze", "adult_sample.parquet", "--target", "income", cwd=project_dir, check=True, fresh=True)
    assert "5,000 rows" in analyzed.stdout and "<=50K 75.5%" in analyzed.stdout
    trained = keel("train", cwd=project_dir, check=True, fresh=True)
    assert (
        "registered adult-income@1 (" in trained.stdout and f"of a {TEST_BUDGET_SECONDS:g} s budget" in trained.stdout
    )
    exported = keel("export", cwd=project_dir, check=True, fresh=True)
    assert "parity: max |native - ONNX| probabilities" in exported.stdout
    promoted = keel("promote", cwd=project_dir, check=True, fresh=True)
    assert "champion is now adult-income@1" in promoted.stdout and "first champion" in promoted.stdout

    server = start_server(project_dir)
    reply = httpx.post(f"{server.url}/predict", json={"rows": rows(project_dir, 4)}, timeout=10)
    assert reply.status_code == 200
    assert reply.json()["version"] == "1" and len(reply.json()["predictions"]) == 4
    bad = httpx.post(f"{server.url}/predict", json={"rows": [{"age": 1}]}, timeout=10)
    assert bad.status_code == 422 and "column 'workclass'" in bad.json()["error"]
    garbage = httpx.post(f"{server.url}/predict", content=b"not json", timeout=10)
    assert garbage.status_code == 400 and garbage.json()["error"].startswith("malformed JSON body")
    assert server.stop() == 0
    assert not FORBIDDEN_IN_SERVER & server.imported_modules()
    assert "onnxruntime" in server.imported_modules()
    log = logged(project_dir)
    assert len(log) == 4 and set(log["keel_version"]) == {"1"}
    assert {"keel_ts", "keel_label", "keel_score", "keel_request_id", "age"} <= set(log.columns)

    quiet = keel("predict", "adult_sample.parquet", "-o", "quiet.csv", "--no-log", cwd=project_dir, check=True)
    assert "logged" not in quiet.stdout and len(logged(project_dir)) == 4
    scored = keel("predict", "adult_sample.parquet", "-o", "scored.csv", cwd=project_dir, check=True)
    assert "scored 5,000 rows with adult-income@1" in scored.stdout and "logged for keel monitor" in scored.stdout
    assert len(pd.read_csv(project_dir / "scored.csv")) == 5000
    batch = logged(project_dir).query("keel_route == 'batch'")  # batch scoring is monitored like serving
    assert len(batch) == 5000 and set(batch["keel_version"]) == {"1"} and batch["keel_score"].between(0, 1).all()

    # A second model on another split trained on the golden rows: refused unless forced.
    config = project_dir / "keel.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 7"))
    keel("train", cwd=project_dir, check=True)
    keel("export", "adult-income@2", cwd=project_dir, check=True)
    refused = keel("promote", "2", cwd=project_dir)
    assert refused.returncode == 5 and "refused to promote adult-income@2" in refused.stderr
    assert "golden rows unseen: " in refused.stderr  # seed 7 trained on seed 42's test rows
    assert "Traceback" not in refused.stderr
    forced = keel("promote", "2", "--force", "--reason", "new split", cwd=project_dir, check=True)
    assert "champion is now adult-income@2 (was @1)" in forced.stdout

    server = start_server(project_dir)
    assert httpx.get(f"{server.url}/health", timeout=10).json()["version"] == "2"
    server.stop()
    rolled = keel("rollback", cwd=project_dir, check=True)
    assert "champion is now adult-income@1 (was @2)" in rolled.stdout
    server = start_server(project_dir)
    reply = httpx.post(f"{server.url}/predict", json={"rows": rows(project_dir, 1)}, timeout=10)
    assert reply.json()["version"] == "1"
    sample = rows(project_dir, 300)
    for start in range(0, 300, 100):
        assert httpx.post(f"{server.url}/predict", json={"rows": sample[start : start + 100]}, timeout=10).is_success
    server.stop()
    assert logged(project_dir)["keel_version"].tolist()[-1] == "1"

    watched = keel("monitor", "--window", "1d", "--json", "--fail-on-drift", cwd=project_dir)
    assert watched.returncode in (0, 10), watched.stderr  # 10 only when something alerts
    report = json.loads(watched.stdout)
    assert report["rows"] == 5305 and len(report["windows"]) == 1 and report["windows"][0]["rows"] == 5305
    assert {c["column"] for c in report["columns"]} >= {"age", "workclass", "keel_score"}
    assert all(c["chance_threshold"] > 0 for c in report["columns"])
    pages = list((project_dir / ".keel" / "reports").glob("monitor-*.html"))
    page = pages[0].read_text() if len(pages) == 1 else ""
    performance = report["windows"][0].get("performance") or {}
    if performance.get("estimated"):  # drift, histograms, the label-free estimates over time
        assert page.count("<img") == 3 and "Performance over time" in page
    else:  # withheld when the inputs moved too far for them (a model trained on a busy machine differs)
        assert page.count("<img") == 2 and performance.get("estimate_hidden"), performance
    assert 0.0 <= report["domain"]["auc"] <= 1.0 and report["domain"]["reference_rows"] > 300
    assert set(report["performance"]["estimated"]) == {"accuracy", "roc_auc"}
    assert {g["group"] for g in report["slices"] if g["column"] == "sex"} >= {"Female", "Male"}


def test_run_chains_the_stages_and_says_where_to_look(tmp_path: Path) -> None:
    # The example's own 30 s budget: a fresh `keel run` pays its imports inside the budget, and
    # on a busy machine 15 s left time for the baseline alone, which the gate then refused.
    project_dir = copy_example(tmp_path / "project", budget=30)
    started = time.monotonic()
    result = keel("run", cwd=project_dir, check=True, fresh=True)  # exit 5 if the gate refused
    assert "registered adult-income@1" in result.stdout, result.stdout
    assert "champion is now adult-income@1" in result.stdout, result.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert time.monotonic() - started < 120
