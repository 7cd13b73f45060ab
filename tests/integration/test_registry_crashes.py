"""Registry moves are crash-consistent and serialized (keel.registry.moves): SIGKILL at every
step boundary of promote, rollback and export, and promotes and rollbacks run at once, leave
the MLflow alias, the champion stack replayed from the history, the serving file and the
bundle digests in agreement once the next command has run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import cli_environment, copy_example, keel
from keel.exporting.bundle import load_bundle
from keel.registry.champion import champion_stack
from keel.registry.moves import FAULT_ENV

pytestmark = pytest.mark.slow
MOVE_STEPS = ("intent-written", "alias-set", "event-recorded", "serving-synced")
EXPORT_STEPS = ("export-intent-written", "export-tags-set", "export-published")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three exported versions of the adult example (linear, three seeds), the first champion."""
    root = copy_example(tmp_path_factory.mktemp("crashes") / "project")
    for seed in (1, 2, 3):
        config = yaml.safe_load((root / "keel.yaml").read_text())
        config["seed"] = seed
        config["train"]["families"] = ["linear"]
        (root / "keel.yaml").write_text(yaml.safe_dump(config))
        keel("train", cwd=root, check=True)
        keel("export", cwd=root, check=True)
    keel("promote", "adult-income@1", "--force", "--reason", "first", cwd=root, check=True)
    return root


def killed_at(step: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = cli_environment() | {FAULT_ENV: step}
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def state(root: Path) -> dict[str, object]:
    """Each record of who the champion is, after `keel history` (which completes a killed move)."""
    import mlflow

    events = json.loads(keel("history", "--json", cwd=root, check=True).stdout)
    client = mlflow.MlflowClient(f"sqlite:///{root / '.keel' / 'mlflow.db'}")
    alias = str(client.get_registered_model("adult-income").aliases["champion"])
    serving = json.loads((root / ".keel" / "serving" / "adult-income.json").read_text())
    tags = client.get_model_version("adult-income", alias).tags
    return {
        "alias": alias,
        "stack": champion_stack(events)[-1],
        "serving": serving["aliases"]["champion"],
        "digest": serving["digests"][alias] == tags["keel.bundle_sha256"],
        "intent": (root / ".keel" / "intents" / "adult-income.json").exists(),
    }


def agree(root: Path) -> str:
    seen = state(root)
    assert seen["alias"] == seen["stack"] == seen["serving"] and seen["digest"] and not seen["intent"], seen
    return str(seen["alias"])


def test_a_kill_at_any_step_is_completed_by_the_next_command(project: Path) -> None:
    assert agree(project) == "1"
    target = "2"
    for step in MOVE_STEPS:
        result = killed_at(step, "promote", f"adult-income@{target}", "--force", "--reason", step, cwd=project)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert agree(project) == target  # the intent was written before the first step: rolled forward
        target = "3" if target == "2" else "2"
    current = agree(project)
    for step in MOVE_STEPS[:2]:
        result = killed_at(step, "rollback", "--reason", step, cwd=project)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert agree(project) != current
        current = agree(project)


def test_a_kill_during_export_never_leaves_bundle_and_registry_apart(project: Path) -> None:
    import mlflow

    for step in EXPORT_STEPS:
        result = killed_at(step, "export", "adult-income@3", cwd=project)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        agree(project)  # the next command on the model publishes what the registry records
        client = mlflow.MlflowClient(f"sqlite:///{project / '.keel' / 'mlflow.db'}")
        digest = client.get_model_version("adult-income", "3").tags["keel.bundle_sha256"]
        load_bundle(project / ".keel" / "bundles" / "adult-income" / "3", digest)  # raises on a mismatch


def test_concurrent_promotes_and_rollbacks_are_serialized(project: Path) -> None:
    env = cli_environment()
    for round_ in range(3):
        commands = [
            ["promote", "adult-income@2", "--force", "--reason", f"race {round_}"],
            ["promote", "adult-income@3", "--force", "--reason", f"race {round_}"],
            ["rollback", "--reason", f"race {round_}"],
        ]
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "keel", *args],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        for process in running:
            _, stderr = process.communicate(timeout=300)
            assert "Traceback" not in stderr, stderr[-2000:]
            assert process.returncode in (0, 5), stderr[-2000:]  # 5: already the champion, say
        agree(project)


def test_rollback_refuses_a_bundle_that_does_not_verify(project: Path) -> None:
    keel("promote", "adult-income@2", "--force", "--reason", "setup", cwd=project)
    keel("promote", "adult-income@3", "--force", "--reason", "setup", cwd=project)
    previous = champion_stack(json.loads(keel("history", "--json", cwd=project, check=True).stdout))[-2]
    model = project / ".keel" / "bundles" / "adult-income" / previous / "model.onnx"
    original = model.read_bytes()
    model.write_bytes(original[:-10])  # truncated
    try:
        refused = keel("rollback", cwd=project)
        assert refused.returncode == 5 and f"cannot roll back to adult-income@{previous}" in refused.stderr
        assert "Re-export it" in refused.stderr and agree(project) == "3"
    finally:
        model.write_bytes(original)


ROUTE_STEPS = ("routes-intent-written", "routes-set", "routes-recorded")


def routes_agree(root: Path) -> dict[str, str]:
    """After `keel history`: the registry's aliases are the serving file's, no intent is left."""
    import mlflow

    keel("history", cwd=root, check=True)
    client = mlflow.MlflowClient(f"sqlite:///{root / '.keel' / 'mlflow.db'}")
    aliases = {k: str(v) for k, v in client.get_registered_model("adult-income").aliases.items()}
    serving = json.loads((root / ".keel" / "serving" / "adult-income.json").read_text())
    assert serving["aliases"] == aliases and not (root / ".keel" / "intents" / "adult-income.json").exists()
    return aliases


def test_a_kill_in_a_rollout_step_is_completed_by_the_next_command(project: Path) -> None:
    champion = agree(project)
    keel(
        "rollout", "start", "--aa", f"adult-income@{champion}", "--plan", "shadow:60s,full",
        "--server", "http://127.0.0.1:9", "--detach", cwd=project, check=True,
    )  # fmt: skip
    for step in ROUTE_STEPS:  # the controller killed while it applies the first step
        result = killed_at(step, "rollout", "run", cwd=project)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert routes_agree(project).get("shadow") == champion
    for step in ROUTE_STEPS[1:]:  # an abort killed while it removes the shadow
        result = killed_at(step, "rollout", "abort", cwd=project)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert "shadow" not in routes_agree(project)
        keel("alias", "set", "shadow", champion, cwd=project, check=True)  # as the step left it
    keel("rollout", "abort", cwd=project, check=True)
    assert "shadow" not in routes_agree(project) and agree(project) == champion
    assert json.loads(keel("rollout", "status", "--json", cwd=project, check=True).stdout)["status"] == "aborted"
