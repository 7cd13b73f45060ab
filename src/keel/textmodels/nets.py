"""The torch side: an encoder with mean pooling and a linear head, sentence embeddings, and
fine-tuning (LoRA through PEFT, or every weight) with transformers' Trainer: early stopping
on the validation loss, a checkpoint per epoch, resume from the last one, and a deadline.

Imported only when a transformer strategy runs (it needs the ``text`` extra).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keel.textmodels.checkpoints import last_checkpoint
from keel.textmodels.models import load_encoder, quiet_transformers
from keel.textmodels.tokens import by_length, encode, tokenizer_from_json

EpochHook = Callable[[int, float], bool]  # (epoch, validation loss) -> stop now?


def pool(encoder: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool) -> torch.Tensor:
    """The mean of the last hidden states over real tokens (L2-normalised when ``normalize``,
    as sentence-transformers' all-MiniLM-L6-v2 does)."""
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, dim=-1) if normalize else pooled


class EncoderHead(nn.Module):
    """encoder -> mean pooling -> (normalisation) -> dropout -> linear head: the logits."""

    def __init__(self, encoder: Any, outputs: int, normalize: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, outputs)
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.head(self.dropout(pool(self.encoder, input_ids, attention_mask, self.normalize)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class Served(nn.Module):
    """What the exported graph computes: (label index, class probabilities, logits)."""

    def __init__(self, model: EncoderHead) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(input_ids, attention_mask)["logits"]
        return logits.argmax(-1), torch.softmax(logits, -1), logits


def embed(
    directory: str, tokenizer: str, texts: Sequence[Any], max_length: int, batch_size: int = 64, threads: int = 1
) -> np.ndarray:
    """Normalised mean-pooled embeddings of ``texts`` (float32 [N, hidden])."""
    tok = tokenizer_from_json(tokenizer, max_length)
    _, encoder = load_encoder(directory)
    torch.set_num_threads(threads)
    out = np.empty((len(texts), int(encoder.config.hidden_size)), dtype=np.float32)  # type: ignore[attr-defined]
    with torch.inference_mode():
        for rows in by_length(tok, texts, batch_size):
            ids, mask = encode(tok, [texts[i] for i in rows])
            out[rows] = pool(encoder, torch.from_numpy(ids), torch.from_numpy(mask), True).numpy()
    return out


def logits_of(model: nn.Module, tokenizer: str, texts: Sequence[Any], max_length: int, threads: int = 1) -> np.ndarray:
    """The model's logits for ``texts`` (float32 [N, classes]), in batches of similar length."""
    tok = tokenizer_from_json(tokenizer, max_length)
    torch.set_num_threads(threads)
    model.eval()
    out: np.ndarray | None = None
    with torch.inference_mode():
        for rows in by_length(tok, texts, 64):
            ids, mask = encode(tok, [texts[i] for i in rows])
            logits = model(torch.from_numpy(ids), torch.from_numpy(mask))["logits"].numpy()
            if out is None:
                out = np.empty((len(texts), logits.shape[1]), dtype=np.float32)
            out[rows] = logits
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class FineTuning:
    """How to fine-tune (see keel.config.TextConfig)."""

    method: str  # lora | full
    rank: int
    learning_rate: float
    epochs: int
    batch_size: int
    max_length: int
    patience: int
    seed: int
    threads: int


@dataclass
class FineTuned:
    weights: dict[str, np.ndarray]  # what differs from the packaged encoder: adapters + head, or everything
    curves: dict[str, list[float]]
    best_epoch: int | None
    epochs: float
    resumed_from: str = ""
    network: Any = None  # the trained module itself (so that predicting after fit needs no rebuild)


def build(directory: str, classes: int, method: str, rank: int, weights: dict[str, np.ndarray] | None) -> EncoderHead:
    """The classifier: a fresh copy of the encoder (with LoRA adapters when ``method`` is lora)
    and a head; ``weights`` (from ``FineTuned``) restore a trained one."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(directory, local_files_only=True)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():  # peft 0.21 reads an attribute transformers 5 deprecated: not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            encoder = get_peft_model(encoder, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1))
    model = EncoderHead(encoder, classes, normalize=False, dropout=0.1)
    if weights is not None:
        state = {name: torch.from_numpy(np.asarray(value)) for name, value in weights.items()}
        missing = set(state) - set(model.state_dict())
        if missing:
            raise ValueError(f"saved weights do not fit the model: {sorted(missing)[:3]}")
        model.load_state_dict(state, strict=False)
    model.eval()
    return model


def merged(model: EncoderHead) -> EncoderHead:
    """The same classifier with its LoRA adapters merged into the encoder's weights (plain
    transformer layers: what export converts)."""
    encoder = model.encoder
    if hasattr(encoder, "merge_and_unload"):
        import copy

        encoder = copy.deepcopy(encoder).merge_and_unload()
    out = EncoderHead(encoder, model.head.out_features, model.normalize)
    out.head.load_state_dict(model.head.state_dict())
    out.eval()
    return out


def fine_tune(
    directory: str,
    tokenizer: str,
    texts: Sequence[Any],
    y: np.ndarray,
    classes: int,
    valid: tuple[Sequence[Any], np.ndarray] | None,
    settings: FineTuning,
    *,
    on_epoch: EpochHook | None = None,
    deadline: float | None = None,
    checkpoints: Path | None = None,
    scored_after: int = 0,
) -> FineTuned:
    """Fine-tune on ``texts``; with ``valid``, evaluate every epoch, stop after ``patience``
    epochs without a lower validation loss, and keep the best epoch. ``checkpoints`` holds a
    checkpoint per epoch and a killed fit resumes from the last one; a finished fit removes
    them. ``deadline`` (time.monotonic) stops training, keeping the best epoch evaluated, early
    enough that the evaluation of the partial epoch and ``scored_after`` more texts (the
    caller's scoring) end by it too."""
    import transformers
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments

    quiet_transformers()
    torch.set_num_threads(settings.threads)
    transformers.set_seed(settings.seed)
    model = build(directory, classes, settings.method, settings.rank, None)
    model.train()
    tok = tokenizer_from_json(tokenizer, settings.max_length)
    output = checkpoints or Path(tempfile.mkdtemp(prefix="keel-finetune-"))
    output.mkdir(parents=True, exist_ok=True)
    last = last_checkpoint(output)
    steps_per_epoch = math.ceil(len(texts) / settings.batch_size)
    rate = settings.learning_rate if settings.method == "lora" else settings.learning_rate / 20
    args = TrainingArguments(
        output_dir=str(output),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=rate,
        weight_decay=0.01,
        warmup_steps=max(1, round(0.06 * steps_per_epoch * settings.epochs)),
        eval_strategy="epoch" if valid is not None else "no",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=valid is not None,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_strategy="epoch",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    after = scored_after + (len(valid[0]) if valid is not None else 0)
    callbacks: list[Any] = [EpochHooks(on_epoch, deadline, after)]
    if valid is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Texts(texts, y),
        eval_dataset=_Texts(*valid) if valid is not None else None,
        data_collator=_Collate(tok),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # keel shows progress itself; curves go to MLflow
    trainer.train(resume_from_checkpoint=last)
    model.eval()
    history = trainer.state.log_history
    curves = curves_of(history)
    best = trainer.state.best_model_checkpoint
    best_epoch = _epoch_of(history, best) if best else None
    trained = {
        name: p.detach().numpy().copy()
        for name, p in model.named_parameters()
        if p.requires_grad or settings.method == "full"
    }
    if checkpoints is None:
        shutil.rmtree(output, ignore_errors=True)
    else:
        for folder in output.glob("checkpoint-*"):
            shutil.rmtree(folder, ignore_errors=True)
    return FineTuned(
        trained, curves, best_epoch, float(trainer.state.epoch or 0), Path(last).name if last else "", model
    )


def curves_of(history: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-epoch training and validation losses from a Trainer's log history."""
    return {
        "train": [float(h["loss"]) for h in history if "loss" in h],
        "valid": [float(h["eval_loss"]) for h in history if "eval_loss" in h and "epoch" in h],
    }


def _epoch_of(history: list[dict[str, Any]], checkpoint: str) -> int | None:
    step = int(checkpoint.rstrip("/").rsplit("-", 1)[1])
    for entry in history:
        if entry.get("step") == step and "epoch" in entry:
            return round(float(entry["epoch"]))
    return None


class _Texts(torch.utils.data.Dataset):
    def __init__(self, texts: Sequence[Any], y: np.ndarray) -> None:
        self.texts, self.y = list(texts), np.asarray(y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"text": self.texts[i], "labels": int(self.y[i])}


class _Collate:
    """A batch of {text, labels} -> tensors, tokenised by ``keel.textmodels.tokens``."""

    def __init__(self, tokenizer: Any) -> None:
        self.texts = tokenizer  # not named ``tokenizer``: Trainer would save it as a transformers tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids, mask = encode(self.texts, [r["text"] for r in rows])
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "labels": torch.tensor([r["labels"] for r in rows], dtype=torch.long),
        }


def _hooks_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class EpochHooks(_hooks_base()):  # type: ignore[misc]
    """Reports each epoch's validation loss (the search prunes with it) and stops at the deadline.

    Training stops once the time to score ``scored_after`` texts would pass the deadline, so
    that what follows the fit ends by it too. A text's scoring time is the evaluation's
    measured rate, and before the first evaluation a third of a training text's time (a
    forward pass without the backward one).
    """

    def __init__(self, on_epoch: EpochHook | None, deadline: float | None, scored_after: int = 0) -> None:
        self.on_epoch, self.deadline, self.scored_after = on_epoch, deadline, scored_after
        self.started, self.first_step, self.per_text = time.monotonic(), 0, 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
        self.started, self.first_step = time.monotonic(), int(state.global_step)  # a resumed fit starts later
        return control

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **_: Any
    ) -> Any:
        rate = (metrics or {}).get("eval_samples_per_second")
        if rate:
            self.per_text = 1.0 / float(rate)
        reported = self.on_epoch is not None and metrics and "eval_loss" in metrics
        if reported and self.on_epoch(round(float(state.epoch or 0)), float(metrics["eval_loss"])):  # type: ignore[misc, index]
            control.should_training_stop = True
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
        if self.deadline is None or control.should_training_stop:
            return control
        now = time.monotonic()
        if now + self._scoring_seconds(args, state, now) > self.deadline:
            control.should_training_stop = True
            control.should_evaluate = args.eval_strategy != "no"  # score and keep the partial epoch too
            control.should_save = True
        return control

    def _scoring_seconds(self, args: Any, state: Any, now: float) -> float:
        if not self.scored_after:
            return 0.0
        per_text = self.per_text
        if not per_text:
            trained = (int(state.global_step) - self.first_step) * args.per_device_train_batch_size
            per_text = (now - self.started) / max(trained, 1) / 3
        return per_text * self.scored_after
