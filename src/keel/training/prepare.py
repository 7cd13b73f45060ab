"""Turn a data snapshot into model inputs: schema, plan, encoded target, split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.config import ProjectConfig
from keel.data.infer import ColumnRole, infer_schema
from keel.data.snapshot import DatasetVersion, check_target, load_snapshot
from keel.data.split import SplitAdvice, given_split, grouped_split, holdout_split, time_split
from keel.data.target import encode_target
from keel.data.triage import TriageReport
from keel.errors import ConfigError, DataError, TrainingError
from keel.planning.rules import Decision, Plan, decide_task, make_plan
from keel.schema import TEXT, InputSchema
from keel.store import Store
from keel.textmodels.models import text_extra_installed

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
    search_train: np.ndarray  # the training rows the search fits on
    valid: np.ndarray | None  # early stopping and trial scores; None when the search cross-validates
    config: ProjectConfig  # the settings that produced this preparation (recorded for reproduction)
    context: Any = None  # the other columns (not inputs, not the target) as a DataFrame, row-aligned

    def context_rows(self, index: np.ndarray) -> Any:
        """The non-input columns of these rows (a DataFrame; empty without any)."""
        import pandas as pd

        return pd.DataFrame() if self.context is None else self.context.iloc[index].reset_index(drop=True)

    def rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {name: values[index] for name, values in self.x.items()}


def training_prior(data: Prepared) -> list[float] | float:
    """The majority/mean baseline's prediction: the training rows' class shares, or their mean."""
    train = data.y[data.train]
    if data.classes is not None:
        counts = np.bincount(train.astype(np.int64), minlength=len(data.classes))
        return [float(c) for c in counts / max(len(train), 1)]
    return float(np.mean(train))


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
    target = frame[config.target]
    task = decide_task(target, config.task).value
    y, classes = encode_target(target, task)
    chosen = choose_split(frame, y, config, task != "regression", triage.split)
    train, test, split = chosen.train, chosen.test, chosen.decision
    plan = make_plan(
        target,
        task=config.task,
        metric=config.metric,
        families=config.train.families,
        rows=len(train),
        budget_seconds=config.train.budget_seconds,
        split=split,
        ensemble=config.train.ensemble,
        text_columns=sum(1 for c in schema.columns if c.kind == TEXT),
        text_only=len(schema.columns) == 1 and schema.columns[0].kind == TEXT,
        transformers=text_extra_installed(),
        domain=config.text.domain,
        kfold=chosen.kfold,
        minority=_minority(triage),
    )
    search_train, valid = train, None
    if not plan.cross_validate:
        inner_train, inner_valid = holdout_split(
            y[train], classification=plan.classification, test_size=chosen.validation_size, seed=config.seed
        )
        search_train, valid = train[inner_train], train[inner_valid]
    context = frame[[c for c in frame.columns if c not in schema.names and c != config.target]]
    arrays = schema.frame_to_arrays(frame)
    return Prepared(schema, plan, classes, arrays, y, train, test, search_train, valid, config, context)


def prepare_recorded(store: Store, tags: dict[str, str]) -> tuple[DatasetVersion, Prepared]:
    """The snapshot a tracked final run was trained on and its inputs, rebuilt from the run's
    manifest: the data snapshot by hash and the effective config (reproduce, evaluate and the
    promotion gate use it)."""
    config = ProjectConfig.model_validate(json.loads(tags["keel.config"]))
    dataset = load_snapshot(store, tags["keel.data_digest"])
    return dataset, prepare(dataset.load(), config, dataset.source, dataset.triage)


@dataclass(frozen=True)
class SplitChoice:
    """The rows of each side, the plan's split decision, and how the search validates."""

    train: np.ndarray
    test: np.ndarray
    decision: Decision
    kfold: bool = False
    validation_size: float = 0.15


def choose_split(
    frame: Any, y: np.ndarray, config: ProjectConfig, classification: bool, advice: SplitAdvice | None
) -> SplitChoice:
    """Triage's recommended split (``keel.data.split``), unless keel.yaml overrides it; the
    decision's rule cites the finding it followed, or says "overridden"."""
    recommended = f"triage recommended {advice.strategy}: {advice.reason}" if advice else "no triage advice"
    size, valid = config.split.test_size, config.train.validation_size
    if config.split_column:
        train, test = given_split(frame[config.split_column], config.split_column)
        return SplitChoice(train, test, _overridden(f"given by column '{config.split_column}'", "split_column", advice))
    if config.time_column:
        train, test = time_split(frame[config.time_column], size)
        name = f"by time ('{config.time_column}'), latest {size:.0%} for testing"
        return SplitChoice(train, test, _overridden(name, "time_column", advice))
    strategy: str = config.split.strategy
    if strategy == "auto":
        strategy = advice.strategy if advice and advice.strategy != "given" else _fallback(classification)
        cited = f" ({advice.finding})" if advice and advice.finding else ""
        rule = f"triage{cited}: {advice.reason}" if advice else "a seeded hold-out (no triage advice)"
    else:
        rule = f"split.strategy in keel.yaml: overridden ({recommended})"
    explicit = "test_size" in config.split.model_fields_set
    if strategy == "holdout-80-10-10":
        if explicit:
            rule += f"; split.test_size {size:.0%} in keel.yaml: overridden"
        else:
            size, valid = 0.1, 0.1 / 0.9
    column = (advice.column if advice else None) or None
    if strategy == "time" and column and column in frame.columns:
        train, test = time_split(frame[column], size)
        return SplitChoice(train, test, Decision("split", f"by time ('{column}'), latest {size:.0%} for testing", rule))
    group = config.split.group_column or (column if strategy == "grouped" else None)
    if strategy == "grouped" and group and group in frame.columns:
        train, test = grouped_split(frame[group].to_numpy(), size, config.seed)
        return SplitChoice(
            train, test, Decision("split", f"grouped by '{group}', {size:.0%} of rows for testing", rule)
        )
    if strategy in ("time", "grouped"):
        raise ConfigError(
            f"split.strategy {strategy} needs a column.",
            hint="Set time_column (time) or split.group_column (grouped) in keel.yaml.",
        )
    train, test = holdout_split(y, classification=classification, test_size=size, seed=config.seed)
    kind = "stratified" if classification else "random"
    if strategy == "kfold":
        value = f"{kind} hold-out of {size:.0%} for testing; the search cross-validates (5 folds) on the rest"
        return SplitChoice(train, test, Decision("split", value, rule), kfold=True, validation_size=valid)
    if strategy == "holdout-80-10-10":
        value = f"{kind} {1 - size - valid * (1 - size):.0%}/{valid * (1 - size):.0%}/{size:.0%} train/validation/test, seed {config.seed}"
        return SplitChoice(train, test, Decision("split", value, rule), validation_size=valid)
    value = f"{kind} hold-out of {size:.0%}, seed {config.seed}"
    return SplitChoice(train, test, Decision("split", value, rule), validation_size=valid)


def _overridden(value: str, key: str, advice: SplitAdvice | None) -> Decision:
    same = advice is not None and (
        (key == "time_column" and advice.strategy == "time") or (key == "split_column" and advice.strategy == "given")
    )
    if same or advice is None:
        return Decision("split", value, f"{key} in keel.yaml")
    return Decision(
        "split", value, f"{key} in keel.yaml: overridden (triage recommended {advice.strategy}: {advice.reason})"
    )


def _fallback(classification: bool) -> str:
    return "stratified" if classification else "random"


def _minority(triage: TriageReport) -> float | None:
    """The rarest class's share of labelled rows, from triage (None for regression)."""
    target = triage.target
    if target is None or not target.classes or target.task == "regression":
        return None
    return min(target.classes.values()) / sum(target.classes.values())


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
