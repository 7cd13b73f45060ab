"""Which checkpoint a killed fit resumes from: the newest one the Trainer finished writing."""

from __future__ import annotations

import json
from pathlib import Path

from keel.textmodels.checkpoints import last_checkpoint


def checkpoint(folder: Path, step: int, state: str | None) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_newest_complete_checkpoint_wins_and_cut_short_ones_are_removed(tmp_path: Path) -> None:
    state = json.dumps({"global_step": 1, "log_history": []})
    checkpoint(tmp_path, 9, state)
    done = checkpoint(tmp_path, 10, state)  # 10 > 9 by number, not by name
    no_state = checkpoint(tmp_path, 20, None)  # killed before trainer_state.json
    truncated = checkpoint(tmp_path, 30, state[:7])  # killed while writing it
    (tmp_path / "runs").mkdir()  # not a checkpoint: left alone

    assert last_checkpoint(tmp_path) == str(done)
    assert not no_state.exists() and not truncated.exists()
    assert (tmp_path / "checkpoint-9").is_dir() and (tmp_path / "runs").is_dir()


def test_no_folder_or_no_complete_checkpoint_starts_afresh(tmp_path: Path) -> None:
    assert last_checkpoint(tmp_path / "missing") is None
    checkpoint(tmp_path, 5, "[]")  # readable, but not a trainer state
    assert last_checkpoint(tmp_path) is None and not list(tmp_path.iterdir())
