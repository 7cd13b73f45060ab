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
