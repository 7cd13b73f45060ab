"""Decide each column's role: what it is (semantic type) and whether it is a feature.

| semantic | rule | feature? |
|---|---|---|
| empty | every value missing | no |
| constant | one distinct value | no |
| boolean | bool dtype | yes |
| datetime | datetime dtype | no (not derived yet) |
| numeric | numeric dtype; integer row ids (unique, and increasing or named like an id) are identifiers | yes |
| identifier | strings with >= 90% distinct values (and at least 50), or integer row ids | no |
| text | strings whose median value has >= 4 words | yes: TF-IDF inside the pipeline (keel.features.build) |
| categorical | other strings; more than ``MAX_ONE_HOT`` distinct values are too many to encode | yes, up to ``MAX_ONE_HOT`` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keel.schema import CATEGORICAL, NUMERIC, TEXT, Column, InputSchema

MAX_CATEGORY_LIST = 1000
MAX_ONE_HOT = 1000
IDENTIFIER_UNIQUE_SHARE = 0.9
IDENTIFIER_MIN_UNIQUE = 50
TEXT_MIN_MEDIAN_WORDS = 4
ID_NAME = re.compile(r"(^|[_\-\s])(id|index|idx|key|uuid)$|^id[_\-\s]", re.IGNORECASE)
SAMPLE_FOR_TEXT = 2000


@dataclass(frozen=True)
class ColumnRole:
    """What a column is (its semantic type) and whether it is a feature, and why not."""

    name: str
    semantic: str  # numeric | categorical | boolean | datetime | text | identifier | constant | empty
    feature: bool
    reason: str = ""


def column_role(name: str, series: Any, unique: int | None = None) -> ColumnRole:
    """The role of one column (a polars Series), by the rules in this module's table.

    ``unique`` is its distinct count without missing values, when already known.
    """
    import polars as pl

    non_null = len(series) - series.null_count()
    if non_null == 0:
        return ColumnRole(name, "empty", False, "all values are missing")
    unique = int(series.drop_nulls().n_unique()) if unique is None else unique
    dtype = series.dtype
    if unique == 1:
        return ColumnRole(name, "constant", False, "has a single value")
    if dtype == pl.Boolean:
        return ColumnRole(name, "boolean", True)
    if dtype.is_temporal():
        return ColumnRole(name, "datetime", False, "datetime features are not derived yet")
    if dtype.is_numeric():
        if _is_row_id(name, series, unique, non_null):
            return ColumnRole(name, "identifier", False, f"integer row id ({unique:,} distinct in {non_null:,} rows)")
        return ColumnRole(name, "numeric", True)
    if _is_text(series):
        return ColumnRole(name, "text", True)
    if unique >= IDENTIFIER_MIN_UNIQUE and unique >= IDENTIFIER_UNIQUE_SHARE * non_null:
        return ColumnRole(
            name, "identifier", False, f"{unique:,} distinct values in {non_null:,} rows looks like an id"
        )
    if unique > MAX_ONE_HOT:
        return ColumnRole(name, "categorical", False, f"{unique:,} categories are too many to one-hot encode")
    return ColumnRole(name, "categorical", True)


def infer_roles(frame: Any, exclude: tuple[str, ...] = (), uniques: dict[str, int] | None = None) -> list[ColumnRole]:
    """Roles of every column of a polars DataFrame; ``exclude`` (target, ...) are left out."""
    known = uniques or {}
    return [column_role(name, frame[name], known.get(name)) for name in frame.columns if name not in exclude]


def infer_schema(frame: Any, roles: list[ColumnRole]) -> InputSchema:
    """The input schema of the feature columns of a pandas DataFrame, with ranges and categories seen."""
    return InputSchema(tuple(describe_column(frame[r.name], r) for r in roles if r.feature))


def describe_column(series: Any, role: ColumnRole) -> Column:
    """A schema column with what the data shows: nullability, range or categories."""
    nullable = bool(series.isna().any())
    if role.semantic == "numeric":
        return Column(role.name, NUMERIC, nullable=nullable, minimum=float(series.min()), maximum=float(series.max()))
    if role.semantic == "text":
        return Column(role.name, TEXT, nullable=nullable)
    cats = series.dropna().astype("str").value_counts().index[:MAX_CATEGORY_LIST]
    return Column(role.name, CATEGORICAL, nullable=nullable, categories=tuple(sorted(map(str, cats))))


def _is_row_id(name: str, series: Any, unique: int, non_null: int) -> bool:
    if not series.dtype.is_integer() or unique < 0.99 * non_null or non_null < IDENTIFIER_MIN_UNIQUE:
        return False
    return bool(ID_NAME.search(str(name))) or bool(series.null_count() == 0 and series.is_sorted())


def _is_text(series: Any) -> bool:
    import polars as pl

    sample = series.drop_nulls()
    if len(sample) > SAMPLE_FOR_TEXT:
        sample = sample.sample(SAMPLE_FOR_TEXT, seed=0)
    words = sample.cast(pl.String).str.count_matches(r"\S+")
    return len(words) > 0 and float(words.median()) >= TEXT_MIN_MEDIAN_WORDS
