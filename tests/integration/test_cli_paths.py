"""Every command's path arguments, relative, absolute, in a sub-folder, in a missing folder and in
a read-only place, from another working directory; and a corpus of bad inputs, each of which
must end in its kind's exit code from README's table (2 config, 3 data, 4 training, 5 registry),
never in "internal error" (70) or a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_example, keel

pytestmark = pytest.mark.slow

READ_ONLY = "/proc/keel-cannot-write-here"  # /proc refuses new files even to root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with an exported champion, and a small file to score beside it."""
    root = copy_example(tmp_path_factory.mktemp("paths") / "project", budget=10)
    for command in ("train", "export", "promote"):
        keel(command, cwd=root, check=True)
    frame = pd.read_parquet(root / "adult_sample.parquet").head(200)
    (root / "in").mkdir()
    frame.drop(columns=["income"]).to_parquet(root / "in" / "rows.parquet")
    frame.to_csv(root / "rows.csv", index=False)
    return root


def no_internal_error(result, code: int | None = None) -> None:
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 70, result.stderr
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr


@pytest.mark.parametrize(
    "output",
    ["results/x/scored.parquet", "scored.csv", "ABSOLUTE/deep/er/scored.parquet"],
)
def test_predict_writes_relative_absolute_and_new_sub_folders(served: Path, output: str) -> None:
    target = output.replace("ABSOLUTE", str(served / "abs"))
    result = keel("predict", "in/rows.parquet", "-o", target, cwd=served)
    no_internal_error(result, 0)
    written = Path(target) if Path(target).is_absolute() else served / target
    frame = pd.read_csv(written) if written.suffix == ".csv" else pd.read_parquet(written)
    assert len(frame) == 200 and "model_version" in frame.columns


def test_predict_from_another_working_directory(served: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = keel(
        "-p", str(served), "predict", str(served / "in" / "rows.parquet"), "-o", "out/s.parquet", cwd=elsewhere
    )
    no_internal_error(result, 0)
    assert (elsewhere / "out" / "s.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("predict", "missing-folder/rows.parquet", "-o", "s.parquet"), 3, "does not exist"),
        (("predict", "in/rows.parquet", "-o", f"{READ_ONLY}/s.parquet"), 3, "cannot"),
        (("predict", "in/rows.parquet", "-o", "in"), 3, "cannot write predictions"),
        (("analyze", "rows.csv", "--target", "income", "--html", "reports/new/a.html"), 0, ""),
        (("analyze", "rows.csv", "--target", "income", "--html", f"{READ_ONLY}/a.html"), 3, "cannot"),
        (("validate", "in/rows.parquet"), None, ""),
        (("validate", "nope/rows.parquet"), 3, "does not exist"),
        (("train", "--data", "nope/data.parquet"), 3, "does not exist"),
        (("monitor", "--labels", "nope/labels.csv"), None, ""),
    ],
)
def test_path_arguments_are_one_clear_line(served: Path, args: tuple[str, ...], code: int | None, text: str) -> None:
    result = keel(*args, cwd=served)
    no_internal_error(result, code)
    if text:
        assert text in result.stderr, result.stderr
    if code == 0 and "--html" in args:
        assert (served / args[-1]).is_file()


def corpus(folder: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(name, keel arguments, exit code) of each bad input, its files written in ``folder``."""
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("a,b,income\n")
    (folder / "garbage.csv").write_bytes(bytes(range(256)) * 40)
    (folder / "truncated.parquet").write_bytes(b"PAR1\x00\x00\x00 not really")
    (folder / "one_class.csv").write_text("a,split,income\n" + "".join(f"{i},train,x\n" for i in range(50)))
    shutil.copy(folder / "adult_sample.parquet", folder / "copy.parquet")
    return [
        ("an empty file", ("analyze", "empty.csv", "--target", "income"), 3),
        ("a header without rows", ("analyze", "header.csv", "--target", "income"), 3),
        ("binary garbage as CSV", ("analyze", "garbage.csv", "--target", "income"), 3),
        ("a truncated parquet file", ("analyze", "truncated.parquet", "--target", "income"), 3),
        ("a misspelt target", ("analyze", "copy.parquet", "--target", "incme"), 3),
        ("a target with one class", ("train", "--data", "one_class.csv"), 4),
        ("a budget that is NaN", ("train", "--budget", "nan"), 2),
        ("a budget that is infinite", ("train", "--budget", "inf"), 2),
        ("a budget that is negative", ("train", "--budget", "-5s"), 2),
        ("a budget that is not a duration", ("train", "--budget", "soon"), 2),
        ("an unknown version", ("promote", "adult-income@999"), 5),
        ("an unknown model", ("export", "nobody@1"), 5),
        ("an unknown alias", ("alias", "set", "king", "adult-income@1"), 2),
        ("an --allow that matches nothing", ("train", "--allow", "leak.nothing", "--reason", "r"), 2),
        ("a monitor window that is not a duration", ("monitor", "--window", "weekly"), 2),
    ]


def test_a_corpus_of_bad_inputs_each_gets_its_exit_code(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "project")
    failures = []
    for name, args, code in corpus(project):
        result = keel(*args, cwd=project)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        clean = lines and lines[-1].startswith("error: ") and "internal error" not in result.stderr
        if result.returncode != code or not clean or "Traceback" in result.stderr:
            failures.append(f"{name}: exit {result.returncode} (want {code}): {result.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)


def test_a_broken_project_file_is_one_clear_line(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "project")
    config = project / "keel.yaml"
    for text in ("name: [unclosed\n", "name: x\ntarget: income\ndata: adult_sample.parquet\nsurprise: 1\n"):
        config.write_text(text)
        result = keel("plan", cwd=project)
        no_internal_error(result, 2)
