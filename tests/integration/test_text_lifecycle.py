"""A text model through the real CLI and server on sms_spam: plan, train, export with parity,
promote, serve texts, and monitor them (length and vocabulary drift)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATASETS, TEST_THREADS, keel, need_shared

pytestmark = pytest.mark.slow

SMS = SHARED_DATASETS / "sms_spam.parquet"


def test_sms_spam_from_plan_to_monitor(tmp_path: Path, start_server) -> None:
    need_shared(SMS.name)
    project = tmp_path / "sms"
    project.mkdir()
    # TF-IDF alone: with the text extra installed the automatic plan adds the transformer
    # strategies (tests/text_extra covers them)
    train = {"budget_seconds": 8, "families": ["linear"], "threads": TEST_THREADS}
    config = {"name": "sms-spam", "data": str(SMS), "target": "label", "seed": 42, "train": train}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))

    plan = keel("plan", cwd=project, check=True)
    assert "baseline,linear" in plan.stdout
    keel("train", cwd=project, check=True)
    exported = keel("export", cwd=project, check=True)
    assert "parity" in exported.stdout and "labels agree 100.0%" in exported.stdout
    keel("promote", cwd=project, check=True)
    evaluated = keel("evaluate", "--json", cwd=project)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr  # no check fails on an easy text task
    checks = {c["name"]: c["status"] for c in json.loads(evaluated.stdout)["checks"]}
    assert checks["leakage"] in ("pass", "warn") and checks["beats the baseline"] == "pass"
    schema = json.loads((project / ".keel" / "bundles" / "sms-spam" / "1" / "schema.json").read_text())
    assert [(c["name"], c["kind"]) for c in schema["columns"]] == [("text", "text")]

    server = start_server(project)
    texts = pd.read_parquet(SMS)
    spam = "WINNER!! You have been selected for a FREE prize. Call 09061701461 now to claim, T&C apply"
    reply = httpx.post(f"{server.url}/predict", json={"rows": [{"text": spam}, {"text": "See you at lunch?"}]})
    assert reply.status_code == 200, reply.text
    labels = [p["label"] for p in reply.json()["predictions"]]
    assert labels == ["spam", "ham"]
    bad = httpx.post(f"{server.url}/predict", json={"rows": [{"text": ["not", "a", "string"]}]})
    assert bad.status_code == 422 and "text" in bad.text

    sample = texts.sample(600, random_state=3)["text"].tolist()
    for start in range(0, len(sample), 100):
        rows = [{"text": t} for t in sample[start : start + 100]]
        assert httpx.post(f"{server.url}/predict", json={"rows": rows}).status_code == 200
    server.stop()

    quiet = keel("monitor", "--json", cwd=project)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    report = json.loads(quiet.stdout)
    (text,) = [c for c in report["columns"] if c["column"] == "text"]
    assert text["status"] == "ok" and text["vocabulary_psi"] is not None
