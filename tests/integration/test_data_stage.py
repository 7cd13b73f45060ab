"""The data stage through the API and the real CLI: the training gate, snapshots, contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

import keel as api
from conftest import SHARED_DATASETS, keel, need_shared
from keel.data.load import load_table
from keel.data.triage import TriageOptions, triage
from keel.errors import ConfigError, TrainingError


def leaky_project(project_dir: Path) -> Path:
    """The example project with a column that is a copy of the target."""
    data = pd.read_parquet(project_dir / "adult_sample.parquet")
    data["income_flag"] = (data["income"] == ">50K").astype(int)
    data.to_parquet(project_dir / "adult_sample.parquet")
    return project_dir


def test_training_refuses_a_leak_and_records_an_override(project_dir: Path) -> None:
    project = api.load_project(leaky_project(project_dir))
    with pytest.raises(
        TrainingError,
        match=r"training refused: 'income_flag' alone predicts.*--allow "
        r"leak.single_column:income_flag",
    ):
        api.train(project)
    with pytest.raises(ConfigError, match="--allow leak.nothing matches no blocking finding"):
        api.train(project, api.TrainOptions(allow={"leak.nothing": "x"}))
    with pytest.raises(ConfigError, match="needs --reason"):
        api.train(project, api.TrainOptions(allow={"leak.single_column": " "}))
    allow = {"leak.single_column:income_flag": "a known proxy, accepted for the demo"}
    result = api.train(project, api.TrainOptions(allow=allow))
    run = MlflowClient(project.tracking_uri).get_run(result.best.run_id)
    assert json.loads(run.data.tags["keel.allowed_checks"]) == {
        "leak.single_column:income_flag": "a known proxy, accepted for the demo"
    }


def test_cli_train_refusal_is_one_line(project_dir: Path) -> None:
    leaky_project(project_dir)
    result = keel("train", cwd=project_dir)
    assert result.returncode == 4
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "training refused" in lines[0] and "Traceback" not in result.stderr


def test_analyze_json_html_list_show_and_validate(project_dir: Path, tmp_path: Path) -> None:
    out = keel(
        "analyze", "adult_sample.parquet", "--json", "--html", str(tmp_path / "r.html"), cwd=project_dir, check=True
    )
    payload = json.loads(out.stdout)
    assert payload["triage"]["target"]["name"] == "income"  # taken from keel.yaml
    assert payload["triage"]["split"]["strategy"] == "stratified"
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "Findings" in page
    listed = keel("data", "list", cwd=project_dir, check=True).stdout
    assert payload["digest"][:12] in listed
    shown = keel("data", "show", payload["digest"][:8], cwd=project_dir, check=True).stdout
    assert "recommended split: stratified" in shown
    new = pd.read_parquet(project_dir / "adult_sample.parquet").head(50)
    new.loc[0, "age"] = 300
    new.loc[1, "workclass"] = "Astronaut"
    new.to_csv(project_dir / "new.csv", index=False)
    checked = keel("validate", "new.csv", "--against", payload["digest"][:10], cwd=project_dir)
    assert checked.returncode == 3
    assert "out of range" in checked.stdout and "unseen category" in checked.stdout and "Astronaut" in checked.stdout
    same = keel("validate", "adult_sample.parquet", "--against", payload["digest"][:10], cwd=project_dir)
    assert same.returncode == 0 and "satisfy the contract" in same.stdout


def test_validate_against_the_champion_without_one_is_clear(project_dir: Path) -> None:
    result = keel("validate", "adult_sample.parquet", cwd=project_dir)
    assert result.returncode == 5 and "has no promoted version" in result.stderr


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        (
            "bank_marketing",
            TriageOptions(target="y"),
            {"leak.dominant_column:duration", "column.placeholder_missing:poutcome"},
        ),
        ("adult", TriageOptions(target="income", split_column="split"), {"leak.train_test_overlap", "data.duplicates"}),
        ("electricity", TriageOptions(target="class"), {"split.time_order:t_index"}),
        (
            "nycflights13",
            TriageOptions(target="arr_delay"),
            {"leak.dominant_column:dep_delay", "split.time_column:time_hour"},
        ),
        ("california_housing", TriageOptions(target="median_house_value"), {"target.capped"}),
        ("sms_spam", TriageOptions(target="label"), {"data.duplicates", "text.near_duplicates:text"}),
    ],
)
def test_triage_finds_what_the_shared_data_sets_hide(name: str, options: TriageOptions, expected: set[str]) -> None:
    need_shared(f"{name}.parquet")
    report = triage(load_table(SHARED_DATASETS / f"{name}.parquet"), options)
    assert expected <= {f.id for f in report.findings}


def test_analyze_with_a_separate_test_file(project_dir: Path) -> None:
    pd.read_parquet(project_dir / "adult_sample.parquet").head(100).to_parquet(project_dir / "test.parquet")
    result = keel("analyze", "adult_sample.parquet", "--test", "test.parquet", cwd=project_dir, check=True)
    assert "block leak.train_test_overlap: 100 test rows (100.0%) are exact copies" in result.stdout
    assert "recommended split: given" in result.stdout
    both = keel("analyze", "adult_sample.parquet", "--test", "test.parquet", "--split-column", "split", cwd=project_dir)
    assert both.returncode == 2 and "either --split-column or --test" in both.stderr
