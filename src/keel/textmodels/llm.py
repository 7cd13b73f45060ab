"""Supervised fine-tuning of a causal language model on chat data (``task: generation``).

- **Data**: one conversation per row, a list of ``{role, content}`` messages (roles
  system, user, assistant) ending with the assistant's answer.
- **The chat template is checked before training.** The tokenizer must have one; every
  conversation must render with it, and each message's content must appear in what it
  renders. When the data also holds pre-formatted text (``llm.text_column``), that text must
  be exactly what the tokenizer's template renders: a mismatch is a clear error, not a run
  that learns the wrong format.
- **Method**: ``keel.planning.memory.decide_method`` (full, LoRA or QLoRA by GPU memory).
- **Training**: TRL's SFTTrainer with PEFT LoRA (attention and MLP projections) or QLoRA
  (bitsandbytes NF4), or every weight; an evaluation per epoch, early stopping, a
  checkpoint per epoch, and resume.
- **Evaluation** on held-out conversations: perplexity of the answers (before and after
  training), and a task metric on greedy generations of the last answer: exact match and
  token F1 (SQuAD's normalisation).
- **Output**: the adapter (LoRA, QLoRA) or the model (full), with the tokenizer; merged
  into the base model on request.
"""

from __future__ import annotations

import math
import re
import shutil
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ConfigError, DataError

ROLES = ("system", "user", "assistant")
Conversation = list[dict[str, str]]


def conversations_of(values: Sequence[Any], column: str) -> list[Conversation]:
    """The column's conversations as lists of {role, content}, checked: the first problem is
    one error naming its row."""
    out: list[Conversation] = []
    for row, value in enumerate(values):
        messages = list(value) if isinstance(value, list | tuple | np.ndarray) else None
        if not messages:
            raise DataError(
                f"row {row} of column '{column}' is not a list of messages.",
                hint="Each row holds a conversation: [{role: user, content: ...}, {role: assistant, content: ...}].",
            )
        conversation = []
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if role not in ROLES or not isinstance(content, str):
                raise DataError(
                    f"row {row}, message {i} of column '{column}' is not {{role, content}} with a role in "
                    f"{', '.join(ROLES)}: {str(message)[:80]}",
                    hint="Fix that row, or drop it.",
                )
            conversation.append({"role": str(role), "content": content})
        if conversation[-1]["role"] != "assistant":
            raise DataError(
                f"row {row} of column '{column}' does not end with an assistant message: nothing to learn from it.",
                hint="End every conversation with the answer the model should give.",
            )
        out.append(conversation)
    if not out:
        raise DataError(f"column '{column}' holds no conversations.")
    return out


def check_chat_template(tokenizer: Any, conversations: list[Conversation], formatted: Sequence[Any] | None) -> None:
    """Every conversation renders with the tokenizer's chat template, each message's content
    is in what it renders, and pre-formatted text (when given) is exactly that rendering."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "the tokenizer has no chat template, so chat data cannot be formatted the way the model will be used.",
            hint="Use a model whose tokenizer_config.json sets chat_template, or add one to it.",
        )
    for row, conversation in enumerate(conversations):
        try:
            rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
        except Exception as exc:  # jinja's raise_exception: e.g. a role the template refuses
            raise DataError(
                f"row {row} does not render with the tokenizer's chat template: {str(exc).splitlines()[0]}",
                hint="Use the roles and order the model's template expects.",
            ) from None
        missing = [m["role"] for m in conversation if m["content"].strip() and m["content"].strip() not in rendered]
        if missing:
            raise DataError(
                f"row {row}: the chat template drops the {missing[0]} message's content.",
                hint="The template does not fit this data (e.g. it ignores system messages); fix the template or the data.",
            )
        if formatted is not None and formatted[row] != rendered:
            theirs = str(formatted[row])
            at = next((i for i, (a, b) in enumerate(zip(theirs, rendered, strict=False)) if a != b), None)
            at = min(len(theirs), len(rendered)) if at is None else at
            raise DataError(
                f"row {row}: the pre-formatted text differs from the tokenizer's chat template at character {at} "
                f"({theirs[max(0, at - 20) : at + 20]!r} vs {rendered[max(0, at - 20) : at + 20]!r}).",
                hint="The data was formatted for another template: drop the text column and let keel format the "
                "messages, or use the tokenizer it was formatted for.",
            )


def count_parameters(directory: str) -> int:
    """The model's parameter count, from its config (built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return int(sum(p.numel() for p in model.parameters()))


@dataclass(frozen=True)
class SftSettings:
    method: str
    precision: str
    epochs: int
    learning_rate: float
    batch_size: int
    max_length: int
    lora_rank: int
    patience: int
    max_new_tokens: int
    eval_rows: int
    seed: int
    threads: int


@dataclass
class SftResult:
    output: Path  # the adapter (lora, qlora) or the model (full), with the tokenizer
    merged: Path | None
    curves: dict[str, list[float]]
    metrics: dict[str, float]
    trainable_parameters: int
    parameters: int
    epochs: float
    resumed_from: str = ""
    samples: list[dict[str, str]] = field(default_factory=list)  # held-out prompts, answers, generations


def fine_tune_llm(
    directory: str,
    train: list[Conversation],
    held_out: list[Conversation],
    settings: SftSettings,
    folder: Path,
    checkpoints: Path,
    *,
    merge: bool = False,
    resume: bool = False,
    deadline: float | None = None,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> SftResult:
    """SFT with TRL on ``train``, evaluated on ``held_out``; writes ``adapter/`` or ``model/``,
    and ``merged/`` on request, under ``folder``. A checkpoint per epoch goes to ``checkpoints``:
    with ``resume`` training continues from the last one there, else they are cleared first;
    a finished fit removes them."""
    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from keel.textmodels.checkpoints import last_checkpoint
    from keel.textmodels.models import quiet_transformers
    from keel.textmodels.nets import EpochHooks, curves_of

    quiet_transformers()
    torch.set_num_threads(settings.threads)
    transformers.set_seed(settings.seed)
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(directory, settings.method, cuda)
    peft_config = None
    if settings.method in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=2 * settings.lora_rank,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
    last = last_checkpoint(checkpoints)
    bf16 = cuda and settings.precision in ("bf16", "int4") and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        max_length=settings.max_length,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_strategy="epoch",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not cuda,
        bf16=bf16,
        report_to="none",
        disable_tqdm=True,
        gradient_checkpointing=cuda and settings.method != "full",
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list([{"messages": c} for c in train]),
        eval_dataset=datasets.Dataset.from_list([{"messages": c} for c in held_out]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[EpochHooks(on_epoch, deadline), EarlyStoppingCallback(early_stopping_patience=settings.patience)],
    )
    trainer.remove_callback(PrinterCallback)
    before = float(trainer.evaluate()["eval_loss"]) if last is None else float("nan")
    trainer.train(resume_from_checkpoint=last)
    after = float(trainer.evaluate()["eval_loss"])
    curves = curves_of(trainer.state.log_history)
    trained: Any = trainer.model
    trained.eval()
    generations = generate(trained, tokenizer, held_out[: settings.eval_rows], settings.max_new_tokens)
    metrics = {"perplexity": math.exp(min(after, 50.0)), "eval_loss": after} | answer_metrics(
        [g["answer"] for g in generations], [g["generated"] for g in generations]
    )
    if before == before:
        metrics["perplexity_before"] = math.exp(min(before, 50.0))
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trained.parameters())  # before a merge folds the adapters away
    output = folder / ("model" if settings.method == "full" else "adapter")
    trained.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    merged_dir = None
    if merge and settings.method != "full":
        merged_dir = folder / "merged"
        merged_model = trained.merge_and_unload() if settings.method == "lora" else _merge_quantized(directory, output)
        merged_model.save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return SftResult(
        output,
        merged_dir,
        curves,
        metrics,
        int(trainable),
        int(total),
        float(trainer.state.epoch or 0),
        Path(last).name if last else "",
        generations,
    )


def _load_model(directory: str, method: str, cuda: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if method == "qlora":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, quantization_config=quantization, device_map={"": 0}
        )
        return prepare_model_for_kbit_training(model)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=dtype)


def _merge_quantized(directory: str, adapter: Path) -> Any:
    """QLoRA: the adapter merged into the base model loaded in bf16 (not 4-bit)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.bfloat16)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()


def generate(
    model: Any, tokenizer: Any, conversations: list[Conversation], max_new_tokens: int
) -> list[dict[str, str]]:
    """Greedy answers to each conversation's prompt (every message but the last answer)."""
    import torch

    out = []
    device = next(model.parameters()).device
    for conversation in conversations:
        prompt = tokenizer.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True)
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        with torch.inference_mode():
            tokens = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        text = tokenizer.decode(tokens[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        out.append({"prompt": prompt, "answer": conversation[-1]["content"], "generated": text.strip()})
    return out


def _normalise(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation or articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def answer_metrics(answers: list[str], generated: list[str]) -> dict[str, float]:
    """Exact match and token F1 of generated answers (means over the held-out conversations)."""
    if not answers:
        return {}
    exact, f1 = [], []
    for want, got in zip(answers, generated, strict=True):
        a, b = _normalise(want), _normalise(got)
        exact.append(float(a == b))
        common = sum((Counter(a) & Counter(b)).values())
        if not a or not b:
            f1.append(float(a == b))
        elif common == 0:
            f1.append(0.0)
        else:
            precision, recall = common / len(b), common / len(a)
            f1.append(2 * precision * recall / (precision + recall))
    return {"exact_match": float(np.mean(exact)), "token_f1": float(np.mean(f1))}
