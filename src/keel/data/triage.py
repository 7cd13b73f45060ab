"""Triage a data set before any training: columns, target, duplicates, leakage, the split.

Every finding has a check id and a severity: ``block`` stops ``keel train`` until fixed
or explicitly allowed (``--allow CHECK --reason``), ``warn`` is shown, ``info`` is
recorded. The rules live beside their checks: ``infer`` (roles), ``leakage``
(leaks), ``split`` (split strategy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keel.config import ProjectConfig
from keel.data import leakage, reliance
from keel.data.columns import ColumnStats, column_stats
from keel.data.infer import infer_roles
from keel.data.leakage import Finding, Strength
from keel.data.reliance import Reliance
from keel.data.split import SplitAdvice, given_split, recommend_split
from keel.data.target import encode_target, infer_task
from keel.errors import DataError, closest

MINORITY_SHARE_WARNING = 0.10
MAX_CLASSES_LISTED = 50
DROPPED = "dropped in keel.yaml"
SEVERITY_ORDER = {"block": 0, "warn": 1, "info": 2}
# Bump when triage's rules change: stored reports of another version are recomputed, not reused.
TRIAGE_VERSION = 8


@dataclass(frozen=True)
class TargetSummary:
    """The target: class counts when few distinct values, else numeric stats; the task it implies."""

    name: str
    missing: int
    task: str | None = None
    task_reason: str = ""
    classes: dict[str, int] | None = None
    stats: dict[str, float] | None = None
    histogram: dict[str, list[float]] | None = None


@dataclass(frozen=True)
class TriageOptions:
    """What the caller knows about the data beyond its bytes."""

    target: str | None = None
    drop: tuple[str, ...] = ()
    time_column: str | None = None
    split_column: str | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, config: ProjectConfig) -> TriageOptions:
        """What triage needs to know from a project file."""
        return cls(config.target, config.drop, config.time_column, config.split_column, config.seed)


@dataclass(frozen=True)
class TriageReport:
    rows: int
    columns: list[ColumnStats]
    duplicate_rows: int
    target: TargetSummary | None = None
    findings: list[Finding] = field(default_factory=list)
    split: SplitAdvice | None = None
    strengths: list[Strength] = field(default_factory=list)
    options: TriageOptions = TriageOptions()
    version: int = TRIAGE_VERSION
    reliance: list[Reliance] = field(default_factory=list)  # drop-column refits of the strongest columns

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "block"]

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.severity != "info"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TriageReport:
        return cls(
            rows=raw["rows"],
            columns=[ColumnStats(**{**c, "top": [tuple(t) for t in c.get("top") or []]}) for c in raw["columns"]],
            duplicate_rows=raw["duplicate_rows"],
            target=TargetSummary(**raw["target"]) if raw.get("target") else None,
            findings=[Finding(**f) for f in raw.get("findings", [])],
            split=SplitAdvice(**raw["split"]) if raw.get("split") else None,
            strengths=[Strength(**s) for s in raw.get("strengths", [])],
            options=TriageOptions(**{**raw.get("options", {}), "drop": tuple(raw.get("options", {}).get("drop", ()))}),
            version=int(raw.get("version", 0)),
            reliance=[Reliance(**r) for r in raw.get("reliance", [])],
        )


def triage(frame: Any, options: TriageOptions, test_frame: Any = None) -> TriageReport:
    """Describe ``frame`` (polars or pandas) and find what would make a model trained on it misleading."""
    import polars as pl

    frame = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    if test_frame is not None and not isinstance(test_frame, pl.DataFrame):
        test_frame = pl.from_pandas(test_frame)
    _check_columns(frame, options)
    special = tuple(c for c in (options.target, options.time_column, options.split_column) if c)
    names = [c for c in frame.columns if c not in special]
    uniques = dict(zip(names, frame.select(pl.col(c).drop_nulls().n_unique() for c in names).row(0), strict=True))
    roles = infer_roles(frame, exclude=special, uniques=uniques)
    dropped = set(options.drop)
    columns = [
        column_stats(
            frame[r.name],
            r,
            DROPPED if r.name in dropped else r.reason,
            r.feature and r.name not in dropped,
            uniques[r.name],
        )
        for r in roles
    ]
    hashes = frame.select(c for c in frame.columns if c != options.split_column).hash_rows(seed=0)
    duplicates = len(hashes) - hashes.n_unique()
    findings = _column_findings(columns, duplicates, frame.height)
    findings += leakage.identifier_findings([r for r in roles if r.name not in dropped])
    time_found, time_candidate = leakage.time_findings(frame, options.time_column, roles)
    findings += time_found
    findings += _text_findings(frame, columns)
    target = None
    strengths: list[Any] = []
    relied: list[Any] = []
    if options.target:
        target, target_findings, strengths, relied = _analyse_target(frame, options, columns)
        findings += target_findings
    if options.split_column or test_frame is not None:
        findings += _split_findings(frame, options, test_frame, hashes.to_numpy())
        findings += _text_overlap(frame, options, test_frame, columns)
    time_finding = next((f.check for f in time_found if f.check.startswith("split.")), None)
    split = _advice(
        frame.height,
        target,
        options.time_column or time_candidate,
        bool(options.split_column) or test_frame is not None,
        _entity_column(columns, frame.height),
        None if options.time_column else time_finding,
    )
    findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return TriageReport(frame.height, columns, duplicates, target, findings, split, strengths, options, reliance=relied)


def _check_columns(frame: Any, options: TriageOptions) -> None:
    for role, name in (("target", options.target), ("time", options.time_column), ("split", options.split_column)):
        if name is not None and name not in frame.columns:
            guess = closest(name, [str(c) for c in frame.columns])
            hint = f"Did you mean '{guess}'?" if guess else f"Columns are: {', '.join(map(str, frame.columns))}."
            raise DataError(f"{role} column '{name}' is not in the data.", hint=hint)
    unknown = [c for c in options.drop if c not in frame.columns]
    if unknown:
        raise DataError(
            f"drop lists column(s) {', '.join(map(repr, unknown))} that the data does not have.",
            hint=f"Columns are: {', '.join(map(str, frame.columns))}.",
        )


def _row_hashes(frame: Any, columns: list[Any]) -> np.ndarray:
    """One 64-bit hash per row of ``columns`` (equal rows, equal hashes)."""
    return frame.select(columns).hash_rows(seed=0).to_numpy()


def _column_findings(columns: list[ColumnStats], duplicates: int, rows: int) -> list[Finding]:
    out = []
    if duplicates:
        out.append(
            Finding(
                "data.duplicates",
                "warn",
                f"{duplicates:,} exact duplicate rows ({duplicates / rows:.1%}); "
                "copies split across train and test inflate test scores.",
                None,
                {"rows": duplicates},
            )
        )
    for col in columns:
        if col.note:
            check = "column.placeholder_missing" if "placeholder" in col.note else "column.mixed_types"
            out.append(Finding(check, "warn", f"'{col.name}': {col.note}.", col.name))
        if not col.feature and col.reason and col.reason != DROPPED and col.semantic != "identifier":
            out.append(Finding("column.excluded", "info", f"'{col.name}' is not a feature: {col.reason}.", col.name))
    return out


def _text_findings(frame: Any, columns: list[ColumnStats]) -> list[Finding]:
    from keel.data.text import near_duplicates

    out = []
    for col in columns:
        if col.semantic != "text":
            continue
        near = near_duplicates(frame[col.name].drop_nulls().to_list())
        if near.rows_with_near_copy:
            example = f" e.g. {near.examples[0][0]!r} ~ {near.examples[0][1]!r}" if near.examples else ""
            out.append(
                Finding(
                    "text.near_duplicates",
                    "warn",
                    f"'{col.name}': {near.rows_with_near_copy:,} of {near.rows_checked:,} distinct texts have "
                    f"a near-copy (MinHash Jaccard >= 0.8).{example}",
                    col.name,
                    {"rows": near.rows_with_near_copy, "checked": near.rows_checked},
                )
            )
    return out


def _analyse_target(
    frame: Any, options: TriageOptions, columns: list[ColumnStats]
) -> tuple[TargetSummary, list[Finding], list[Strength], list[Reliance]]:

    series = frame[options.target].to_pandas()
    present = series.dropna()
    findings = []
    if series.isna().any():
        findings.append(
            Finding(
                "target.missing_values",
                "info",
                f"target '{options.target}' is missing in "
                f"{int(series.isna().sum()):,} rows; they are left out of training.",
            )
        )
    if present.nunique() < 2:
        findings.append(
            Finding(
                "target.single_class",
                "block",
                f"target '{options.target}' has {present.nunique()} distinct value(s); there is nothing to learn.",
            )
        )
        return TargetSummary(str(options.target), int(series.isna().sum())), findings, [], []
    task, reason = infer_task(present)
    summary = _target_summary(series, task, reason)
    findings += _target_findings(summary)
    usable = [c.name for c in columns if c.feature and c.semantic != "text"]
    labelled = frame[options.target].is_not_null().arg_true().to_numpy()
    if len(labelled) > leakage.STRENGTH_SAMPLE:
        rng = np.random.default_rng(options.seed)
        labelled = np.sort(rng.choice(labelled, leakage.STRENGTH_SAMPLE, replace=False))
    sample = frame.select([*usable, options.target])[labelled].to_pandas()
    y, _ = encode_target(sample[options.target], task)
    strengths = leakage.column_strengths(sample, y, task, usable, seed=options.seed)
    findings += leakage.strength_findings(strengths, task, frame.height)
    top = [s.column for s in strengths if s.skill > 0][: reliance.TOP]
    relied = reliance.measure(sample, y, task, usable, top, seed=options.seed) if top else []
    findings += leakage.reliance_findings(strengths, relied, findings)
    texts = _text_strengths(frame, options, columns, labelled, y, task)
    findings += leakage.beside_text_findings(strengths, texts, findings)
    strengths = sorted(strengths + texts, key=lambda s: -s.skill)
    if task == "regression":
        numeric = [s.column for s in strengths if s.column in {c.name for c in columns if c.numeric}][:20]
        findings += leakage.sum_findings(sample, y, numeric)
    return summary, findings, strengths, relied


def _text_strengths(
    frame: Any, options: TriageOptions, columns: list[ColumnStats], labelled: np.ndarray, y: np.ndarray, task: str
) -> list[Strength]:
    """Each free-text feature's out-of-fold strength (TF-IDF + a linear model), on the same rows."""
    from keel.data.text_strength import text_strength

    names = [c.name for c in columns if c.feature and c.semantic == "text"]
    if not names:
        return []
    texts = frame.select(names)[labelled].to_pandas()
    return [text_strength(name, texts[name], y, task, seed=options.seed) for name in names]


def _target_summary(series: Any, task: str, reason: str) -> TargetSummary:
    present = series.dropna()
    classes = stats = histogram = None
    if task != "regression" or present.nunique() <= MAX_CLASSES_LISTED:
        counts = present.astype("str").value_counts()
        classes = {str(k): int(v) for k, v in counts.items()}
    if task == "regression":
        x = present.to_numpy(dtype=np.float64)
        stats = {
            "min": float(x.min()),
            "mean": float(x.mean()),
            "std": float(x.std()),
            "max": float(x.max()),
            "share_at_max": float(np.mean(x == x.max())),
        }
        counts_, edges = np.histogram(x, bins=30)
        histogram = {"edges": edges.tolist(), "counts": counts_.astype(float).tolist()}
    return TargetSummary(str(series.name), int(series.isna().sum()), task, reason, classes, stats, histogram)


def _target_findings(target: TargetSummary) -> list[Finding]:
    out = []
    if target.task != "regression" and target.classes:
        total = sum(target.classes.values())
        for label, count in target.classes.items():
            if count / total < MINORITY_SHARE_WARNING:
                out.append(
                    Finding(
                        "target.rare_class",
                        "warn",
                        f"class '{label}' is only {count / total:.1%} of rows (under 10%): stratify splits "
                        "and prefer PR AUC to accuracy.",
                        None,
                        {"class": label, "share": count / total},
                    )
                )
    if target.stats and target.stats["share_at_max"] >= 0.01:
        share, top = target.stats["share_at_max"], target.stats["max"]
        out.append(
            Finding(
                "target.capped",
                "warn",
                f"{share:.1%} of target values sit at the maximum {top:,.6g}: "
                "the target looks capped, so errors above it are invisible.",
                None,
                {"share": share},
            )
        )
    return out


def _split_findings(frame: Any, options: TriageOptions, test_frame: Any, hashes: np.ndarray) -> list[Finding]:
    if options.split_column:
        train, test = given_split(frame[options.split_column].to_pandas(), options.split_column)
        out = leakage.overlap_findings(hashes[train], hashes[test])
        if options.time_column:
            times = frame[options.time_column]
            out += leakage.split_order_findings(times.gather(train), times.gather(test), options.time_column)
        return out
    if test_frame is None:
        return []
    missing = [c for c in frame.columns if c not in test_frame.columns]
    if missing:
        raise DataError(
            f"the test file lacks column(s) {', '.join(map(repr, missing))} of the data.",
            hint="Train and test files must have the same columns.",
        )
    out = leakage.overlap_findings(hashes, _row_hashes(test_frame.select(frame.columns), list(frame.columns)))
    if options.time_column:
        out += leakage.split_order_findings(
            frame[options.time_column], test_frame[options.time_column], options.time_column
        )
    return out


def _text_overlap(frame: Any, options: TriageOptions, test_frame: Any, columns: list[ColumnStats]) -> list[Finding]:
    """Test texts that have a near-copy among the training texts (MinHash)."""
    from keel.data.split import given_split
    from keel.data.text import near_overlap

    out = []
    for col in (c for c in columns if c.semantic == "text"):
        if options.split_column:
            train, test = given_split(frame[options.split_column].to_pandas(), options.split_column)
            train_texts, test_texts = frame[col.name].gather(train), frame[col.name].gather(test)
        else:
            train_texts, test_texts = frame[col.name], test_frame[col.name]
        shared = near_overlap(train_texts.drop_nulls().to_list(), test_texts.drop_nulls().to_list())
        if shared:
            out.append(
                Finding(
                    "leak.train_test_near_overlap",
                    "warn",
                    f"'{col.name}': {shared:,} distinct test texts have a near-copy in the training set "
                    "(MinHash Jaccard >= 0.8): test scores would be inflated.",
                    col.name,
                    {"texts": shared},
                )
            )
    return out


def _entity_column(columns: list[ColumnStats], rows: int) -> str | None:
    """An identifier whose values repeat (an id-like string column, or one with too many categories
    to encode and a name like ``customer_id``): rows of one entity, to keep on one side of a split."""
    from keel.data.infer import ID_NAME

    present = {c.name: rows * (1 - c.missing_share) for c in columns}
    for col in columns:
        repeats = 1 < col.unique < present[col.name]
        named = bool(ID_NAME.search(col.name)) and col.semantic == "categorical" and not col.feature
        if repeats and col.reason != DROPPED and (col.semantic == "identifier" or named):
            return col.name
    return None


def _advice(
    rows: int,
    target: TargetSummary | None,
    time_column: str | None,
    split_given: bool,
    group_column: str | None = None,
    time_finding: str | None = None,
) -> SplitAdvice:
    classification = bool(target and target.task in ("binary", "multiclass"))
    minority = None
    if classification and target and target.classes:
        minority = min(target.classes.values()) / sum(target.classes.values())
    return recommend_split(
        rows,
        classification=classification,
        minority_share=minority,
        time_column=time_column,
        split_given=split_given,
        group_column=group_column,
        time_finding=time_finding,
    )
