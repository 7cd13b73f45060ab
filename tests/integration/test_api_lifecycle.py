"""The Python API through the whole lifecycle on the shipped adult sample, with real MLflow
(SQLite), real ONNX Runtime and the real ASGI app (in-process via Starlette's TestClient)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from starlette.testclient import TestClient

import keel
from conftest import copy_example
from keel.errors import ModelNotFoundError, RegistryError
from keel.exporting.bundle import load_bundle

FEATURES = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
]


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # 12 s: creating a fresh MLflow store takes 2 to 4.5 s of the budget here, triage about 2 s, and a trial
    # must fit in the rest
    root = copy_example(tmp_path_factory.mktemp("api") / "project", budget=12)
    project = keel.load_project(root)
    trained = keel.train(project)
    exported = keel.export(project)
    promoted = keel.promote(project)
    yield {"project": project, "trained": trained, "exported": exported, "promoted": promoted, "root": root}
    mp.undo()


def rows(root: Path, n: int, offset: int = 0) -> list[dict[str, object]]:
    frame = pd.read_parquet(root / "adult_sample.parquet")[FEATURES].iloc[offset : offset + n]
    return json.loads(frame.to_json(orient="records"))


def test_training_tracks_every_family_trial_and_curve(lifecycle: dict) -> None:
    trained, project = lifecycle["trained"], lifecycle["project"]
    families = [c.family for c in trained.candidates]
    assert families[:4] == ["baseline", "linear", "lightgbm", "xgboost"]
    assert families[4:] in ([], ["ensemble"])  # when selection on validation keeps two families or more
    assert trained.best.family != "baseline"
    assert trained.best.metrics["roc_auc"] > 0.85 > trained.candidates[0].metrics["roc_auc"]
    assert (
        trained.best.metrics["roc_auc_ci_low"]
        < trained.best.metrics["roc_auc"]
        < trained.best.metrics["roc_auc_ci_high"]
    )
    client = MlflowClient(project.tracking_uri)
    parent = client.get_run(trained.parent_run_id)
    assert parent.data.tags["keel.role"] == "parent" and "plan" in parent.data.params
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.parent_run_id}'")
    roles = [r.data.tags["keel.role"] for r in children]
    assert roles.count("final") == len(families) and roles.count("trial") >= 1
    for candidate in trained.candidates:
        run = client.get_run(candidate.run_id)
        assert {"roc_auc", "f1", "accuracy", "roc_auc_ci_low"} <= set(run.data.metrics)
        assert run.data.tags["keel.data_digest"] == trained.data.digest
        assert run.data.tags["keel.version"] == keel.__version__
        assert run.data.tags["keel.seed"] == "42"
        assert run.data.params["family"] == candidate.family
    booster = next(c for c in trained.candidates if c.family == "lightgbm")
    curve = client.get_metric_history(booster.run_id, "valid_loss")
    assert len(curve) == len(booster.curves["valid"]) > 10
    assert trained.version.version == "1"
    assert trained.version.tags["keel.family"] == trained.best.family


def test_export_writes_a_verified_bundle_with_parity(lifecycle: dict) -> None:
    exported = lifecycle["exported"]
    assert exported.parity.passed and exported.parity.max_diff <= 1e-5
    assert exported.parity.label_agreement == 1.0
    bundle = load_bundle(exported.bundle, exported.digest)
    assert bundle.metadata["classes"] == ["<=50K", ">50K"]
    assert bundle.schema.names == FEATURES
    assert "age" in bundle.profile and "keel_score" in bundle.profile


def test_first_promotion_says_there_was_no_champion_to_compare(lifecycle: dict) -> None:
    change = lifecycle["promoted"]
    assert (change.version, change.previous) == ("1", None)
    assert "first champion" in change.note and "golden set" in change.note


def test_server_predicts_with_version_validates_and_logs(lifecycle: dict) -> None:
    project, root = lifecycle["project"], lifecycle["root"]
    with TestClient(keel.build_app(project)) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "adult-income", "version": "1"}
        reply = client.post("/predict", json={"rows": rows(root, 5)})
        assert reply.status_code == 200
        body = reply.json()
        assert (body["model"], body["version"]) == ("adult-income", "1")
        assert len(body["predictions"]) == 5
        first = body["predictions"][0]
        assert first["label"] in ("<=50K", ">50K")
        assert abs(sum(first["probabilities"].values()) - 1) < 1e-5
        bad = rows(root, 1)[0] | {"age": "forty"}
        reply = client.post("/predict", json={"rows": [bad]})
        assert reply.status_code == 422
        assert reply.json()["problems"] == [
            {"row": 0, "column": "age", "problem": "must be a number or null, got 'forty' (string)"}
        ]
        malformed = client.post("/predict", content=b"{oops", headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert client.post("/predict", json={"records": []}).status_code == 422
    log = list((project.store_path / "predictions" / "adult-income").glob("*.parquet"))
    logged = pd.concat(pd.read_parquet(f) for f in log)
    assert len(logged) == 5
    assert set(logged["keel_version"]) == {"1"}
    assert logged["age"].tolist() == [r["age"] for r in rows(root, 5)]


def test_batch_predict_matches_the_server(lifecycle: dict, tmp_path: Path) -> None:
    project, root = lifecycle["project"], lifecycle["root"]
    result = keel.predict_file(project, root / "adult_sample.parquet", tmp_path / "out.parquet")
    out = pd.read_parquet(result.output)
    assert result.rows == len(out) == 5000
    with TestClient(keel.build_app(project)) as client:
        served = client.post("/predict", json={"rows": rows(root, 20)}).json()["predictions"]
    np.testing.assert_allclose([p["probabilities"][">50K"] for p in served], out["probability_>50K"][:20], atol=1e-6)
    assert set(out["model_version"]) == {"1"}


def test_monitor_flags_a_shifted_population(lifecycle: dict) -> None:
    project, root = lifecycle["project"], lifecycle["root"]
    shifted = [r | {"age": int(r["age"]) + 25, "hours-per-week": 70} for r in rows(root, 300, offset=100)]
    with TestClient(keel.build_app(project)) as client:
        for start in range(0, 300, 50):
            assert client.post("/predict", json={"rows": shifted[start : start + 50]}).status_code == 200
    report, path = keel.monitor(project)
    importance = {c.column: c.importance for c in report.columns if c.column in FEATURES}
    assert set(importance) == set(FEATURES) and abs(sum(importance.values()) - 1) < 1e-9  # measured at export
    statuses = {c.column: c.status for c in report.columns}
    assert statuses["age"] == "alert" and statuses["hours-per-week"] == "alert"
    assert statuses["sex"] == "ok" and statuses["race"] == "ok"
    assert path.is_file() and json.loads(path.read_text())["rows"] == report.rows


def test_monitor_without_enough_traffic_says_so(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "fresh")
    project = keel.load_project(root)
    with pytest.raises(RegistryError, match="no promoted version"):
        keel.monitor(project)


def test_unknown_model_and_version_are_clear(lifecycle: dict) -> None:
    project = lifecycle["project"]
    with pytest.raises(ModelNotFoundError, match="model 'adlt-income' is not in the registry.*adult-income"):
        keel.export(project, "adlt-income@1")
    with pytest.raises(ModelNotFoundError, match="has no version 9.*Versions: 1"):
        keel.promote(project, "9")
    with pytest.raises(RegistryError, match="already the champion"):
        keel.promote(project, "1")


def infer_request(root: Path, n: int) -> dict[str, object]:
    frame = pd.read_parquet(root / "adult_sample.parquet")[FEATURES].iloc[:n]
    inputs = []
    for column in FEATURES:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        values = json.loads(frame[column].to_json(orient="values"))
        inputs.append({"name": column, "shape": [n, 1], "datatype": "FP32" if numeric else "BYTES", "data": values})
    return {"id": "req-1", "inputs": inputs}


def test_open_inference_protocol_v2(lifecycle: dict) -> None:
    project, root = lifecycle["project"], lifecycle["root"]
    with TestClient(keel.build_app(project)) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        meta = client.get("/v2/models/adult-income").json()
        assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == FEATURES
        assert {i["datatype"] for i in meta["inputs"]} == {"FP32", "BYTES"}
        assert client.get("/v2/models/other").status_code == 404
        reply = client.post("/v2/models/adult-income/infer", json=infer_request(root, 3))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert (body["model_name"], body["model_version"], body["id"]) == ("adult-income", "1", "req-1")
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["probabilities"]["shape"] == [3, 2] and len(outputs["label"]["data"]) == 3
        simple = client.post("/predict", json={"rows": rows(root, 3)}).json()["predictions"]
        assert outputs["label"]["data"] == [p["label"] for p in simple]  # one graph behind both protocols
        bad = infer_request(root, 2)
        bad["inputs"][0]["data"] = ["old", 30]
        del bad["inputs"][1]
        refused = client.post("/v2/models/adult-income/infer", json=bad)
        assert refused.status_code == 422
        problems = refused.json()["problems"]
        assert {"row": None, "column": "workclass", "problem": "is missing (one input tensor per column)"} in problems


def test_metrics_admin_token_and_size_limit(lifecycle: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    project, root = lifecycle["project"], lifecycle["root"]
    monkeypatch.delenv("KEEL_ADMIN_TOKEN", raising=False)
    with TestClient(keel.build_app(project)) as client:
        client.post("/predict", json={"rows": rows(root, 4)})
        client.post("/predict", json={"rows": [{"age": 1}]})
        text = client.get("/metrics").text
        assert 'keel_requests_total{endpoint="predict",route="champion",version="1"}' in text
        assert 'keel_rows_total{version="1"} 4.0' in text
        assert 'keel_errors_total{endpoint="predict",route="champion",status="422",version="1"} 1.0' in text
        assert "keel_request_seconds_bucket" in text and "keel_prediction_score_bucket" in text
        assert client.post("/admin/reload").status_code == 403  # no token configured: admin is off
    monkeypatch.setenv("KEEL_ADMIN_TOKEN", "s3cret")
    small = keel.load_project(root)
    with TestClient(keel.build_app(small)) as client:
        assert client.post("/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
        ok = client.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["version"] == "1"
        huge = client.post("/predict", content=b" " * (17 * 2**20), headers={"content-type": "application/json"})
        assert huge.status_code == 413
