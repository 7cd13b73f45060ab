"""Guardrails that must hold on data nobody tuned them for: a suspiciously good score stops
promotion, text is scored beside tabular columns, a family that could not train is no evidence,
and durations that are not finite are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.config import ProjectConfig
from keel.data.triage import TriageOptions, triage
from keel.evaluation.gate import suspicion_check
from keel.planning.rules import baseline_verdict, decide_families
from keel.training.prepare import prepare


def leaky(rng: np.random.Generator, n: int = 6000) -> pd.DataFrame:
    x, z = rng.normal(size=(2, n))
    y = np.where(x + z + rng.normal(size=n) > 0.5, "yes", "no")
    agrees = rng.random(n) >= 0.005  # recorded after the outcome: agrees with it on 99.5% of rows
    chargeback = np.where(agrees, y, np.where(y == "yes", "no", "yes"))
    return pd.DataFrame({"x": x, "z": z, "chargeback": chargeback, "y": y})


def test_a_suspiciously_good_model_names_the_column_that_carries_it(rng: np.random.Generator) -> None:
    from keel.training.fit import fit_family, predict, suite
    from keel.training.suspicion import check

    frame = leaky(rng)
    config = ProjectConfig(name="m", data=Path("d.parquet"), target="y", split={"strategy": "stratified"})
    data = prepare(frame, config, "synthetic", triage(frame, TriageOptions(target="y")))
    best = fit_family("lightgbm", {"learning_rate": 0.1}, data, data.search_train, data.valid, seed=1, threads=1)
    best.metrics = suite(data, data.test, predict(best.pipeline, data, data.test))
    assert best.metrics["roc_auc"] > 0.99
    found = check(best, [best], data, seed=1, threads=1)
    assert found is not None and not found.text
    assert found.columns[0]["column"] == "chargeback" and found.columns[0]["carried"] > 0.8
    refused = suspicion_check(json.dumps(found.to_dict()))
    assert not refused.passed and "chargeback" in refused.detail and "--allow score.suspicious" in refused.detail
    allowed = suspicion_check(json.dumps(found.to_dict() | {"allowed": "the flag is set before the decision"}))
    assert allowed.passed and "allowed at training" in allowed.detail
    assert suspicion_check(None).passed


def test_an_ordinary_score_is_not_suspicious(rng: np.random.Generator) -> None:
    from keel.training.suspicion import suspicious_scores

    assert suspicious_scores({"roc_auc": 0.93, "accuracy": 0.88, "log_loss": 0.995}) == {}
    assert suspicious_scores({"r2": 0.995, "rmse": 3.0}) == {"r2": 0.995}


def test_a_rating_that_dominates_beside_the_review_text_is_flagged(rng: np.random.Generator) -> None:
    n = 3000
    words = np.array(["good", "bad", "fine", "great", "awful", "okay", "love", "hate", "meh", "nice"])
    rating = rng.integers(1, 6, n)
    positive = rating >= 4
    mood = np.where(positive, rng.choice(words[[0, 3, 6, 9, 2]], n), rng.choice(words[[1, 4, 7, 8, 5]], n))
    noise = [" ".join(rng.choice(words, 6)) for _ in range(n)]  # most words say nothing
    text = [f"{m} {w}" if rng.random() < 0.6 else w for m, w in zip(mood, noise, strict=True)]
    frame = pd.DataFrame({"review": text, "Rating": rating, "label": np.where(positive, "pos", "neg")})
    report = triage(frame, TriageOptions(target="label"))
    review = next(s for s in report.strengths if s.column == "review")
    assert 0 < review.skill < 1  # the text column is scored now
    assert "leak.dominant_column:Rating" in {f.id for f in report.findings} or any(
        f.column == "Rating" and f.severity == "block" for f in report.findings
    )


def test_a_fine_tuned_family_that_could_not_train_is_no_evidence() -> None:
    scores = {"linear": 0.95, "embeddings": 0.93, "lora": 0.44}
    untrained = {"lora": "validation 0.4400, no better than the baseline's 0.5000: budget too small for this family"}
    verdict = baseline_verdict(scores, True, untrained)
    assert verdict is not None and verdict.value == "not beaten"
    assert (
        "lora not trained" in verdict.rule and "lora (0.44" not in verdict.rule and "embeddings 0.9300" in verdict.rule
    )
    only = baseline_verdict({"linear": 0.95, "lora": 0.44}, True, untrained)
    assert only is not None and only.value == "not tested" and "problem is likely the data" not in only.rule


def test_the_plan_leaves_out_fine_tuning_that_its_budget_cannot_fit() -> None:
    roomy = decide_families(5000, text_only=True, transformers=True, budget_seconds=600)
    assert "lora" in roomy.value.split(",")
    tight = decide_families(22_000, text_only=True, transformers=True, budget_seconds=300)
    assert "lora" not in tight.value.split(",") and "left out" in tight.rule and "--budget" in tight.rule


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "infs", "nanm"])
def test_a_budget_that_is_not_a_finite_duration_is_refused(text: str) -> None:
    from keel.cli.common import parse_duration
    from keel.errors import ConfigError

    with pytest.raises(ConfigError, match="finite duration|positive"):
        parse_duration(text)
