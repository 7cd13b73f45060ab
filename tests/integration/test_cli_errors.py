"""Bad input through the real CLI: one clear line, a non-zero exit code, no traceback.

Each call is a new interpreter (``fresh``), as a user's shell starts it: a warning printed
while importing would show up here."""

from __future__ import annotations

import functools
from pathlib import Path

import conftest

keel = functools.partial(conftest.keel, fresh=True)


def assert_one_clear_line(result, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and text in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_target_column(project_dir: Path) -> None:
    result = keel("analyze", "adult_sample.parquet", "--target", "incme", cwd=project_dir)
    assert_one_clear_line(result, 3, "target column 'incme' is not in")
    assert "Did you mean 'income'?" in result.stderr


def test_unreadable_file(project_dir: Path) -> None:
    (project_dir / "broken.parquet").write_bytes(b"PAR1 truncated")
    result = keel("analyze", "broken.parquet", cwd=project_dir)
    assert_one_clear_line(result, 3, "cannot read")


def test_missing_file(tmp_path: Path) -> None:
    assert_one_clear_line(keel("analyze", "nope.csv", cwd=tmp_path), 3, "does not exist")


def test_unknown_model_name(project_dir: Path) -> None:
    result = keel("promote", "no-such-model@1", cwd=project_dir)
    assert_one_clear_line(result, 5, "model 'no-such-model' is not in the registry")


def test_serve_without_a_champion(project_dir: Path) -> None:
    result = keel("serve", cwd=project_dir)
    assert_one_clear_line(result, 5, "has no promoted version")


def test_no_project_file(tmp_path: Path) -> None:
    assert_one_clear_line(keel("train", cwd=tmp_path), 2, "no project file at")


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    result = keel("--debug", "analyze", "nope.csv", cwd=tmp_path)
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "error: data file" in result.stderr


def test_version_and_help(tmp_path: Path) -> None:
    assert keel("--version", cwd=tmp_path, check=True).stdout.startswith("keel ")
    helptext = keel("--help", cwd=tmp_path, check=True).stdout
    for command in ("analyze", "train", "export", "promote", "rollback", "serve", "predict", "monitor", "run"):
        assert command in helptext


def test_usage_errors_are_usage_errors_not_internal_ones(tmp_path: Path) -> None:
    for args in (("train", "--nope"), ("promote", "a", "b", "c")):
        result = keel(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert "No such option" in result.stderr or "unexpected extra argument" in result.stderr


def test_monitor_options_that_are_not_times_are_named(project_dir: Path) -> None:
    for args, wanted in (
        (("--window", "3x"), "--window '3x' is not a duration"),
        (("--since", "yesterday"), "--since"),
    ):
        result = keel("monitor", *args, cwd=project_dir)
        assert result.returncode == 2, result.stderr
        assert wanted in result.stderr and "Traceback" not in result.stderr


def test_a_csv_header_that_names_a_column_twice_is_refused(project_dir: Path) -> None:
    """pandas would read it as `age` and `age.1` and keel would train on both."""
    (project_dir / "twice.csv").write_text("age,income,age\n39,<=50K,40\n50,>50K,51\n")
    for command in (("analyze", "twice.csv", "--target", "income"), ("train", "--data", "twice.csv")):
        result = keel(*command, cwd=project_dir)
        assert result.returncode == 3, result.stderr
        assert "names a column more than once ('age' in columns 1, 3)" in result.stderr
        assert "Traceback" not in result.stderr
