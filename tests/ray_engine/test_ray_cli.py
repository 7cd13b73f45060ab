"""The Ray engine for real, through the CLI and the server: search on Ray Tune, batch scoring
on Ray Data, replicas on Ray Serve, each against the local engine on the same data.

These tests start a local Ray instance (``engine.num_cpus: 2``). Ray listens on every
interface, so they run only inside a private network namespace with nothing but loopback:
``tests/integration/test_ray_engine.py`` starts them there (``unshare -n``, as root) and
they are not collected anywhere else (tests/conftest.py).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import copy_example, keel

pytestmark = pytest.mark.slow

MAX_TRIALS = 10


def ray_project(target: Path) -> Path:
    project = copy_example(target, budget=120)
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"] |= {"families": ["baseline", "lightgbm"], "max_trials": MAX_TRIALS, "ensemble": False}
    config["engine"] = {"num_cpus": 2}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    return project


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same project, seed and data trained twice: its trials on Ray, and here."""
    root = tmp_path_factory.mktemp("engines")
    on_ray, local = ray_project(root / "ray"), ray_project(root / "local")
    keel("train", "--engine", "ray", cwd=on_ray, check=True)
    keel("train", "--engine", "local", cwd=local, check=True)
    for project in (on_ray, local):
        keel("export", cwd=project, check=True)
        keel("promote", cwd=project, check=True)
    return {"ray": on_ray, "local": local}


def studies(project: Path) -> dict[str, optuna.Study]:
    """Each family's latest study (names end in family|vN|number)."""
    storage = f"sqlite:///{project / '.keel' / 'optuna.db'}"
    names = sorted(
        (s.study_name for s in optuna.get_all_study_summaries(storage)), key=lambda n: int(n.rsplit("|", 1)[1])
    )
    return {name.split("|")[-3]: optuna.load_study(study_name=name, storage=storage) for name in names}


def trial_runs(project: Path) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{project / '.keel' / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True, filter_string="tags.`keel.role` = 'trial'")


def test_search_on_ray_matches_the_local_engine_at_the_same_trials(projects: dict[str, Path]) -> None:
    best = {}
    for engine, project in projects.items():
        study = studies(project)["lightgbm"]
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) == MAX_TRIALS, f"{engine}: {len(finished)} trials"
        assert any(t.state == optuna.trial.TrialState.COMPLETE for t in finished)
        best[engine] = study.best_value
    # Same seed, same data, same TPE space and pruner. Ray runs two trials at once, so TPE
    # sees results in a different order: the scores differ by search noise, not by engine.
    # 0.01 AUC is below one standard error of AUC on this 750-row validation set.
    assert abs(best["ray"] - best["local"]) <= 0.01, best

    runs = {engine: trial_runs(project) for engine, project in projects.items()}
    for engine, frame in runs.items():
        lightgbm = frame[frame["tags.keel.family"] == "lightgbm"]
        assert len(lightgbm) == MAX_TRIALS, engine  # every Ray trial tracked, as local ones are
        assert lightgbm["metrics.seconds"].gt(0).all()
    tracked = {
        engine: {c for c in frame.columns if c.startswith(("tags.keel", "params."))} for engine, frame in runs.items()
    }
    assert tracked["ray"] == tracked["local"]


def test_a_search_on_ray_resumes_from_the_study(projects: dict[str, Path], tmp_path: Path) -> None:
    project = ray_project(tmp_path / "resume")
    keel("train", "--engine", "ray", cwd=project, check=True)
    before = {t.number: t.params for t in studies(project)["lightgbm"].trials if t.state.is_finished()}
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["train"]["max_trials"] = MAX_TRIALS + 4
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    keel("train", "--engine", "ray", "--resume", cwd=project, check=True)
    after = {t.number: t.params for t in studies(project)["lightgbm"].trials if t.state.is_finished()}
    assert len(after) == MAX_TRIALS + 4
    assert all(after[number] == params for number, params in before.items())  # kept, then continued


def test_predict_on_ray_data_matches_the_local_engine_row_for_row(projects: dict[str, Path]) -> None:
    project = projects["ray"]
    sample = pq.read_table(project / "adult_sample.parquet")
    parts = project / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, sample.num_rows, 1_300)):
        pq.write_table(sample.slice(start, 1_300), parts / f"part-{i}.parquet")

    scored = keel("predict", "parts", "-o", "scored", "--engine", "ray", cwd=project, check=True)
    assert "5,000 rows" in scored.stdout, scored.stdout
    keel("predict", "adult_sample.parquet", "-o", "local.parquet", cwd=project, check=True)

    files = sorted((project / "scored").glob("*.parquet"))
    assert files, "no partitions written"
    on_ray = pa.concat_tables(pq.read_table(f) for f in files).replace_schema_metadata(None)
    local = pq.read_table(project / "local.parquet").replace_schema_metadata(None)
    assert on_ray.schema == local.schema
    assert on_ray.num_rows == local.num_rows == sample.num_rows
    for name in local.column_names:
        ours, theirs = on_ray[name].to_numpy(zero_copy_only=False), local[name].to_numpy(zero_copy_only=False)
        if name.startswith("probability_"):
            # float32 sums in another order across ONNX Runtime's threads (2 here, 1 per Ray
            # worker); with one thread on both sides they are bit-identical.
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6, err_msg=name)
        else:
            assert (ours.astype(str) == theirs.astype(str)).all(), name

    again = keel("predict", "parts/*.parquet", "-o", "scored", "--engine", "ray", cwd=project)
    assert again.returncode != 0 and "not empty" in again.stderr  # nothing is overwritten


def test_serve_on_ray_replicas_answers_and_hot_swaps(projects: dict[str, Path], start_server) -> None:
    project = projects["ray"]
    server = start_server(project, "--engine", "ray", "--replicas", "2")
    rows = pd.read_parquet(project / "adult_sample.parquet").drop(columns=["income", "split"]).iloc[:3]
    body = {"rows": json.loads(rows.to_json(orient="records"))}
    keel("predict", "adult_sample.parquet", "-o", "expected.parquet", cwd=project, check=True)  # the local engine
    expected = pd.read_parquet(project / "expected.parquet")["prediction"].iloc[:3].tolist()

    answered = 0

    def versions(n: int) -> set[str]:
        nonlocal answered
        seen = set()
        for _ in range(n):
            reply = httpx.post(f"{server.url}/predict", json=body, timeout=10)
            assert reply.status_code == 200, reply.text
            answered += 1
            version = reply.json()["version"]
            seen.add(version)
            if version == "1":  # the champion's answers, as keel predict gave them
                assert [p["label"] for p in reply.json()["predictions"]] == expected
        return seen

    assert versions(20) == {"1"}
    bad = httpx.post(f"{server.url}/predict", json={"rows": [{"age": "old"}]}, timeout=10)
    assert bad.status_code == 422 and "age" in bad.text  # the same validation as the local server

    keel("train", "--engine", "local", "--budget", "10s", cwd=project, check=True)
    keel("export", cwd=project, check=True)
    keel("promote", "--force", "--reason", "swap drill", cwd=project, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and versions(10) != {"2"}:  # every replica swapped
        time.sleep(0.5)
    assert versions(20) == {"2"}
    keel("rollback", "--reason", "swap drill", cwd=project, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and versions(10) != {"1"}:
        time.sleep(0.5)
    assert versions(20) == {"1"}

    def requests_counted() -> float:  # keel_requests_total, summed over its labels
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("keel_requests_total{")
        )

    # whichever replica answers, /metrics adds up both replicas (they share a metrics directory)
    assert {requests_counted() for _ in range(10)} == {float(answered)}

    # A rollout reads those summed counters and moves both replicas through its steps.
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config["rollout"] = {"interval_seconds": 1.0, "min_requests": 20}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            versions(1)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        rolled = keel(
            "rollout", "start", "2", "--plan", "canary:50%:3s,full", "--force", "--reason", "ray drill",
            "--server", server.url, cwd=project, timeout=180,
        )  # fmt: skip
    finally:
        stop.set()
        sender.join()
    assert rolled.returncode == 0 and "rolled out to full traffic" in rolled.stdout, rolled.stdout + rolled.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and versions(10) != {"2"}:
        time.sleep(0.5)
    assert versions(20) == {"2"}
    assert server.stop() == 0

    from keel.monitoring.log import read_log
    from keel.schema import LOG_VERSION

    logged = read_log(project / ".keel" / "predictions" / "adult-income")  # written by every replica
    assert logged is not None and set(logged[LOG_VERSION].to_pylist()) == {"1", "2"}
    assert logged.num_rows >= 3 * 60
