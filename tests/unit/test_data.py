from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.load import load_table
from keel.data.snapshot import snapshot
from keel.data.triage import TriageOptions, triage
from keel.errors import DataError
from keel.store import Store

EXAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "adult" / "adult_sample.parquet"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_table(tmp_path / "e.csv")


def test_header_only(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="has a header but no rows"):
        load_table(tmp_path / "h.csv")


def test_non_utf8_csv_names_the_byte_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("name,y\nJos\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9.*iconv"):
        load_table(tmp_path / "l.csv")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        load_table(tmp_path / "d.xlsx")


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "c.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read .* as parquet"):
        load_table(tmp_path / "c.parquet")


def test_snapshot_is_content_addressed_and_reused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = snapshot(EXAMPLE_DATA, store, TriageOptions(target="income"))
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(EXAMPLE_DATA.read_bytes())
    second = snapshot(copy, store, TriageOptions(target="income"))
    assert first.digest == second.digest
    assert first.file == second.file
    assert len(list((tmp_path / "store" / "data").iterdir())) == 1
    assert second.triage.target is not None and second.triage.target.classes == {"<=50K": 3777, ">50K": 1223}


def test_missing_target_suggests_the_closest_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="target column 'incme' is not in the data. Did you mean 'income'"):
        snapshot(EXAMPLE_DATA, Store(tmp_path), TriageOptions(target="incme"))


def test_triage_flags_rare_classes_duplicates_and_ids(rng: np.random.Generator) -> None:
    n = 1000
    frame = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "x": rng.normal(size=n),
            "const": 1,
            "empty": [None] * n,
            "y": ["a"] * 950 + ["b"] * 50,
        }
    )
    frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)
    report = triage(frame, TriageOptions(target="y"))
    roles = {c.name: c.semantic for c in report.columns}
    assert roles == {"id": "identifier", "x": "numeric", "const": "constant", "empty": "empty"}
    ids = {f.id for f in report.findings}
    assert {
        "data.duplicates",
        "target.rare_class",
        "leak.identifier:id",
        "column.excluded:const",
        "column.excluded:empty",
    } <= ids
    text = " ".join(report.warnings)
    assert "5 exact duplicate rows" in text
    assert "class 'b' is only 5.0% of rows" in text
    assert report.blocking == []


def test_a_stored_pandas_index_is_not_a_column(tmp_path) -> None:
    import pandas as pd

    from keel.data.load import load_frame, load_table

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).sample(frac=1.0, random_state=0)
    frame.to_parquet(tmp_path / "d.parquet")  # a shuffled index: pandas stores it as __index_level_0__
    assert load_frame(tmp_path / "d.parquet").columns == ["x", "y"]
    assert list(load_table(tmp_path / "d.parquet").columns) == ["x", "y"]
