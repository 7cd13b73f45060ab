"""The transformer strategies' parts, on the packaged all-MiniLM-L6-v2 and sms_spam texts:
model resolution, tokenisation parity, embeddings, LoRA fine-tuning with checkpoints and a
resume after kill -9, the skops round trip, and the export with logit parity and INT8."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TEST_THREADS
from keel.errors import ConfigError
from keel.exporting.feed import Feeder
from keel.exporting.transformer import convert_transformer, is_transformer, logit_parity, quantize
from keel.schema import TEXT, Column, InputSchema
from keel.textmodels.estimators import EncoderClassifier, TextColumn, TextEncoder, texts_of
from keel.textmodels.models import DEFAULT_ENCODER, load_encoder, resolve_model, tokenizer_json
from keel.textmodels.tokens import encode, tokenizer_from_json

pytestmark = pytest.mark.usefixtures("text_extra")

ODD_TEXTS = [
    "Café crème ÉTÉ, naïve résumé",  # accents: ort-extensions' BERT tokenizer gave [UNK] here
    "",
    None,
    "WINNER!! Call 09061701461 now £1000 prize",
    "word " * 300,  # truncated
    "日本語のテキスト 🙂",
]


def small_tune(**kwargs: object) -> EncoderClassifier:
    settings = {"epochs": 1, "batch_size": 16, "max_length": 32, "seed": 3, "threads": TEST_THREADS} | kwargs
    return EncoderClassifier(**settings)  # type: ignore[arg-type]


def test_models_resolve_locally_or_fail_in_one_clear_line(tmp_path: Path) -> None:
    assert (resolve_model(DEFAULT_ENCODER) / "config.json").is_file()
    with pytest.raises(ConfigError, match="never downloads") as error:
        resolve_model("meta-llama/Llama-3.1-8B")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_serving_tokenises_exactly_as_the_transformers_tokenizer() -> None:
    directory = resolve_model(DEFAULT_ENCODER)
    hf, _ = load_encoder(str(directory))
    ours = tokenizer_from_json(tokenizer_json(directory), 64)
    texts = [t if t is not None else "" for t in ODD_TEXTS]
    ids, mask = encode(ours, ODD_TEXTS)
    reference = hf(texts, truncation=True, max_length=64, padding=True, return_tensors="np")
    assert np.array_equal(ids, reference["input_ids"]) and np.array_equal(mask, reference["attention_mask"])
    assert ids.shape[1] == 64  # the long text was truncated, the others padded to it


def test_embeddings_are_mean_pooled_normalised_and_embedded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import keel.textmodels.nets as nets

    frame = pd.DataFrame({"text": ["free prize, call now", "see you at lunch", None, "free prize, call now"]})
    encoder = TextEncoder("text", max_length=32).fit(frame)
    vectors = encoder.transform(frame)
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[3])
    tokenizer, model = load_encoder(str(resolve_model(DEFAULT_ENCODER)))
    batch = tokenizer(["see you at lunch"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.mean(dim=1)
    assert np.allclose(vectors[1], torch.nn.functional.normalize(hidden, dim=-1).numpy()[0], atol=1e-5)

    calls = []
    monkeypatch.setattr(nets, "embed", lambda *a, **k: calls.append(a) or np.zeros((0, 384)))
    again = encoder.transform(frame.iloc[[1, 0]])
    assert calls == [] and np.array_equal(again[0], vectors[1])


def test_a_full_embedding_cache_is_emptied_without_losing_the_texts_it_held(monkeypatch: pytest.MonkeyPatch) -> None:
    import keel.textmodels.embedding_cache as embedding_cache

    encoder = TextEncoder("text", max_length=16).fit(pd.DataFrame({"text": ["a"]}))
    first = encoder.transform(pd.DataFrame({"text": ["cache one", "cache two"]}))
    monkeypatch.setattr(embedding_cache, "MEMORY_ROWS", 3)  # the next call overflows it
    both = encoder.transform(pd.DataFrame({"text": ["cache one", "cache two", "new three", "new four"]}))
    assert both.shape == (4, 384) and np.array_equal(both[:2], first)


def test_embedding_stops_at_its_deadline_keeps_what_it_did_and_the_next_run_continues(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import time

    import keel.textmodels.embedding_cache as embedding_cache
    from keel.textmodels.embedding_cache import EmbeddingIncomplete

    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedding_cache, "CHUNK", 4)
    embedding_cache.forget()
    texts = pd.DataFrame({"text": [f"message number {i} about lunch" for i in range(12)]})
    encoder = TextEncoder("text", max_length=16).fit(texts)
    with pytest.raises(EmbeddingIncomplete, match="embedded 4 of 12 texts"):
        encoder.transform(texts, deadline=time.monotonic())  # the deadline has passed: one chunk, then stop
    embedding_cache.forget()  # a new process: only the disk is left
    assert embedding_cache.cached_share(encoder_space(encoder), texts["text"].tolist()) == pytest.approx(4 / 12)
    whole = encoder.transform(texts)
    assert whole.shape == (12, 384)
    embedding_cache.forget()
    assert embedding_cache.cached_share(encoder_space(encoder), texts["text"].tolist()) == 1.0


def encoder_space(encoder: TextEncoder) -> str:
    return f"{encoder._directory()}|{encoder.encoder_sha256_}|{encoder.max_length}"


def test_lora_fine_tuning_learns_records_curves_and_round_trips_through_skops(sms_sample: pd.DataFrame) -> None:
    import skops.io as sio

    from keel.tracking.mlflow_tracker import trusted_types

    y = (sms_sample["label"] == "spam").to_numpy().astype(int)
    train, valid = sms_sample.iloc[:300], sms_sample.iloc[300:]
    model = small_tune(epochs=2, learning_rate=3e-3, max_length=24)
    model.fit(train["text"], y[:300], eval_set=(valid["text"], y[300:]))
    assert len(model.curves_["train"]) == len(model.curves_["valid"]) >= 2
    assert model.curves_["train"][-1] < model.curves_["train"][0]
    trainable = sum(v.size for v in model.weights_.values())
    assert 0 < trainable < 200_000  # adapters and the head, not the 22.7M weights of the encoder
    proba = model.predict_proba(valid["text"])
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[300:], proba[:, 1]) > 0.9

    loaded = sio.loads(sio.dumps(model), trusted=trusted_types(model))
    assert np.allclose(loaded.predict_proba(valid["text"]), proba, atol=1e-6)


def test_a_model_refuses_an_encoder_with_other_weights(sms_sample: pd.DataFrame) -> None:
    model = TextEncoder("text", max_length=16).fit(sms_sample.head(4))
    model.encoder_sha256_ = "0" * 64
    model._checked = None
    with pytest.raises(ConfigError, match="other weights"):
        model.transform(sms_sample.head(2))


@pytest.mark.slow
def test_a_killed_fine_tuning_resumes_from_its_last_checkpoint(tmp_path: Path, sms_file: Path) -> None:
    """kill -9 during the second of two epochs (13 s each here), then fit again on the same
    folder: training resumes from the first epoch's checkpoint, runs the second, and leaves no
    checkpoint behind."""
    folder = tmp_path / "checkpoints"
    script = f"""
import pandas as pd, numpy as np
from keel.textmodels.estimators import EncoderClassifier
frame = pd.read_parquet({str(sms_file)!r})
y = (frame["label"] == "spam").to_numpy().astype(int)
EncoderClassifier(epochs=2, batch_size=16, max_length=32, seed=3, threads=1).fit(
    frame["text"][:300], y[:300], eval_set=(frame["text"][300:360], y[300:360]), checkpoints={str(folder)!r})
"""
    log = tmp_path / "killed.log"
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-c", script], stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not any(folder.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    time.sleep(0.5)  # the checkpoint's last file is written after trainer_state.json
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    saved = sorted(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))
    assert saved, "the killed fit left no complete checkpoint"
    (folder / "checkpoint-100000").mkdir()  # what a kill mid-save leaves: a newer folder without its state

    frame = pd.read_parquet(sms_file)
    y = (frame["label"] == "spam").to_numpy().astype(int)
    model = EncoderClassifier(epochs=2, batch_size=16, max_length=32, seed=3, threads=1)
    model.fit(frame["text"][:300], y[:300], eval_set=(frame["text"][300:360], y[300:360]), checkpoints=folder)
    assert model.resumed_from_ == saved[-1].parent.name  # the newest complete one
    assert model.epochs_run_ == pytest.approx(2.0)
    assert len(model.curves_["valid"]) == 2  # epoch 1 from before the kill, epoch 2 after
    assert not list(folder.glob("checkpoint-*"))


@pytest.mark.parametrize("family", ["embeddings", "lora"])
def test_the_whole_text_model_exports_with_logit_parity_and_int8_within_budget(
    family: str, sms_sample: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    y = (sms_sample["label"] == "spam").to_numpy().astype(int)
    frame = sms_sample[["text"]]
    steps = {
        "embeddings": [("features", TextEncoder("text", max_length=48)), ("model", LogisticRegression(C=10))],
        "lora": [("features", TextColumn("text")), ("model", small_tune(max_length=48))],
    }
    pipeline = Pipeline(steps[family])
    pipeline.fit(frame.iloc[:300], y[:300])
    assert is_transformer(pipeline)
    schema = InputSchema((Column("text", TEXT),))
    graph = convert_transformer(pipeline, schema)
    held = {"text": np.asarray(texts_of(frame.iloc[300:], "text") + ODD_TEXTS, dtype=object)}
    parity = logit_parity(graph, pipeline, schema, held, tolerance=1e-4)
    assert parity.passed and parity.label_agreement == 1.0, parity
    assert parity.output == "logits" and parity.rows == 106

    labels = np.concatenate([y[300:], np.zeros(len(ODD_TEXTS), dtype=int)])
    int8, record = quantize(graph, schema, held, labels, budget=0.01)
    assert record["int8_bytes"] < record["fp32_bytes"] / 3
    assert record["accepted"] == (record["accuracy_drop"] < 0.01 or record["accuracy_drop"] <= 0)
    assert (int8 is not None) == record["accepted"]
    refused, strict = quantize(graph, schema, held, labels, budget=0.0)
    assert (refused is None) == (strict["accuracy_drop"] > 0)

    from keel.exporting.runtime import make_session

    feeder = Feeder(schema, graph.tokens, graph.tokenizer)
    outputs = make_session(graph.model).run(None, feeder(held))
    assert np.allclose(outputs[1], pipeline.predict_proba(pd.DataFrame(held)), atol=1e-5)


def test_fine_tuning_stops_early_enough_to_score_what_follows_by_the_deadline(tmp_path: Path) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from keel.textmodels.nets import EpochHooks

    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, eval_strategy="epoch", use_cpu=True, report_to="none"
    )

    def stops(scored_after: int, texts_per_second: float | None = None, step_seconds: float = 0.0) -> bool:
        """Whether training stops after its first step (of 16 texts), 10 s before the deadline."""
        hooks, state, control = EpochHooks(None, time.monotonic() + 10, scored_after), TrainerState(), TrainerControl()
        hooks.on_train_begin(args, state, control)
        hooks.started -= step_seconds  # the step took this long
        if texts_per_second is not None:  # an evaluation measured the scoring rate
            hooks.on_evaluate(args, state, control, metrics={"eval_samples_per_second": texts_per_second})
        state.global_step = 1
        return bool(hooks.on_step_end(args, state, control).should_training_stop)

    assert not stops(0, 50.0)  # nothing to score after the fit: train until the deadline
    assert not stops(400, 50.0)  # 8 s of scoring fit in the 10 s left
    assert stops(600, 50.0)  # 12 s do not: stop now, and evaluate the partial epoch
    # before any evaluation, a text scores in a third of a training text's time: 3 s / 16 / 3
    assert not stops(100, step_seconds=3.0)  # 6.25 s
    assert stops(200, step_seconds=3.0)  # 12.5 s
