"""Turn a data snapshot into model inputs: schema, plan, encoded target, split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.config import ProjectConfig
from keel.data.infer import ColumnRole, infer_schema
from keel.data.snapshot import check_target
from keel.data.split import given_split, holdout_split, time_split
from keel.data.target import encode_target
from keel.data.triage import TriageReport
from keel.errors import ConfigError, DataError, TrainingError
from keel.planning.rules import Plan, make_plan
from keel.schema import InputSchema

RESERVED_PREFIX = "keel_"


@dataclass(frozen=True)
class Prepared:
    """Canonical inputs of every row, the encoded target, and the split."""

    schema: InputSchema
    plan: Plan
    classes: list[str] | None
    x: dict[str, np.ndarray]
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray

    def rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {name: values[index] for name, values in self.x.items()}


def prepare(frame: Any, config: ProjectConfig, source: str, triage: TriageReport) -> Prepared:
    """Validate columns, decide the task, encode the target and split, by the config's rules.

    Column roles come from the data's triage, so training and triage cannot disagree on them.
    """
    check_target(frame, config.target, source)
    _check_columns(frame, config)
    frame = frame[frame[config.target].notna()].reset_index(drop=True)
    if len(frame) < 10:
        raise TrainingError(f"only {len(frame)} rows have a target value; keel needs at least 10 to train.")
    roles = [ColumnRole(c.name, c.semantic, c.feature, c.reason) for c in triage.columns]
    schema = infer_schema(frame, roles)
    if not schema.columns:
        raise TrainingError(
            "no usable feature columns remain.",
            hint="Check `keel analyze` for why columns were excluded, and keel.yaml's drop list.",
        )
    plan = make_plan(frame[config.target], config.task)
    y, classes = encode_target(frame[config.target], plan.task)
    train, test = holdout_split(
        y, classification=plan.classification, test_size=config.split.test_size, seed=config.seed
    )
    return Prepared(schema, plan, classes, schema.frame_to_arrays(frame), y, train, test)


def _split(frame: Any, y: np.ndarray, config: ProjectConfig, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """The given split, else a time split, else a seeded (stratified) hold-out (see keel.data.split)."""
    if config.split_column:
        return given_split(frame[config.split_column], config.split_column)
    if config.time_column:
        return time_split(frame[config.time_column], config.split.test_size)
    return holdout_split(y, classification=classification, test_size=config.split.test_size, seed=config.seed)


def _check_columns(frame: Any, config: ProjectConfig) -> None:
    named = [c for c in (config.time_column, config.split_column) if c]
    unknown = [c for c in (*config.drop, *named) if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"keel.yaml drops column(s) {', '.join(map(repr, unknown))} that the data does not have.",
            hint=f"Columns are: {', '.join(map(str, frame.columns))}.",
        )
    reserved = [str(c) for c in frame.columns if str(c).startswith(RESERVED_PREFIX)]
    if reserved:
        raise DataError(
            f"column name(s) {', '.join(reserved)} start with '{RESERVED_PREFIX}', which keel reserves "
            "for its prediction log.",
            hint="Rename them, or drop them in keel.yaml.",
        )
