"""The engine seam: which engine a command runs on, and clear errors around it (no Ray started)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_environment, copy_example, keel
from keel.config import EngineConfig, resolve_engine
from keel.errors import ConfigError


def test_the_flag_wins_then_keel_yaml_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_RAY_ADDRESS", raising=False)
    assert resolve_engine(EngineConfig()).name == "local"
    assert resolve_engine(EngineConfig(name="ray", num_cpus=2)).num_cpus == 2
    assert resolve_engine(EngineConfig(name="ray"), "local").name == "local"

    monkeypatch.setenv("KEEL_RAY_ADDRESS", "ray://head:10001")
    from_env = resolve_engine(EngineConfig())
    assert (from_env.name, from_env.address) == ("ray", "ray://head:10001")
    assert resolve_engine(EngineConfig(), None, "ray://other:10001").address == "ray://other:10001"
    assert resolve_engine(EngineConfig(name="local")).name == "local"  # keel.yaml says local: local

    with pytest.raises(ConfigError, match="not known"):
        resolve_engine(EngineConfig(), "spark")


def test_asking_for_ray_without_the_extra_is_one_clear_line(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    script = (
        "import sys; sys.modules['ray'] = None\n"  # as if the extra were not installed
        "from keel.cli.main import main\n"
        "sys.argv = ['keel', 'train', '--engine', 'ray']\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, env=cli_environment(), timeout=120
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "the Ray engine needs Ray, which is not installed" in result.stderr
    assert 'pip install "keel[ray]"' in result.stderr


def test_serving_options_that_belong_to_the_other_engine_are_refused(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    replicas = keel("serve", "--replicas", "2", cwd=project)
    assert replicas.returncode != 0 and "--replicas is for the Ray engine" in replicas.stderr
    workers = keel("serve", "--engine", "ray", "--workers", "2", cwd=project)
    assert workers.returncode != 0 and "--workers is for the local engine" in workers.stderr
    unknown = keel("predict", "adult_sample.parquet", "--engine", "spark", cwd=project)
    assert unknown.returncode != 0 and "'spark' is not known" in unknown.stderr


def test_partitioned_output_names() -> None:
    from keel.api.serving import _partitioned_output

    assert _partitioned_output("data/events.parquet") == Path("data/events.predictions")
    assert _partitioned_output("data/events/") == Path("data/events.predictions")
    assert _partitioned_output("data/part-*.parquet") == Path("data/predictions")
