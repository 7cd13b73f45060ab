from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data.contract import build_contract, validate_frame


def _contract(data: pd.DataFrame):
    from keel.data.triage import TriageOptions, triage

    return build_contract(triage(data, TriageOptions(target="y")))


def reference(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, 300),
            "job": rng.choice(["admin", "tech"], 300),
            "y": rng.choice(["no", "yes"], 300),
        }
    )


def test_the_same_data_satisfies_its_contract(rng: np.random.Generator) -> None:
    data = reference(rng)
    report = validate_frame(data, _contract(data), "ref")
    assert report.ok and report.rows == 300


def test_every_kind_of_violation_is_counted_with_examples(rng: np.random.Generator) -> None:
    data = reference(rng)
    contract = _contract(data)
    new = data.drop(columns="job").assign(extra=1)
    new["age"] = new["age"].astype(object)
    new.loc[0, "age"] = "old"
    new.loc[1, "age"] = 120
    new.loc[2, "age"] = None
    new.loc[3:5, "y"] = "maybe"
    found = {(v.column, v.check): v for v in validate_frame(new, contract, "ref").violations}
    assert set(found) == {
        ("job", "missing column"),
        ("extra", "new column"),
        ("age", "type change"),
        ("age", "out of range"),
        ("age", "null where none were"),
        ("y", "unseen category"),
    }
    assert found[("age", "type change")].examples == ["row 0: 'old'"]
    assert found[("age", "null where none were")].count == 1
    assert found[("y", "unseen category")].count == 3
    assert (
        "[18, 89]" in found[("age", "out of range")].message or "out of range" in found[("age", "out of range")].message
    )
