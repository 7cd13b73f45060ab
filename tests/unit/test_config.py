from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import load_project, validate_name
from keel.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "keel.yaml").write_text(text)
    return tmp_path


def test_example_project_loads_with_defaults(project_dir: Path) -> None:
    project = load_project(project_dir)
    assert project.name == "adult-income"
    assert project.data_path == project_dir / "adult_sample.parquet"
    assert project.config.serving.host == "127.0.0.1"
    assert project.tracking_uri == f"sqlite:///{project_dir / '.keel' / 'mlflow.db'}"


def test_tracking_uri_from_environment_wins(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_project(project_dir).tracking_uri == "http://127.0.0.1:5000"


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'serving.prot'"):
        load_project(write(tmp_path, "name: m\ndata: d.csv\ntarget: y\nserving: {prot: 1}\n"))


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'target'"):
        load_project(write(tmp_path, "name: m\ndata: d.csv\n"))


def test_invalid_yaml_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_project(write(tmp_path, "name: [unclosed\n"))


def test_missing_project_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no project file at .*--project"):
        load_project(tmp_path)


@pytest.mark.parametrize("name", ["../etc", "a b", "", "x" * 65])
def test_unsafe_model_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="is not allowed"):
        validate_name(name)


def test_parity_tolerances_are_set_separately_for_probabilities_and_regression(
    project_dir: Path, tmp_path: Path
) -> None:
    export = load_project(project_dir).config.export
    assert (export.parity_tolerance, export.regression_parity_tolerance) == (1e-5, 1e-5)
    with pytest.raises(ConfigError, match="regression_parity_tolerance"):
        load_project(write(tmp_path, "name: m\ndata: d.csv\ntarget: y\nexport: {regression_parity_tolerance: 0}\n"))
