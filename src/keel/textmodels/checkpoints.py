"""Which checkpoint a killed fit resumes from.

transformers' Trainer writes a checkpoint file by file into ``checkpoint-<step>/``: the
weights, then the optimizer, scheduler and RNG states, and ``trainer_state.json`` last. A
process killed while saving leaves a folder without a readable ``trainer_state.json``, and
``get_last_checkpoint`` would pick that folder by its number; resuming from it fails with
"Can't find a valid checkpoint". keel resumes from the newest complete one instead (the
Trainer keeps the one before while it writes the next) and removes the cut-short folders.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
_NAME = re.compile(r"^checkpoint-(\d+)$")


def complete(folder: Path) -> bool:
    """Whether ``folder`` is a checkpoint the Trainer finished writing."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint under ``folder`` (None when there is none); newer
    folders that a kill cut short are removed, so the resumed fit writes them afresh."""
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), path) for path in folder.iterdir() if path.is_dir() and (m := _NAME.match(path.name))),
        reverse=True,
    )
    for _, path in found:
        if complete(path):
            return str(path)
        log.warning("removing %s: a killed fit left it incomplete (no readable trainer_state.json)", path)
        shutil.rmtree(path, ignore_errors=True)
    return None
