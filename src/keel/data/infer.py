"""Decide each column's role: numeric or categorical feature, or excluded (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.schema import CATEGORICAL, NUMERIC, Column, InputSchema

MAX_CATEGORY_LIST = 200
IDENTIFIER_UNIQUE_SHARE = 0.9
IDENTIFIER_MIN_UNIQUE = 50


@dataclass(frozen=True)
class ColumnRole:
    """What a column is (its semantic type) and whether it is a feature."""

    name: str
    semantic: str  # numeric | categorical | boolean | datetime | identifier | constant | empty
    feature: bool
    reason: str = ""


def column_role(name: str, series: Any) -> ColumnRole:
    """The role of one column, by explicit rules on dtype and distinct values."""
    import pandas as pd

    non_null = int(series.notna().sum())
    if non_null == 0:
        return ColumnRole(name, "empty", False, "all values are missing")
    unique = int(series.nunique(dropna=True))
    if unique == 1:
        return ColumnRole(name, "constant", False, "has a single value")
    if pd.api.types.is_bool_dtype(series):
        return ColumnRole(name, "boolean", True)
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnRole(name, "datetime", False, "datetime features are not derived yet")
    if pd.api.types.is_numeric_dtype(series):
        return ColumnRole(name, "numeric", True)
    if unique >= IDENTIFIER_MIN_UNIQUE and unique >= IDENTIFIER_UNIQUE_SHARE * non_null:
        return ColumnRole(name, "identifier", False, f"{unique} distinct values in {non_null} rows looks like an id")
    return ColumnRole(name, "categorical", True)


def infer_roles(frame: Any, exclude: tuple[str, ...] = ()) -> list[ColumnRole]:
    """Roles of every column; ``exclude`` (target, dropped columns) are left out."""
    return [column_role(name, frame[name]) for name in frame.columns if name not in exclude]


def infer_schema(frame: Any, roles: list[ColumnRole]) -> InputSchema:
    """The input schema of the feature columns, with ranges and categories seen."""
    columns = []
    for role in roles:
        if not role.feature:
            continue
        series = frame[role.name]
        nullable = bool(series.isna().any())
        if role.semantic == "numeric":
            lo, hi = series.min(), series.max()
            columns.append(Column(role.name, NUMERIC, nullable=nullable, minimum=float(lo), maximum=float(hi)))
        else:
            cats = series.dropna().astype("str").value_counts().index[:MAX_CATEGORY_LIST]
            columns.append(Column(role.name, CATEGORICAL, nullable=nullable, categories=tuple(sorted(map(str, cats)))))
    return InputSchema(tuple(columns))
