"""The real server: hot swap under load on promote and rollback, and a third-party v2 client."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from conftest import copy_example, keel

pytestmark = pytest.mark.slow


def first_rows(project: Path, n: int) -> list[dict[str, object]]:
    frame = pd.read_parquet(project / "adult_sample.parquet").drop(columns=["income", "split"]).iloc[:n]
    return json.loads(frame.to_json(orient="records"))


def wait_for_version(url: str, version: str, timeout: float = 15) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if httpx.get(f"{url}/health", timeout=5).json()["version"] == version:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the server did not switch to version {version} within {timeout} s")


def test_hot_swap_under_load_and_a_tritonclient_call(tmp_path: Path, start_server) -> None:
    project = copy_example(tmp_path / "swap")
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"]["families"] = ["linear"]
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    keel("train", cwd=project, check=True)
    keel("export", cwd=project, check=True)
    keel("promote", cwd=project, check=True)
    server = start_server(project)

    body = {"rows": first_rows(project, 2)}
    seen: dict[str, int] = {}
    errors: list[str] = []
    stop = threading.Event()

    def load() -> None:  # requests in flight through every swap
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    reply = client.post(f"{server.url}/predict", json=body)
                    if reply.status_code != 200:
                        errors.append(f"{reply.status_code}: {reply.text[:200]}")
                        continue
                    version = reply.json()["version"]
                    seen[version] = seen.get(version, 0) + 1
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        config["train"]["families"] = ["lightgbm"]
        (project / "keel.yaml").write_text(yaml.safe_dump(config))
        keel("train", cwd=project, check=True)
        keel("export", cwd=project, check=True)
        keel("promote", "--force", "--reason", "swap drill", cwd=project, check=True)
        wait_for_version(server.url, "2")
        keel("rollback", "--reason", "swap drill", cwd=project, check=True)
        wait_for_version(server.url, "1")
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert seen.get("1", 0) > 0 and seen.get("2", 0) > 0, seen
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'keel_reloads_total{result="swapped"} 2.0' in metrics
    assert 'keel_model_info{model="adult-income",version="1"} 1.0' in metrics

    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_model_metadata("adult-income")
    inputs = []
    frame = pd.read_parquet(project / "adult_sample.parquet").iloc[:3]
    for spec in meta["inputs"]:
        values = frame[spec["name"]].to_numpy()
        if spec["datatype"] == "FP32":
            tensor = triton.InferInput(spec["name"], [3, 1], "FP32")
            tensor.set_data_from_numpy(values.astype(np.float32).reshape(3, 1), binary_data=False)
        else:
            tensor = triton.InferInput(spec["name"], [3, 1], "BYTES")
            tensor.set_data_from_numpy(values.astype(object).reshape(3, 1), binary_data=False)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
    result = client.infer("adult-income", inputs, outputs=outputs)
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("probabilities").shape == (3, 2)
    assert set(result.as_numpy("label").astype(str)) <= {"<=50K", ">50K"}


def test_canary_is_sticky_by_key_and_shadow_is_logged_but_never_answers(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    import keel as keel_api
    from keel.monitoring.log import read_log

    project = copy_example(tmp_path / "routes")
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"]["families"] = ["linear"]
    config["serving"] |= {"canary_share": 0.5, "canary_key": "education", "reload_poll_seconds": 0.2}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    for families in (["linear"], ["lightgbm"]):
        config["train"]["families"] = families
        (project / "keel.yaml").write_text(yaml.safe_dump(config))
        keel_cli = keel_module_cli(project)
        keel_cli("train")
        keel_cli("export")
    keel_cli("promote", "1")
    rows = first_rows(project, 200)

    def versions_by_key(client: TestClient) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for row in rows:
            reply = client.post("/predict", json={"rows": [row]})
            assert reply.status_code == 200, reply.text
            seen.setdefault(str(row["education"]), set()).add(reply.json()["version"])
        return seen

    with TestClient(keel_api.build_app(keel_api.load_project(project))) as client:
        assert versions_by_key(client) == {k: {"1"} for k in versions_by_key(client)}
        keel_cli("alias", "set", "canary", "2", "--reason", "try lightgbm")
        deadline = time.monotonic() + 10
        while "2" not in set().union(*versions_by_key(client).values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = versions_by_key(client)
        assert all(len(v) == 1 for v in seen.values()), seen  # sticky: one version per key value
        assert {"1", "2"} <= set().union(*seen.values())
        keel_cli("alias", "remove", "canary")
        keel_cli("alias", "set", "shadow", "2")
        time.sleep(1.0)
        answered = [client.post("/predict", json={"rows": [row]}).json() for row in rows[:10]]
        assert {a["version"] for a in answered} == {"1"}  # the shadow never answers
        assert client.get("/health").json()["status"] == "ok"
        log_dir = project / ".keel" / "predictions" / "adult-income"
        log_dir.rename(log_dir.with_name("aside"))
        log_dir.write_text("not a directory")  # every write of the log fails now
        try:
            for _ in range(40):
                assert client.post("/predict", json={"rows": rows[:5]}).status_code == 200  # still answering
                health = client.get("/health").json()
                if health["status"] == "degraded":
                    break
                time.sleep(0.1)
            assert health["status"] == "degraded" and health["prediction_log"]["errors"] >= 1, health
            assert "keel_predlog_errors_total" in client.get("/metrics").text
        finally:
            log_dir.unlink()
            log_dir.with_name("aside").rename(log_dir)
        deadline = time.monotonic() + 15
        while client.get("/health").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/health").json()["status"] == "ok"  # it resumed by itself
    wrong = keel("alias", "set", "champion", "2", cwd=project)
    assert wrong.returncode == 2 and "keel promote" in wrong.stderr

    log = read_log(project / ".keel" / "predictions" / "adult-income", shadow=True).to_pandas()
    shadow = log[log["keel_route"] == "shadow"]
    assert set(shadow["keel_version"]) == {"2"} and len(shadow) >= 10
    answered_ids = {a["request_id"] for a in answered}
    assert answered_ids <= set(shadow["keel_request_id"])  # the same requests, scored twice
    monitored = read_log(project / ".keel" / "predictions" / "adult-income").to_pandas()
    assert "shadow" not in set(monitored["keel_route"].dropna())
    events = json.loads(keel("history", "--json", cwd=project, check=True).stdout)
    assert [e["action"] for e in events][-3:] == ["set canary", "remove canary", "set shadow"]


def keel_module_cli(project: Path):
    def run(*args: str) -> None:
        keel(*args, cwd=project, check=True)

    return run


@pytest.mark.serial
def test_kill_9_loses_at_most_the_last_flush_interval(tmp_path: Path, start_server) -> None:
    from keel.monitoring.log import read_log

    project = copy_example(tmp_path / "kill")
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"]["families"] = ["linear"]
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    for step in ("train", "export", "promote"):
        keel(step, cwd=project, check=True)
    server = start_server(project)
    body = {"rows": first_rows(project, 3)}
    answered: list[tuple[str, float]] = []
    with httpx.Client(timeout=10) as client:
        for _ in range(30):
            answered.append((client.post(f"{server.url}/predict", json=body).json()["request_id"], time.monotonic()))
        time.sleep(1.5)  # longer than the 1 s flush interval
        for _ in range(10):  # these may be lost: the kill comes before their flush
            answered.append((client.post(f"{server.url}/predict", json=body).json()["request_id"], time.monotonic()))
    killed_at = time.monotonic()
    server.process.kill()
    server.process.wait()

    log = read_log(project / ".keel" / "predictions" / "adult-income").to_pandas()  # readable: whole segments only
    logged = set(log["keel_request_id"])
    older = [request for request, at in answered if at < killed_at - 1.2]
    assert len(older) >= 30 and set(older) <= logged
    assert len(log) == 3 * len(logged)  # no request half-written
    assert not list((project / ".keel" / "predictions" / "adult-income").glob(".*.tmp"))


def test_a_refused_swap_is_reported_and_retried_until_it_loads(tmp_path: Path) -> None:
    """The aliases point at a bundle that fails verification: the server keeps serving what it
    has, says so on /health, and loads the new one by itself once its files are whole again."""
    from starlette.testclient import TestClient

    import keel as keel_api
    from keel.store import Store, read_serving_aliases, write_serving_aliases

    project = copy_example(tmp_path / "refused")
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"]["families"] = ["linear"]
    config["serving"] |= {"reload_poll_seconds": 0.1}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    for seed in (1, 2):
        config["seed"] = seed
        (project / "keel.yaml").write_text(yaml.safe_dump(config))
        keel("train", cwd=project, check=True)
        keel("export", cwd=project, check=True)
    keel("promote", "1", "--force", "--reason", "setup", cwd=project, check=True)
    keel("promote", "2", "--force", "--reason", "setup", cwd=project, check=True)
    keel("rollback", cwd=project, check=True)
    store = Store(project / ".keel")
    served = read_serving_aliases(store, "adult-income")
    model = store.bundle_dir("adult-income", "2") / "model.onnx"
    original = model.read_bytes()
    with TestClient(keel_api.build_app(keel_api.load_project(project))) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "adult-income", "version": "1"}
        model.write_bytes(original[:-10])  # version 2's graph truncated on disk
        write_serving_aliases(store, "adult-income", served.aliases | {"champion": "2"}, served.digests)
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["version"] == "1", health
        assert "tampered or truncated" in health["swap_refused"]["reason"] and health["swap_refused"]["serving"] == "1"
        row = first_rows(project, 1)
        assert client.post("/predict", json={"rows": row}).json()["version"] == "1"  # still answering
        model.write_bytes(original)  # repaired; the aliases file is not touched again
        deadline = time.monotonic() + 20
        while client.get("/health").json()["version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/health").json() == {"status": "ok", "model": "adult-income", "version": "2"}
