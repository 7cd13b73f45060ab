"""The promotion gate on real data (the adult sample), through the real CLI and server.

The champion is a linear model trained on a tenth of the training rows. A LightGBM
challenger trained on every row, but with the labels of one group (relationship = Wife)
shuffled among that group's training rows, is better overall yet has learnt nothing about
that group: it is refused, by name. A LightGBM trained on the clean rows is promoted.
Rollback restores the linear champion, and the server serves it. The official train/test
marker (``split``) keeps the test rows, and so the golden set, identical across the variants.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from conftest import TEST_BUDGET_SECONDS, copy_example, keel

pytestmark = pytest.mark.slow


def configure(project: Path, families: list[str], data: str = "adult_sample.parquet") -> None:
    config = yaml.safe_load((project / "keel.yaml").read_text())
    config |= {"data": data, "drop": [], "split_column": "split"}
    config["train"] |= {"families": families, "budget_seconds": TEST_BUDGET_SECONDS}
    config["evaluate"] = {"slices": ["relationship", "sex"]}
    config["guard"] = {"min_slice_size": 60, "max_slice_regression": 0.05}
    (project / "keel.yaml").write_text(yaml.safe_dump(config))


def train_and_export(project: Path) -> str:
    keel("train", cwd=project, check=True)
    exported = keel("export", cwd=project, check=True).stdout
    return exported.split("exported ", 1)[1].split()[0]  # NAME@VERSION


def test_gate_refuses_a_slice_regression_promotes_a_better_model_and_rolls_back(tmp_path: Path, start_server) -> None:
    project = copy_example(tmp_path / "gate")
    frame = pd.read_parquet(project / "adult_sample.parquet")
    train = frame["split"] == "train"
    small = frame[~train | (frame.index % 10 == 0)]
    small.to_parquet(project / "small.parquet")
    shuffled = frame.copy()
    rows = shuffled.index[train & (shuffled["relationship"] == "Wife")]
    # the Wife slice's training labels inverted: a model that learns them ranks that slice backwards
    shuffled.loc[rows, "income"] = shuffled.loc[rows, "income"].map({"<=50K": ">50K", ">50K": "<=50K"}).to_numpy()
    shuffled.to_parquet(project / "shuffled.parquet")

    configure(project, ["linear"], data="small.parquet")
    champion = train_and_export(project)
    first = keel("promote", champion, cwd=project, check=True).stdout
    assert "first champion" in first and "golden set" in first

    configure(project, ["lightgbm"], data="shuffled.parquet")
    broken = train_and_export(project)
    refused = keel("promote", broken, cwd=project)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "relationship=Wife" in refused.stderr and "no slice regresses" in refused.stdout
    gain = next(line for line in refused.stdout.splitlines() if "beats the champion" in line)
    assert "pass" in gain  # better overall: only the slice stops it

    configure(project, ["lightgbm"])
    better = train_and_export(project)
    promoted = keel("promote", better, cwd=project, check=True).stdout
    assert f"champion is now {better}" in promoted

    events = json.loads(keel("history", "--json", cwd=project, check=True).stdout)
    assert [e["action"] for e in events] == ["promote", "refused", "promote"]
    assert events[1]["version"] == broken.split("@")[1] and ["no slice regresses", False] in events[1]["checks"]

    rolled = keel("rollback", "--reason", "drill", cwd=project, check=True).stdout
    assert f"champion is now {champion}" in rolled
    last = json.loads(keel("history", "--json", cwd=project, check=True).stdout)[-1]
    assert (last["action"], last["version"], last["reason"]) == ("rollback", champion.split("@")[1], "drill")
    server = start_server(project)
    response = httpx.post(
        f"{server.url}/predict", json={"rows": [json.loads(frame.iloc[:1].to_json(orient="records"))[0]]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == champion.split("@")[1]


def test_promote_refuses_bad_input_without_changing_anything(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "bad")
    configure(project, ["linear"])
    ref = train_and_export(project)
    missing = keel("promote", "adult-income@9", cwd=project)
    assert missing.returncode == 5 and "has no version 9" in missing.stderr
    keel("promote", ref, cwd=project, check=True)
    serving = project / ".keel" / "serving" / "adult-income.json"
    before = serving.read_text()

    frame = pd.read_parquet(project / "adult_sample.parquet")
    frame["hours_squared"] = frame["hours-per-week"] ** 2  # an input the golden set does not have
    frame.to_parquet(project / "wider.parquet")
    configure(project, ["lightgbm"], data="wider.parquet")
    challenger = train_and_export(project)
    wider = keel("promote", challenger, cwd=project)
    assert wider.returncode == 5 and "golden set no longer matches" in wider.stderr
    assert "hours_squared" in wider.stderr

    golden = next((project / ".keel" / "golden").rglob("*.parquet"))
    golden.write_bytes(golden.read_bytes()[:-100])  # truncated
    truncated = keel("promote", challenger, cwd=project)
    assert truncated.returncode == 5 and "does not match its recorded SHA-256" in truncated.stderr
    golden.unlink()  # restored from the first champion's run artifact, then compared again
    restored = keel("promote", challenger, cwd=project)
    assert restored.returncode == 5 and "golden set no longer matches" in restored.stderr
    assert golden.is_file()

    events = json.loads(keel("history", "--json", cwd=project, check=True).stdout)
    assert [e["action"] for e in events] == ["promote"]  # errors are not decisions: nothing recorded
    assert serving.read_text() == before

    lock = sqlite3.connect(project / ".keel" / "mlflow.db")
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the registry
    try:
        locked = keel("promote", challenger, cwd=project, timeout=240)
    finally:
        lock.rollback()
        lock.close()
    assert locked.returncode == 5 and "locked" in locked.stderr and "Traceback" not in locked.stderr
    assert serving.read_text() == before
    assert [e["action"] for e in json.loads(keel("history", "--json", cwd=project, check=True).stdout)] == ["promote"]

    (project / ".keel" / "mlflow.db").write_bytes(b"this is not a database")
    corrupt = keel("promote", ref, cwd=project)
    assert corrupt.returncode != 0 and "Traceback" not in corrupt.stderr, corrupt.stderr
    assert serving.read_text() == before


def test_a_model_no_better_than_a_constant_never_becomes_champion(tmp_path: Path) -> None:
    """Labels shuffled away from the inputs: `keel evaluate` fails the baseline check, and so
    does the gate, for the first champion too; forcing it needs a reason, which is recorded."""
    project = copy_example(tmp_path / "useless")
    frame = pd.read_parquet(project / "adult_sample.parquet")
    frame["income"] = frame["income"].sample(frac=1.0, random_state=0).to_numpy()
    frame.to_parquet(project / "noise.parquet")
    configure(project, ["linear"], data="noise.parquet")
    useless = train_and_export(project)
    refused = keel("promote", useless, cwd=project)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "beats the baseline" in refused.stderr and "no better than a constant" in refused.stderr
    assert "Champion stays adult-income@none" in refused.stderr
    assert not (project / ".keel" / "golden").exists()  # a refused version sets no yardstick
    chained = keel("run", cwd=project)  # the same through `keel run`: refused, and it says so by its exit
    assert chained.returncode == 5 and "not promoted" in chained.stdout, chained.stdout + chained.stderr
    bare = keel("promote", useless, "--force", cwd=project)
    assert bare.returncode == 5 and "--force needs --reason" in bare.stderr
    forced = keel("promote", useless, "--force", "--reason", "drill: known useless", cwd=project, check=True)
    assert f"champion is now {useless}" in forced.stdout
    events = json.loads(keel("history", "--json", cwd=project, check=True).stdout)
    assert [e["action"] for e in events] == ["refused", "refused", "promote"]
    assert events[2]["reason"] == "drill: known useless" and "forced past 1 failed check" in events[2]["note"]
    assert ["beats the baseline", False] in events[2]["checks"]
