"""``keel evaluate`` through the real CLI on the adult sample: suite, slices, checks, report, card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import keel

pytestmark = pytest.mark.slow


def test_evaluate_writes_suite_slices_checks_report_and_card(project_dir: Path) -> None:
    config = yaml.safe_load((project_dir / "keel.yaml").read_text())
    config["evaluate"] = {"slices": ["sex", "age"], "intended_use": "Benchmark demo only."}
    (project_dir / "keel.yaml").write_text(yaml.safe_dump(config))
    keel("train", cwd=project_dir, check=True)
    result = json.loads(keel("evaluate", "--json", cwd=project_dir, check=True).stdout)

    suite = result["suite"]
    for name in ("precision_macro", "recall_weighted", "f1_macro", "roc_auc", "pr_auc", "log_loss", "brier"):
        assert suite["low"][name] <= suite["metrics"][name] <= suite["high"][name], name
    assert "calibration_error" in suite["metrics"] and sum(map(sum, suite["confusion"])) == suite["rows"]
    groups = {(g["column"], g["group"]) for g in result["slices"]["groups"]}
    assert {("sex", "Female"), ("sex", "Male")} <= groups
    assert len([g for g in groups if g[0] == "age"]) == 4  # quartile ranges
    assert set(result["slices"]["fairness"]) == {"sex", "age"}
    checks = {c["name"]: c["status"] for c in result["checks"]}
    assert checks["leakage"] == "pass" and checks["beats the baseline"] == "pass"
    assert checks["export parity"] == "warn"  # not exported yet
    assert checks["overfitting"] in ("pass", "warn")

    page = Path(result["report"]).read_text()
    assert page.count("<img") >= 3 and "spot-check" in page and "Fairness gaps" in page
    card = Path(result["card"]).read_text()
    assert "Benchmark demo only." in card and "## Known limitations" in card and "keel.version" in card

    table = keel("evaluate", cwd=project_dir, check=True).stdout
    assert "beats the baseline" in table and "sex=Female" in table and "model card:" in table


def test_evaluate_names_an_unknown_slice_column(project_dir: Path) -> None:
    config = yaml.safe_load((project_dir / "keel.yaml").read_text())
    config["evaluate"] = {"slices": ["gender"]}
    (project_dir / "keel.yaml").write_text(yaml.safe_dump(config))
    keel("train", cwd=project_dir, check=True)
    result = keel("evaluate", cwd=project_dir)
    assert result.returncode == 2 and "gender" in result.stderr and "Input columns:" in result.stderr
