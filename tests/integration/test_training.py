"""Training through the real CLI: kill -9 and resume, the budget, reproduce, the run record."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import keel

pytestmark = pytest.mark.slow


def completed_trials(store: Path) -> dict[str, set[int]]:
    """The completed trials per study, read without writing: the test watches a database that
    the killed process may be creating (opening it with Optuna would create the schema too)."""
    path = store / "optuna.db"
    if not path.is_file():
        return {}
    query = "SELECT s.study_name, t.number FROM trials t JOIN studies s USING (study_id) WHERE t.state = 'COMPLETE'"
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute(query).fetchall()
    except sqlite3.OperationalError as exc:  # the schema is not there yet
        if "no such table" in str(exc):
            return {}
        raise
    out: dict[str, set[int]] = {}
    for study, number in rows:
        out.setdefault(study, set()).add(number)
    return out


def test_kill_9_in_a_search_then_resume_keeps_the_completed_trials(project_dir: Path) -> None:
    store = project_dir / ".keel"
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "train", "--budget", "120s"],
        cwd=project_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 90
    before: dict[str, set[int]] = {}
    try:
        while time.monotonic() < deadline and not any(len(v) >= 3 for v in before.values()):
            time.sleep(0.5)
            before = completed_trials(store)
    finally:
        process.kill()  # SIGKILL: no cleanup, a trial may be left running
        process.wait()
    assert any(len(v) >= 3 for v in before.values()), "the search never completed three trials"
    # 20 s: start-up (imports, triage, MLflow) takes about 7 s of it here
    resumed = keel("train", "--resume", "--budget", "20s", cwd=project_dir)
    assert resumed.returncode == 0, resumed.stderr
    after = completed_trials(store)
    for study, numbers in before.items():
        assert numbers <= after[study], f"{study} lost completed trials"
    assert sum(len(v) for v in after.values()) > sum(len(v) for v in before.values())
    assert set(before) <= set(after)  # the killed studies were continued, not replaced


@pytest.mark.serial
@pytest.mark.parametrize("load", ["quiet", "a CPU hog on every core"])
def test_the_budget_is_a_budget(project_dir: Path, load: str) -> None:
    """`keel train --budget B` ends within B + max(10%, 3 s), timed from launch (imports included),
    on a quiet machine and on one whose every core runs a busy loop (a laptop is rarely quiet)."""
    hogs = []
    if load != "quiet":
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        started = time.monotonic()
        result = keel("train", "--budget", "20s", cwd=project_dir, check=True, fresh=True)
        elapsed = time.monotonic() - started
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert elapsed <= 20 + 3, f"keel train --budget 20s took {elapsed:.1f} s ({load})"
    assert "of a 20 s budget" in result.stdout


def test_a_suspiciously_good_model_is_registered_but_not_promoted(project_dir: Path) -> None:
    """A post-outcome flag that agrees with the label on 98.8% of rows: triage blocks it; allowed
    anyway, the model scores above 0.99 and `keel promote` refuses it with the drop-column evidence."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(project_dir / "adult_sample.parquet")
    rng = np.random.default_rng(3)
    flip = rng.random(len(frame)) < 0.012
    positive = frame["income"].astype(str) == ">50K"
    frame["refund_flag"] = np.where(positive ^ flip, "yes", "no")
    frame.to_parquet(project_dir / "adult_sample.parquet")
    refused = keel("train", cwd=project_dir)
    assert refused.returncode == 4 and "leak.carried_skill:refund_flag" in refused.stderr
    trained = keel(
        "train", "--allow", "leak.carried_skill:refund_flag", "--reason", "testing the gate", cwd=project_dir
    )
    assert trained.returncode == 0, trained.stderr
    assert "suspiciously good" in trained.stdout and "refund_flag" in trained.stdout
    keel("export", cwd=project_dir, check=True)
    promoted = keel("promote", cwd=project_dir)
    assert promoted.returncode == 5, promoted.stdout + promoted.stderr
    assert "suspicious score" in promoted.stdout and "refund_flag" in promoted.stdout


def test_reproduce_compare_and_dead_end(project_dir: Path) -> None:
    keel("train", "--hypothesis", "baseline search", cwd=project_dir, check=True)
    table = keel("runs", "compare", cwd=project_dir, check=True).stdout
    assert "baseline search" in table and "beats the baseline" in table
    rows = [line.split() for line in table.splitlines()[1:] if line.strip()]
    run = next((row[0] for row in rows if row[1] == "ensemble"), rows[0][0])  # an ensemble refits every member
    reproduced = keel("reproduce", run, cwd=project_dir, check=True).stdout
    assert "difference +0.00e+00" in reproduced
    keel("runs", "dead-end", run, "--why", "tried, no gain", cwd=project_dir, check=True)
    assert "dead end: tried, no gain" in keel("runs", "compare", cwd=project_dir, check=True).stdout
    markdown = keel("runs", "compare", "--markdown", cwd=project_dir, check=True).stdout
    assert markdown.startswith("| run | family | hypothesis |")
    missing = keel("reproduce", "zzzz", cwd=project_dir)
    assert missing.returncode == 5 and "no run of this project match" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--budget", "0s"), "a training budget must be positive"),
        (("train", "--budget", "soon"), "is not a duration"),
    ],
)
def test_bad_training_options(project_dir: Path, args: tuple[str, ...], message: str) -> None:
    result = keel(*args, cwd=project_dir)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_metric_and_family_in_keel_yaml(project_dir: Path) -> None:
    config = project_dir / "keel.yaml"
    original = config.read_text()
    config.write_text(original.replace("target: income", "target: income\nmetric: rmse"))
    result = keel("train", cwd=project_dir)
    assert result.returncode == 2 and "metric 'rmse' does not fit a binary task" in result.stderr
    config.write_text(original.replace("families: auto", "families: [catboost]"))
    result = keel("train", cwd=project_dir)
    assert result.returncode == 2 and "unknown model family 'catboost'" in result.stderr
