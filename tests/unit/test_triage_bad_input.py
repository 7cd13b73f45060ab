"""Awkward data gets a report line, never a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data.split import recommend_split
from keel.data.triage import TriageOptions, triage


def test_mixed_types_column(rng: np.random.Generator) -> None:
    values = [str(v) for v in rng.integers(0, 100, 500)] + ["twelve", "12kg", "about 40"] * 20
    data = pd.DataFrame({"amount": values, "y": rng.choice(["a", "b"], len(values))})
    report = triage(data, TriageOptions(target="y"))
    note = [f for f in report.findings if f.id == "column.mixed_types:amount"]
    assert note and "of values are numbers" in note[0].message


def test_placeholder_category_for_missing(rng: np.random.Generator) -> None:
    data = pd.DataFrame({"contact": rng.choice(["cell", "unknown"], 500), "y": rng.choice(["a", "b"], 500)})
    report = triage(data, TriageOptions(target="y"))
    assert "column.placeholder_missing:contact" in {f.id for f in report.findings}


def test_single_class_target_blocks(rng: np.random.Generator) -> None:
    data = pd.DataFrame({"x": rng.normal(size=100), "y": ["same"] * 100})
    report = triage(data, TriageOptions(target="y"))
    assert [f.check for f in report.blocking] == ["target.single_class"]


def test_a_hundred_thousand_categories(rng: np.random.Generator) -> None:
    n = 150_000
    data = pd.DataFrame({"code": [f"k{i}" for i in rng.integers(0, 100_000, n)], "y": rng.choice(["a", "b"], n)})
    report = triage(data, TriageOptions(target="y"))
    column = next(c for c in report.columns if c.name == "code")
    assert not column.feature
    assert (column.semantic in ("identifier", "categorical") and "too many" in column.reason) or "id" in column.reason


def test_all_null_and_constant_columns(rng: np.random.Generator) -> None:
    data = pd.DataFrame({"nothing": [None] * 200, "same": 7, "x": rng.normal(size=200), "y": rng.choice([0, 1], 200)})
    report = triage(data, TriageOptions(target="y"))
    roles = {c.name: (c.semantic, c.feature) for c in report.columns}
    assert roles["nothing"] == ("empty", False) and roles["same"] == ("constant", False)


def test_near_duplicate_texts(rng: np.random.Generator) -> None:
    words = [
        "free",
        "entry",
        "in",
        "our",
        "weekly",
        "competition",
        "to",
        "win",
        "final",
        "tickets",
        "for",
        "the",
        "cup",
        "this",
        "may",
        "text",
        "the",
        "word",
        "to",
        "claim",
    ]
    base = [" ".join(rng.permutation(words)) + f" code {i}" for i in range(40)]
    variants = [t + " now" for t in base[:15]]
    others = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma"], 12)) for _ in range(40)]
    texts = base + variants + others
    data = pd.DataFrame({"text": texts, "label": rng.choice(["ham", "spam"], len(texts))})
    report = triage(data, TriageOptions(target="label"))
    text = next(c for c in report.columns if c.name == "text")
    assert text.semantic == "text" and text.text["vocabulary"] > 10
    near = [f for f in report.findings if f.check == "text.near_duplicates"]
    assert near and near[0].evidence["rows"] >= 15


def advice(**overrides: object) -> str:
    defaults = {
        "rows": 20_000,
        "classification": True,
        "minority_share": 0.3,
        "time_column": None,
        "split_given": False,
    }
    return recommend_split(**(defaults | overrides)).strategy


def test_split_rule_table() -> None:
    assert advice(split_given=True, time_column="t") == "given"
    assert advice(time_column="t") == "time"
    assert advice(rows=1000, time_column=None) == "kfold"
    assert advice(rows=500_000) == "holdout-80-10-10"
    assert advice(minority_share=0.04) == "stratified"
    assert advice(classification=False, minority_share=None) == "random"
