"""Leakage checks on synthetic data where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data.triage import TriageOptions, triage


def frame(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    """Ordinary data: several features carry some signal, none on its own decides."""
    x, z, w = rng.normal(size=(3, n))
    color = rng.choice(["red", "green", "blue"], size=n)
    signal = x + z + w + (color == "red") * 1.0 + rng.normal(scale=1.0, size=n)
    return pd.DataFrame(
        {"x": x, "z": z, "w": w, "noise": rng.normal(size=n), "color": color, "y": np.where(signal > 0.3, "yes", "no")}
    )


def ids(report) -> set[str]:
    return {f.id for f in report.findings}


def test_a_copy_of_the_target_blocks_training(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["outcome_code"] = np.where(data["y"] == "yes", 1, 0)
    report = triage(data, TriageOptions(target="y"))
    assert "leak.single_column:outcome_code" in {f.id for f in report.blocking}
    assert report.strengths[0].column == "outcome_code" and report.strengths[0].value >= 0.99


def test_a_regression_target_rescaled_is_caught_by_rank(rng: np.random.Generator) -> None:
    data = frame(rng).drop(columns="y")
    data["y"] = data["x"] * 3 + rng.normal(scale=2, size=len(data))
    data["y_in_cents"] = np.exp(data["y"] / 10) * 100
    report = triage(data, TriageOptions(target="y"))
    assert "leak.single_column:y_in_cents" in {f.id for f in report.blocking}


def test_a_target_that_is_the_sum_of_two_columns_blocks(rng: np.random.Generator) -> None:
    data = frame(rng).drop(columns="y")
    data["part_a"] = rng.uniform(0, 100, size=len(data))
    data["part_b"] = rng.uniform(0, 100, size=len(data))
    data["total"] = data["part_a"] + data["part_b"]
    report = triage(data, TriageOptions(target="total"))
    sums = [f for f in report.blocking if f.check == "leak.sum_of_columns"]
    assert sums and set(sums[0].column.split(",")) == {"part_a", "part_b"}
    assert "on 100.0% of rows" in sums[0].message


def test_a_noisy_copy_of_the_target_blocks_with_its_evidence(rng: np.random.Generator) -> None:
    """The target plus noise that has nothing to do with the other columns (AUC about 0.97 alone):
    below the single-column threshold, caught by what it does beside the others."""
    data = frame(rng)
    data["call_length"] = np.where(data["y"] == "yes", 2.5, 0.0) + rng.normal(scale=1.0, size=len(data))
    report = triage(data, TriageOptions(target="y"))
    found = [f for f in report.blocking if f.id == "leak.carried_skill:call_length"]
    assert found and "noisy copy of the target" in found[0].message
    evidence = found[0].evidence
    assert (
        evidence["beyond"] <= 0.15 and evidence["alone"] >= 0.7 and evidence["skill_full"] > evidence["skill_without"]
    )


def test_a_flipped_copy_of_a_label_that_agrees_on_90_percent_blocks(rng: np.random.Generator) -> None:
    data = frame(rng, 4000)
    flipped = rng.random(len(data)) < 0.10
    data["signal"] = np.where(flipped, np.where(data["y"] == "yes", "no", "yes"), data["y"])
    report = triage(data, TriageOptions(target="y"))
    assert "leak.carried_skill:signal" in {f.id for f in report.blocking}


def test_one_dominant_column_that_the_others_explain_is_a_warning_not_a_block(rng: np.random.Generator) -> None:
    """A strong column that depends on the target *and* on other inputs (as an honest cause or a
    proxy does) is worth a look, not a refusal."""
    data = frame(rng)
    data["call_length"] = np.where(data["y"] == "yes", 1.5, 0.0) + 2 * data["x"] + rng.normal(scale=0.5, size=len(data))
    report = triage(data, TriageOptions(target="y"))
    assert {"leak.dominant_column:call_length", "leak.carried_skill:call_length"} & ids(report)
    assert not report.blocking


def test_a_post_outcome_name_raises_the_message_but_never_blocks_alone(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["refund_status"] = data["x"] + rng.normal(scale=0.1, size=len(data))  # strong, honest, badly named
    report = triage(data, TriageOptions(target="y"))
    assert not report.blocking


def test_ordinary_data_has_no_leak_findings(rng: np.random.Generator) -> None:
    report = triage(frame(rng), TriageOptions(target="y"))
    assert not [f for f in report.findings if f.check.startswith("leak.")]


def test_time_order_nobody_named_is_flagged(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["when"] = pd.date_range("2024-01-01", periods=len(data), freq="h")
    report = triage(data, TriageOptions(target="y"))
    assert "split.time_order:when" in ids(report)
    assert report.split is not None and report.split.strategy == "time"


def test_a_datetime_after_the_prediction_time(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["decided_at"] = pd.date_range("2024-01-01", periods=len(data), freq="h")
    data["closed_at"] = data["decided_at"] + pd.Timedelta(days=3)
    report = triage(data, TriageOptions(target="y", time_column="decided_at"))
    assert "leak.after_prediction_time:closed_at" in ids(report)


def test_a_given_split_with_shared_rows_blocks(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["part"] = np.where(np.arange(len(data)) < 2000, "train", "test")
    copies = data.iloc[:10].assign(part="test")
    data = pd.concat([data, copies], ignore_index=True)
    report = triage(data, TriageOptions(target="y", split_column="part"))
    overlap = [f for f in report.blocking if f.check == "leak.train_test_overlap"]
    assert overlap and overlap[0].evidence["rows"] == 10


def test_a_given_split_that_ignores_time_order(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["when"] = pd.date_range("2024-01-01", periods=len(data), freq="h")
    data["part"] = rng.choice(["train", "test"], size=len(data), p=[0.8, 0.2])
    report = triage(data, TriageOptions(target="y", time_column="when", split_column="part"))
    assert "split.ignores_time_order:when" in ids(report)
    assert report.split.strategy == "given"


def test_string_identifiers_are_named(rng: np.random.Generator) -> None:
    data = frame(rng)
    data["customer"] = [f"c{i:05d}" for i in range(len(data))]
    report = triage(data, TriageOptions(target="y"))
    assert "leak.identifier:customer" in ids(report)


def test_a_separate_test_file_sharing_rows_and_texts(rng: np.random.Generator) -> None:
    words = [
        "please",
        "call",
        "our",
        "office",
        "today",
        "about",
        "the",
        "free",
        "prize",
        "you",
        "have",
        "won",
        "in",
        "the",
        "weekly",
        "draw",
    ]
    texts = [" ".join(rng.permutation(words)) + f" ref {i}" for i in range(200)]
    train = pd.DataFrame({"text": texts, "n": rng.normal(size=200), "y": rng.choice(["a", "b"], 200)})
    test = pd.concat([train.iloc[:5], train.iloc[5:25].assign(text=lambda d: d["text"] + " now")], ignore_index=True)
    report = triage(train, TriageOptions(target="y"), test_frame=test)
    found = {f.check: f for f in report.findings}
    assert found["leak.train_test_overlap"].evidence["rows"] == 5
    assert found["leak.train_test_near_overlap"].evidence["texts"] >= 20
    assert report.split.strategy == "given"
