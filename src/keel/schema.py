"""A model's input schema and the one way raw inputs become model inputs.

Training and serving both turn their inputs (a DataFrame, or JSON rows) into
the same canonical arrays here, one per column: numeric columns as float32
with NaN for missing, categorical and text columns as ``object`` arrays of ``str``
with ``MISSING_CATEGORY`` for missing (text is tokenised inside the model's graph). Everything after that is the fitted pipeline
(or its ONNX graph), so the two paths cannot compute features differently.

This module imports numpy only; the server relies on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keel.errors import SchemaError, closest

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TEXT = "text"  # free text: a string, vectorised by the pipeline (TF-IDF inside the ONNX graph)
TOKEN_PATTERN = r"[a-zA-Z0-9]+"  # a text's tokens (lower-cased): TF-IDF's, and the monitor's
KINDS = (NUMERIC, CATEGORICAL, TEXT)
MISSING_CATEGORY = ""
MAX_PROBLEMS = 100

# Prediction log columns written beside the input columns. Input columns may not
# start with "keel_" (training refuses them), so these never collide.
LOG_TIME = "keel_ts"
LOG_MODEL = "keel_model"
LOG_VERSION = "keel_version"
LOG_REQUEST = "keel_request_id"
LOG_LABEL = "keel_label"
LOG_SCORE = "keel_score"
LOG_ROUTE = "keel_route"  # champion | canary | shadow (a shadow row is a second opinion, not an answer)
LOG_ID = "keel_id"  # the request's serving.id_column value, when configured: labels join on it


@dataclass(frozen=True)
class Column:
    """One input column: its kind and what training saw of it."""

    name: str
    kind: str
    input_name: str = ""
    nullable: bool = True
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "nullable": self.nullable}
        if self.input_name:
            out["input_name"] = self.input_name
        if self.kind == CATEGORICAL:
            out["categories"] = list(self.categories)
        elif self.kind == NUMERIC:
            out["minimum"], out["maximum"] = self.minimum, self.maximum
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Column:
        if raw.get("kind") not in KINDS:
            raise ValueError(f"column {raw.get('name')!r} has unknown kind {raw.get('kind')!r}")
        return cls(
            name=str(raw["name"]),
            kind=str(raw["kind"]),
            input_name=str(raw.get("input_name", "")),
            nullable=bool(raw.get("nullable", True)),
            categories=tuple(raw.get("categories", ())),
            minimum=raw.get("minimum"),
            maximum=raw.get("maximum"),
        )


@dataclass(frozen=True)
class InputSchema:
    """The ordered input columns of a model."""

    columns: tuple[Column, ...]
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def with_input_names(self, input_names: Sequence[str]) -> InputSchema:
        """The same schema with each column's ONNX graph input name recorded."""
        if len(input_names) != len(self.columns):
            raise ValueError(f"{len(input_names)} graph inputs for {len(self.columns)} columns")
        cols = tuple(replace(c, input_name=n) for c, n in zip(self.columns, input_names, strict=True))
        return InputSchema(cols)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> InputSchema:
        return cls(tuple(Column.from_dict(c) for c in raw["columns"]))

    # -- JSON rows (serving) ------------------------------------------------

    def rows_to_arrays(self, rows: Any) -> dict[str, np.ndarray]:
        """Validate JSON rows and return one canonical array per column.

        Raises SchemaError listing every problem (up to ``MAX_PROBLEMS``), each
        with its row number and column.
        """
        if not isinstance(rows, list) or not rows:
            raise SchemaError([_problem(None, None, "expected a non-empty list of rows (JSON objects)")])
        fast = self._rows_fast(rows) if len(rows) >= VECTORISE_FROM else None
        if fast is not None:
            return fast
        arrays = {c.name: _empty(c, len(rows)) for c in self.columns}
        problems: list[dict[str, object]] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(_problem(i, None, f"must be a JSON object of column -> value, got {_type(row)}"))
                continue
            self._fill_row(i, row, arrays, problems)
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            raise SchemaError(problems, hint=self._unexpected_hint(rows[0]))
        return arrays

    def _rows_fast(self, rows: list[Any]) -> dict[str, np.ndarray] | None:
        """The arrays when every row is clean, column by column; None means look row by row."""
        arrays = {}
        try:
            for col in self.columns:
                name = col.name
                column = _column_fast(col, [row[name] for row in rows])
                if column is None:
                    return None
                arrays[name] = column
        except (KeyError, TypeError):  # a missing column, a row that is not an object
            return None
        return arrays

    def _fill_row(self, i: int, row: dict[str, Any], arrays: dict[str, np.ndarray], problems: list) -> None:
        for col in self.columns:
            if col.name not in row:
                problems.append(_problem(i, col.name, "is missing (send null for an unknown value)"))
                continue
            value = row[col.name]
            coerce = _coerce_numeric if col.kind == NUMERIC else _coerce_categorical
            ok, out = coerce(value)
            if ok:
                arrays[col.name][i] = out
            else:
                problems.append(_problem(i, col.name, out))

    def _unexpected_hint(self, first_row: Any) -> str | None:
        if not isinstance(first_row, dict):
            return None
        extra = [k for k in first_row if k not in self._by_name]
        missing = [c for c in self.names if c not in first_row]
        if not missing:
            return None
        pairs = [f"'{m}' (got '{closest(m, extra)}'?)" for m in missing if closest(m, extra)]
        if pairs:
            return "Check the column names: " + ", ".join(pairs) + "."
        return f"Expected columns: {', '.join(self.names)}."

    def columns_to_arrays(self, columns: dict[str, Any]) -> dict[str, np.ndarray]:
        """Validate one list of values per column (the Open Inference Protocol's tensors) and
        return canonical arrays; SchemaError names every bad column and row."""
        problems: list[dict[str, object]] = []
        missing = [c for c in self.names if c not in columns]
        problems += [_problem(None, m, "is missing (one input tensor per column)") for m in missing]
        lengths = {name: len(v) for name, v in columns.items() if isinstance(v, list)}
        problems += [
            _problem(None, n, "must be a list of values") for n, v in columns.items() if not isinstance(v, list)
        ]
        if len(set(lengths.values())) > 1:
            problems.append(_problem(None, None, f"every input must have the same number of rows, got {lengths}"))
        if problems:
            raise SchemaError(problems, hint=f"Expected inputs: {', '.join(self.names)}.")
        n = next(iter(lengths.values()))
        if n == 0:
            raise SchemaError([_problem(None, None, "expected at least one row")])
        arrays = {}
        for col in self.columns:
            values = columns[col.name]
            fast = _column_fast(col, values)
            if fast is not None:
                arrays[col.name] = fast
                continue
            out = _empty(col, n)
            coerce = _coerce_numeric if col.kind == NUMERIC else _coerce_categorical
            for i, value in enumerate(values):
                ok, coerced = coerce(value)
                if ok:
                    out[i] = coerced
                elif len(problems) < MAX_PROBLEMS:
                    problems.append(_problem(i, col.name, coerced))
            arrays[col.name] = out
        if problems:
            raise SchemaError(problems)
        return arrays

    # -- DataFrames (training, batch scoring) -------------------------------

    def frame_to_arrays(self, frame: Any) -> dict[str, np.ndarray]:
        """Canonical arrays from a pandas DataFrame; SchemaError on misfit."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise SchemaError(
                [_problem(None, m, "is missing from the data") for m in missing],
                hint=f"The model expects columns: {', '.join(self.names)}.",
            )
        arrays: dict[str, np.ndarray] = {}
        problems: list[dict[str, object]] = []
        for col in self.columns:
            series = frame[col.name]
            if col.kind == NUMERIC:
                arrays[col.name] = _numeric_series(series, col.name, problems)
            else:
                arrays[col.name] = _categorical_series(series)
        if problems:
            raise SchemaError(problems)
        return arrays

    def onnx_feed(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Map canonical arrays to the ONNX graph's inputs (one [N, 1] tensor each)."""
        return {c.input_name or c.name: arrays[c.name].reshape(-1, 1) for c in self.columns}


def arrays_to_frame(schema: InputSchema, arrays: dict[str, np.ndarray]) -> Any:
    """A DataFrame of canonical arrays, in schema order (for the native pipeline)."""
    import pandas as pd

    return pd.DataFrame({name: arrays[name] for name in schema.names}, copy=False)


def _empty(col: Column, n: int) -> np.ndarray:
    return np.empty(n, dtype=np.float32 if col.kind == NUMERIC else object)


_FLOAT32_INF_FROM = (2 - 2**-24) * 2.0**127  # the smallest magnitude that rounds to an infinite float32
VECTORISE_FROM = 16  # rows; below that numpy's per-call overhead costs more than a Python loop
_NUMBERS_OR_NULL = frozenset({int, float, type(None)})
_STRINGS = frozenset({str})


def _column_fast(col: Column, values: list[Any]) -> np.ndarray | None:
    """One column's canonical array in a few vectorised steps when its values are all of the
    expected JSON types (the common case); None sends the caller to the value-by-value path,
    which accepts the same inputs and names every problem."""
    if len(values) < VECTORISE_FROM:
        return None
    kinds = set(map(type, values))
    if col.kind == NUMERIC:
        if not kinds <= _NUMBERS_OR_NULL:
            return None
        try:  # None becomes NaN
            with np.errstate(over="ignore"):
                out = np.array(values, dtype=np.float64).astype(np.float32)
        except OverflowError:  # an int too large for a float: the slow path names it
            return None
        return None if np.isinf(out).any() else out  # beyond float32: the slow path names it too
    if kinds <= _STRINGS:
        return np.array(values, dtype=object)
    return None


def _coerce_numeric(value: Any) -> tuple[bool, Any]:
    if value is None:
        return True, np.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            return False, f"is out of range for a number: {_show(value)}"
        if not -_FLOAT32_INF_FROM < as_float < _FLOAT32_INF_FROM:
            return False, f"is out of range for a 32-bit float: {_show(value)}"
        return True, as_float
    return False, f"must be a number or null, got {_show(value)}"


def _coerce_categorical(value: Any) -> tuple[bool, Any]:
    if value is None:
        return True, MISSING_CATEGORY
    if isinstance(value, str):
        return True, value
    if isinstance(value, (bool, int)):
        return True, str(value)
    return False, f"must be a string or null, got {_show(value)}"


def _numeric_series(series: Any, name: str, problems: list[dict[str, object]]) -> np.ndarray:
    import pandas as pd

    if series.dtype == bool:
        return series.to_numpy(dtype=np.float32)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        idx = np.flatnonzero(bad.to_numpy())
        examples = ", ".join(f"row {i}: {series.iloc[i]!r}" for i in idx[:3])
        problems.append(_problem(None, name, f"must be numeric; {len(idx)} value(s) are not ({examples})"))
    return values.to_numpy(dtype=np.float32, na_value=np.nan)


def _categorical_series(series: Any) -> np.ndarray:
    as_str = series.astype("str") if series.dtype != object else series.map(_str_or_none, na_action="ignore")
    return as_str.to_numpy(dtype=object, na_value=MISSING_CATEGORY)


def _str_or_none(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


def _problem(row: int | None, column: str | None, text: str) -> dict[str, object]:
    return {"row": row, "column": column, "problem": text}


def _type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:40]}... ({_type(value)})" if len(text) > 40 else f"{text} ({_type(value)})"
