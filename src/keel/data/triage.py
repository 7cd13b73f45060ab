"""A short triage of a data set: shape, column roles, missing values, label balance, duplicates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from keel.data.infer import ColumnRole, infer_roles

MINORITY_SHARE_WARNING = 0.10
MAX_CLASSES_LISTED = 50
DROPPED = "dropped in keel.yaml"


@dataclass(frozen=True)
class ColumnSummary:
    name: str
    dtype: str
    semantic: str
    feature: bool
    missing_share: float
    unique: int
    reason: str = ""


@dataclass(frozen=True)
class TargetSummary:
    """The target's distribution: class counts when few distinct values, else numeric stats."""

    name: str
    missing: int
    classes: dict[str, int] | None = None
    stats: dict[str, float] | None = None


@dataclass(frozen=True)
class TriageReport:
    rows: int
    columns: list[ColumnSummary]
    duplicate_rows: int
    target: TargetSummary | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TriageReport:
        target = TargetSummary(**raw["target"]) if raw.get("target") else None
        columns = [ColumnSummary(**c) for c in raw["columns"]]
        return cls(raw["rows"], columns, raw["duplicate_rows"], target, list(raw.get("warnings", [])))


def triage(frame: Any, target: str | None = None, drop: tuple[str, ...] = ()) -> TriageReport:
    """Describe ``frame``; ``target`` must be one of its columns (checked by the caller)."""
    roles = {r.name: r for r in infer_roles(frame, exclude=(target,) if target else ())}
    columns = [_summary(frame, roles[name], name in drop) for name in frame.columns if name in roles]
    duplicates = int(frame.duplicated().sum())
    target_summary = _target_summary(frame[target], target) if target else None
    warnings = _warnings(len(frame), columns, duplicates, target_summary)
    return TriageReport(len(frame), columns, duplicates, target_summary, warnings)


def _summary(frame: Any, role: ColumnRole, dropped: bool) -> ColumnSummary:
    series = frame[role.name]
    reason = DROPPED if dropped else role.reason
    return ColumnSummary(
        name=role.name,
        dtype=str(series.dtype),
        semantic=role.semantic,
        feature=role.feature and not dropped,
        missing_share=float(series.isna().mean()),
        unique=int(series.nunique(dropna=True)),
        reason=reason,
    )


def _target_summary(series: Any, name: str) -> TargetSummary:
    import pandas as pd

    missing = int(series.isna().sum())
    present = series.dropna()
    classes = None
    if present.nunique() <= MAX_CLASSES_LISTED:
        counts = present.astype("str").value_counts()
        classes = {str(k): int(v) for k, v in counts.items()}
    stats = None
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        stats = {k: float(getattr(present, k)()) for k in ("min", "mean", "std", "max")}
    return TargetSummary(name, missing, classes, stats)


def _warnings(rows: int, columns: list[ColumnSummary], duplicates: int, target: TargetSummary | None) -> list[str]:
    out = []
    if duplicates:
        out.append(f"{duplicates} exact duplicate rows ({duplicates / rows:.1%}); they can inflate test scores.")
    for col in columns:
        if not col.feature and col.reason and col.reason != DROPPED:
            out.append(f"column '{col.name}' is not used as a feature: {col.reason}.")
    if target is None:
        return out
    if target.missing:
        out.append(f"target '{target.name}' is missing in {target.missing} rows; they are left out of training.")
    if target.classes and len(target.classes) <= 20:
        total = sum(target.classes.values())
        if len(target.classes) == 1:
            out.append(f"target '{target.name}' has a single class; there is nothing to learn.")
        for label, count in target.classes.items():
            if count / total < MINORITY_SHARE_WARNING:
                out.append(f"class '{label}' is only {count / total:.1%} of rows (under 10%).")
    return out
