"""The data contract: what a snapshot (or a model) says its data looks like, and checking new data.

A contract is an ``InputSchema``: per column its kind, nullability, and the range or
categories seen. New data is checked with pandera; every violation comes back with its
count and examples: missing or new columns, type changes, out-of-range values, unseen
categories, and nulls where the contract had none.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keel.data.infer import MAX_ONE_HOT
from keel.schema import CATEGORICAL, NUMERIC, TEXT, Column, InputSchema

EXAMPLES = 3
CHECK_NAMES = {"not_nullable": "null where none were", "in_range": "out of range", "isin": "unseen category"}


@dataclass(frozen=True)
class Violation:
    column: str
    check: str
    count: int
    examples: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def message(self) -> str:
        examples = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        detail = f" {self.detail}" if self.detail else ""
        return f"'{self.column}': {self.check}{detail}: {self.count:,} row(s){examples}"


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    against: str
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Contract:
    """Typed, checked columns, and the other columns the data is known to have.

    A model's contract (its bundle schema) knows only its inputs: ``other_columns`` is
    None and extra columns (ids, the target) are not reported.
    """

    schema: InputSchema
    other_columns: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.schema.to_dict() | {"other_columns": list(self.other_columns or ())}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Contract:
        return cls(InputSchema.from_dict(raw), tuple(raw.get("other_columns", ())))


def build_contract(report: Any) -> Contract:
    """The contract of a data set from its triage report (no second pass over the data): typed
    columns (features, dropped features, the target) are checked, every other column is known."""
    columns = []
    for c in report.columns:
        if c.semantic == "numeric" and c.numeric:
            columns.append(
                Column(
                    c.name, NUMERIC, nullable=c.missing_share > 0, minimum=c.numeric["min"], maximum=c.numeric["max"]
                )
            )
        elif c.categories is not None:
            columns.append(Column(c.name, CATEGORICAL, nullable=c.missing_share > 0, categories=tuple(c.categories)))
        elif c.semantic == "text":
            columns.append(Column(c.name, TEXT, nullable=c.missing_share > 0))
    target = report.target
    if target is not None and target.task is not None:
        if target.task == "regression" and target.stats:
            columns.append(
                Column(
                    target.name,
                    NUMERIC,
                    nullable=target.missing > 0,
                    minimum=target.stats["min"],
                    maximum=target.stats["max"],
                )
            )
        elif target.classes:
            columns.append(
                Column(target.name, CATEGORICAL, nullable=target.missing > 0, categories=tuple(sorted(target.classes)))
            )
    schema = InputSchema(tuple(columns))
    options = report.options
    names = [c.name for c in report.columns] + [
        n for n in (options.target, options.time_column, options.split_column) if n
    ]
    checked = set(schema.names)
    return Contract(schema, tuple(n for n in dict.fromkeys(names) if n not in checked))


def validate_frame(frame: Any, contract: Contract, against: str) -> ValidationReport:
    """Check ``frame`` against ``contract``; every violation is listed, none is fatal here."""
    violations = _column_set(frame, contract)
    present = [c for c in contract.schema.columns if c.name in frame.columns]
    data, type_violations, not_numbers = _coerce(frame, present)
    violations += type_violations
    violations += _pandera_violations(data, present, not_numbers)
    return ValidationReport(len(frame), against, violations)


def _column_set(frame: Any, contract: Contract) -> list[Violation]:
    expected = [*contract.schema.names, *(contract.other_columns or ())]
    out = [Violation(name, "missing column", len(frame)) for name in expected if name not in frame.columns]
    if contract.other_columns is None:
        return out
    known = set(expected)
    out += [
        Violation(str(name), "new column", len(frame), detail="(not in the contract)")
        for name in frame.columns
        if name not in known
    ]
    return out


def _coerce(frame: Any, columns: list[Any]) -> tuple[Any, list[Violation], dict[str, set[Any]]]:
    """Numeric columns as numbers (reporting values that are not), categorical ones as strings.

    Also returns, per column, the rows that were not numbers: their null after coercion
    is not a second violation.
    """
    import pandas as pd

    data, out, not_numbers = {}, [], {}
    for col in columns:
        series = frame[col.name]
        if col.kind == NUMERIC:
            numbers = pd.to_numeric(series, errors="coerce") if not pd.api.types.is_numeric_dtype(series) else series
            bad = numbers.isna() & series.notna()
            if bad.any():
                examples = [f"row {i}: {series.iloc[i]!r}" for i in bad.to_numpy().nonzero()[0][:EXAMPLES]]
                out.append(Violation(col.name, "type change", int(bad.sum()), examples, "(expected numbers)"))
                not_numbers[col.name] = set(frame.index[bad.to_numpy()])
            data[col.name] = numbers.astype("float64")
        else:
            data[col.name] = series.astype("str").where(series.notna(), None).astype(object)
    return pd.DataFrame(data, index=frame.index), out, not_numbers


def _pandera_violations(data: Any, columns: list[Any], not_numbers: dict[str, set[Any]]) -> list[Violation]:
    import pandera.pandas as pa

    spec = {}
    for col in columns:
        checks = []
        if col.kind == NUMERIC and col.minimum is not None and col.maximum is not None:
            checks.append(pa.Check.in_range(col.minimum, col.maximum))
        if col.kind == CATEGORICAL and col.categories and len(col.categories) < MAX_ONE_HOT:
            checks.append(pa.Check.isin(list(col.categories)))
        spec[col.name] = pa.Column(nullable=col.nullable, checks=checks)
    try:
        pa.DataFrameSchema(spec, strict=False).validate(data, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        already = [i in not_numbers.get(c, ()) for c, i in zip(cases["column"], cases["index"], strict=True)]
        return _group(cases[~np.array(already, dtype=bool)], {c.name: c for c in columns})
    return []


def _group(cases: Any, columns: dict[str, Any]) -> list[Violation]:
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        base = re.sub(r"\(.*", "", str(check))
        name = CHECK_NAMES.get(base, base)
        col = columns.get(column)
        detail = f"[{col.minimum:g}, {col.maximum:g}]" if base == "in_range" and col is not None else ""
        examples = [f"row {i}: {v!r}" for i, v in zip(group["index"], group["failure_case"], strict=False)][:EXAMPLES]
        out.append(Violation(str(column), name, len(group), examples, detail))
    return out
