"""The transformer text strategies through the real CLI and server on a 400-row sms_spam
sample: the plan by label count, training with LoRA and embeddings beside TF-IDF, export
with logit parity and INT8, serving the bundle (tokenizer included), batch scoring and
monitoring with embedding drift."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TEST_THREADS, keel

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("text_extra")]


def write_project(folder: Path, data: Path, **overrides: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "name": "sms-text",
        "data": str(data),
        "target": "label",
        "task": "text",
        "seed": 42,
        "train": {"budget_seconds": 90, "max_trials": 8},
        "text": {"epochs": 2, "max_length": 32, "learning_rate": 0.002},
        "export": {"quantize": True},
        "monitor": {"min_rows": 50},
    } | overrides
    config["train"] = {"threads": TEST_THREADS} | config["train"]  # type: ignore[operator]
    (folder / "keel.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_a_text_model_from_plan_to_monitor(tmp_path: Path, sms_file: Path, start_server) -> None:
    project = write_project(tmp_path / "auto", sms_file)
    plan = keel("plan", cwd=project, check=True)
    assert "baseline,linear,embeddings,lora" in plan.stdout and "100 to 10,000" in plan.stdout

    project = write_project(
        tmp_path / "sms", sms_file, train={"budget_seconds": 90, "max_trials": 8, "families": ["embeddings", "lora"]}
    )
    trained = keel("train", cwd=project, check=True)
    assert "embeddings" in trained.stdout and "lora" in trained.stdout
    store = project / ".keel"
    exported = keel("export", cwd=project, check=True)
    assert "max |PyTorch - ONNX| logits" in exported.stdout and "int8:" in exported.stdout
    bundle = store / "bundles" / "sms-text" / "1"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "tokenizer.json" in manifest["files"]
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["parity"]["output"] == "logits" and parity["parity"]["max_diff"] <= 1e-3
    quantization = parity["quantization"]
    assert {"fp32_accuracy", "int8_accuracy", "accuracy_drop", "budget", "accepted"} <= set(quantization)
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["family"] in ("embeddings", "lora") and metadata["tokens"]["column"] == "text"
    assert metadata["precision"] == ("int8" if quantization["accepted"] else "fp32")
    keel("promote", cwd=project, check=True)

    # the server runs that bundle, tokenizer included: its answers are the bundle's, row for row
    server = start_server(project)
    texts = ["WINNER!! Claim your FREE prize now, call 09061701461", "see you at lunch?", None, "Café ÉTÉ 🙂"]
    reply = httpx.post(f"{server.url}/predict", json={"rows": [{"text": t} for t in texts]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["version"] == "1" and len(body["predictions"]) == 4
    from keel.exporting.bundle import load_bundle
    from keel.serving.predictor import Predictor

    local = Predictor(load_bundle(bundle)).predict({"text": np.asarray(texts, dtype=object)})
    served = np.array([p["probabilities"]["spam"] for p in body["predictions"]])
    assert np.allclose(served, local.probabilities[:, 1], atol=1e-6)
    bad = httpx.post(f"{server.url}/predict", json={"rows": [{"text": ["a", "list"]}]})
    assert bad.status_code == 422 and "text" in bad.text
    sample = pd.read_parquet(sms_file)["text"].tolist()
    for start in range(0, 200, 50):
        rows = [{"text": t} for t in sample[start : start + 50]]
        assert httpx.post(f"{server.url}/predict", json={"rows": rows}).status_code == 200
    server.stop()

    watched = keel("monitor", "--json", cwd=project)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    report = json.loads(watched.stdout)
    meaning = report["embeddings"]
    assert [e["column"] for e in meaning] == ["text"] and meaning[0]["encoder"] == "all-MiniLM-L6-v2"
    assert meaning[0]["status"] == "ok", meaning  # the same kind of texts as training

    scored = keel("predict", str(sms_file), "--output", str(tmp_path / "scored.parquet"), cwd=project, check=True)
    assert scored.returncode == 0
    out = pd.read_parquet(tmp_path / "scored.parquet")
    assert len(out) == 400 and out["prediction"].isin(["ham", "spam"]).all() and (out["model_version"] == "1").all()


def test_a_model_id_that_is_not_here_is_one_clear_line(tmp_path: Path, sms_file: Path) -> None:
    project = write_project(
        tmp_path / "hub",
        sms_file,
        train={"budget_seconds": 30, "families": ["embeddings"]},
        text={"encoder": "bert-base-uncased"},
    )
    result = keel("train", cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("never downloads" in line for line in lines) and "Traceback" not in result.stderr
