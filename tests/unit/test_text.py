"""Text columns: schema, the TF-IDF transform and its ONNX graph, the text profile and its drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conftest import SHARED_DATASETS, need_shared
from keel.monitoring.drift import Thresholds, column_drift
from keel.planning.rules import decide_families
from keel.profile import profile_column, token_counts
from keel.schema import TEXT, Column, InputSchema

SMS = SHARED_DATASETS / "sms_spam.parquet"


@pytest.fixture(scope="module")
def sms() -> pd.DataFrame:
    need_shared(SMS.name)
    return pd.read_parquet(SMS)


def test_a_text_column_round_trips_and_validates_like_a_string() -> None:
    schema = InputSchema((Column("body", TEXT),))
    assert InputSchema.from_dict(schema.to_dict()) == schema
    assert "categories" not in schema.to_dict()["columns"][0]
    arrays = schema.rows_to_arrays([{"body": "Hello there"}, {"body": None}])
    assert list(arrays["body"]) == ["Hello there", ""]
    with pytest.raises(Exception, match="must be a string or null"):
        schema.rows_to_arrays([{"body": {"nested": 1}}])


def test_the_plan_gives_text_the_tfidf_baseline_families() -> None:
    decision = decide_families(4_459, "auto", text_columns=1)
    assert decision.value == "baseline,linear"
    assert "TF-IDF" in decision.rule
    assert decide_families(4_459, "auto").value == "baseline,linear,lightgbm,xgboost"  # tables unchanged


def test_tfidf_in_onnx_matches_scikit_learn_exactly(sms: pd.DataFrame) -> None:
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression

    from keel.exporting.onnx_convert import convert_pipeline
    from keel.features.build import build_pipeline

    schema = InputSchema((Column("text", TEXT),))
    train, test = sms.iloc[:4000], sms.iloc[4000:]
    pipeline = build_pipeline(schema, LogisticRegression(max_iter=1000))
    pipeline.fit(train[["text"]], train["label"])
    graph, named = convert_pipeline(pipeline, schema, classification=True)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])  # no locale error
    odd = ["Café crème ÉTÉ über", "", "日本語のテキスト", "a", "FREE!!! free FrEe", "x" * 500, "  spaced   out  "]
    texts = np.array([*test["text"], *odd], dtype=object)
    onnx_out = session.run(None, named.onnx_feed({"text": texts}))
    native = pipeline.predict_proba(pd.DataFrame({"text": texts}))
    assert np.abs(onnx_out[1] - native).max() < 1e-5
    assert (onnx_out[0] == pipeline.predict(pd.DataFrame({"text": texts}))).all()


def test_text_profile_counts_tokens_and_keeps_the_vocabulary() -> None:
    values = np.array(["Free prize, call now", "", "call me later", "FREE free"], dtype=object)
    assert list(token_counts(values)[[0, 2, 3]]) == [4, 3, 2] and np.isnan(token_counts(values)[1])
    profile = profile_column("t", TEXT, values)
    assert profile.categories[:2] == ["free", "call"]  # lower-cased, by frequency
    assert profile.token_shares[0] == pytest.approx(3 / 9)
    assert profile.missing_share == pytest.approx(0.25)


def test_text_drift_is_calibrated_and_sees_a_shift(sms: pd.DataFrame) -> None:
    rng = np.random.default_rng(7)
    texts = sms["text"].to_numpy(dtype=object)
    order = rng.permutation(len(texts))
    reference, rest = texts[order[:3000]], texts[order[3000:]]
    profile = profile_column("text", TEXT, reference)
    assert profile.vocabulary_null and profile.vocabulary_null > 0

    flagged = 0
    for _ in range(20):  # no change: samples of the same texts
        window = pa.chunked_array([pa.array(rng.choice(rest, 1000, replace=False).tolist())])
        flagged += column_drift(profile, window, Thresholds()).status != "ok"
    assert flagged <= 1, f"{flagged} of 20 unchanged windows flagged"

    spam = sms.loc[sms["label"] == "spam", "text"].to_numpy(dtype=object)
    mixed = np.concatenate([rng.choice(rest, 700, replace=False), rng.choice(spam, 300)])
    shifted = column_drift(profile, pa.chunked_array([pa.array(mixed.tolist())]), Thresholds())
    assert shifted.status != "ok"
    assert shifted.vocabulary_psi is not None and any("vocabulary PSI" in n for n in shifted.notes)


def test_fitted_vocabularies_hold_plain_ints_and_transform_the_same(sms: pd.DataFrame) -> None:
    from keel.features.build import build_preprocessor, plain_vocabularies

    schema = InputSchema((Column("text", TEXT),))
    frame = sms[["text"]].iloc[:500]
    features = build_preprocessor(schema).fit(frame)
    before = features.transform(frame).toarray()
    plain_vocabularies(features)
    vocabulary = features.named_transformers_["text_text"].vocabulary_
    assert {type(i) for i in vocabulary.values()} == {int}  # skops writes these inline
    assert np.array_equal(features.transform(frame).toarray(), before)


def test_trials_reuse_the_fitted_text_transforms_only_for_the_same_rows(sms: pd.DataFrame) -> None:
    from keel.config import ProjectConfig
    from keel.training.fit import _transformed
    from keel.training.prepare import Prepared

    schema = InputSchema((Column("text", TEXT),))
    frame = sms.iloc[:600]
    data = Prepared(
        schema, None, None,  # _transformed reads only the schema and the rows
        schema.frame_to_arrays(frame), np.zeros(600), np.arange(600), np.arange(0),
        np.arange(400), None, ProjectConfig(name="sms", data=SMS, target="label"),
    )  # fmt: skip
    first = _transformed(data, np.arange(400), None, "linear")
    again = _transformed(data, np.arange(400), None, "linear")
    other = _transformed(data, np.arange(200, 600), None, "linear")
    assert again[0] is first[0]  # the same fitted transforms: no refit
    assert other[0] is not first[0] and other[1].shape[0] == 400  # other rows: fitted again
    assert (
        other[0].named_transformers_["text_text"].vocabulary_ != first[0].named_transformers_["text_text"].vocabulary_
    )
