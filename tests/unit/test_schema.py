from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import SchemaError
from keel.schema import CATEGORICAL, MISSING_CATEGORY, NUMERIC, Column, InputSchema

SCHEMA = InputSchema((Column("age", NUMERIC), Column("hours-per-week", NUMERIC), Column("workclass", CATEGORICAL)))


def test_rows_become_canonical_arrays() -> None:
    arrays = SCHEMA.rows_to_arrays(
        [
            {"age": 39, "hours-per-week": 40.5, "workclass": "Private"},
            {"age": None, "hours-per-week": 1, "workclass": None},
        ]
    )
    assert arrays["age"].dtype == np.float32
    assert np.isnan(arrays["age"][1])
    assert arrays["hours-per-week"].tolist() == [40.5, 1.0]
    assert arrays["workclass"].tolist() == ["Private", MISSING_CATEGORY]


def test_every_problem_is_named_with_row_and_column() -> None:
    rows = [
        {"age": "forty", "hours-per-week": 40, "workclass": "Private"},
        {"age": 30, "hours-per-week": 40, "workclass": 3.5},
    ]
    with pytest.raises(SchemaError, match=r"row 0, column 'age': must be a number or null, got 'forty'") as info:
        SCHEMA.rows_to_arrays(rows)
    assert [(p["row"], p["column"]) for p in info.value.problems] == [(0, "age"), (1, "workclass")]


def test_missing_column_suggests_the_misspelled_key() -> None:
    with pytest.raises(SchemaError, match=r"column 'hours-per-week': is missing.*got 'hours_per_week'\?"):
        SCHEMA.rows_to_arrays([{"age": 1, "hours_per_week": 40, "workclass": "x"}])


@pytest.mark.parametrize("rows", [[], {"age": 1}, "x", None])
def test_rows_must_be_a_non_empty_list(rows: object) -> None:
    with pytest.raises(SchemaError, match="non-empty list of rows"):
        SCHEMA.rows_to_arrays(rows)


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(SchemaError, match="must be a number or null, got True"):
        SCHEMA.rows_to_arrays([{"age": True, "hours-per-week": 1, "workclass": "x"}])


def test_frame_with_a_non_numeric_value_names_rows() -> None:
    frame = pd.DataFrame({"age": ["1", "two", "3"], "hours-per-week": [1, 2, 3], "workclass": ["a", "b", None]})
    with pytest.raises(SchemaError, match=r"column 'age': must be numeric; 1 value\(s\) are not \(row 1: 'two'\)"):
        SCHEMA.frame_to_arrays(frame)


def test_frame_missing_columns_are_listed() -> None:
    with pytest.raises(SchemaError, match="column 'age': is missing from the data"):
        SCHEMA.frame_to_arrays(pd.DataFrame({"workclass": ["a"]}))


def test_schema_round_trips_through_dict() -> None:
    schema = SCHEMA.with_input_names(["age", "hours_per_week", "workclass"])
    assert InputSchema.from_dict(schema.to_dict()) == schema
    assert schema.onnx_feed(SCHEMA.rows_to_arrays([{"age": 1, "hours-per-week": 2, "workclass": "a"}]))[
        "hours_per_week"
    ].shape == (1, 1)


values = st.one_of(st.none(), st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False, width=32))
labels = st.one_of(st.none(), st.text(min_size=1, max_size=8), st.integers(-100, 100))
row = st.fixed_dictionaries({"age": values, "hours-per-week": values, "workclass": labels})


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=20))
def test_json_rows_and_frames_give_identical_model_inputs(rows: list[dict[str, object]]) -> None:
    """The serving path (JSON rows) and the training path (DataFrame) must agree exactly."""
    from_rows = SCHEMA.rows_to_arrays(rows)
    frame = pd.DataFrame(
        {
            "age": pd.array([r["age"] for r in rows], dtype="Float64"),
            "hours-per-week": pd.array([r["hours-per-week"] for r in rows], dtype="Float64"),
            "workclass": pd.Series([r["workclass"] for r in rows], dtype=object),
        }
    )
    from_frame = SCHEMA.frame_to_arrays(frame)
    for name in SCHEMA.names:
        np.testing.assert_array_equal(from_rows[name], from_frame[name])


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)


def value_by_value(schema: InputSchema, rows: list[dict]) -> dict[str, np.ndarray] | None:
    """The reference: every value through its column's coercion, one at a time."""
    from keel.schema import _coerce_categorical, _coerce_numeric

    arrays = {}
    for col in schema.columns:
        coerce = _coerce_numeric if col.kind == NUMERIC else _coerce_categorical
        results = [coerce(row[col.name]) for row in rows]
        if not all(ok for ok, _ in results):
            return None
        dtype = np.float32 if col.kind == NUMERIC else object
        arrays[col.name] = np.array([value for _, value in results], dtype=dtype)
    return arrays


NUMBERS = st.one_of(st.none(), st.integers(-(10**40), 10**40), st.floats(allow_nan=False, allow_infinity=False))
CLEAN_ROWS = st.lists(st.tuples(NUMBERS, NUMBERS, st.text(max_size=5)), min_size=16, max_size=40)
MIXED_ROWS = st.lists(st.tuples(JSON_VALUES, JSON_VALUES, JSON_VALUES), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(CLEAN_ROWS, MIXED_ROWS), st.data())
def test_the_vectorised_path_accepts_and_refuses_exactly_what_the_value_path_does(values: list[tuple], data) -> None:
    rows = [dict(zip(["age", "hours-per-week", "workclass"], v, strict=True)) for v in values]
    if data.draw(st.booleans()):  # one odd value somewhere in an otherwise clean batch
        row, column = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.sampled_from(SCHEMA.names))
        rows[row][column] = data.draw(JSON_VALUES)
    expected = value_by_value(SCHEMA, rows)
    columns = {name: [row[name] for row in rows] for name in SCHEMA.names}
    for convert in (lambda: SCHEMA.rows_to_arrays(rows), lambda: SCHEMA.columns_to_arrays(columns)):
        if expected is None:
            with pytest.raises(SchemaError):
                convert()
            continue
        got = convert()
        for name in SCHEMA.names:
            assert got[name].dtype == expected[name].dtype
            np.testing.assert_array_equal(got[name], expected[name])


def test_numbers_beyond_float32_are_refused_by_name() -> None:
    with pytest.raises(SchemaError) as caught:
        SCHEMA.rows_to_arrays([{"age": 10**400, "hours-per-week": 1e300, "workclass": "x"}])
    problems = {p["column"]: p["problem"] for p in caught.value.problems}
    assert "out of range" in problems["age"] and "32-bit" in problems["hours-per-week"]
