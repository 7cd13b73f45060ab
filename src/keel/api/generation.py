"""``train`` for ``task: generation``: supervised fine-tuning of a local causal language model
on chat data, tracked in MLflow like every other run (see keel.textmodels.llm)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.config import Project
from keel.errors import ConfigError, DataError
from keel.store import Store, sha256_file
from keel.tracking import manifest

Step = Callable[[str], None]
LLM_EXTRA = ("torch", "transformers", "peft", "trl", "datasets")


@dataclass(frozen=True)
class GenerationResult:
    run_id: str
    method: str
    rule: str
    output: Path
    merged: Path | None
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    train_rows: int
    held_out_rows: int
    trainable_parameters: int
    parameters: int
    seconds: float
    samples: list[dict[str, str]]
    tracking_uri: str


@dataclass(frozen=True)
class GenerationPlan:
    """What ``keel train`` will do for ``task: generation``, decided and checked before any training."""

    directory: str
    parameters: int
    method: Any  # keel.planning.memory.MethodDecision
    train: list[list[dict[str, str]]]
    held_out: list[list[dict[str, str]]]

    def decisions(self, project: Project) -> list[tuple[str, str, str]]:
        """(decision, value, rule) rows for ``keel plan``."""
        llm = project.config.llm
        return [
            ("task", "generation", "set in keel.yaml: supervised fine-tuning on chats"),
            ("model", str(llm.model), f"{self.parameters:,} parameters, local (keel never downloads)"),
            ("method", f"{self.method.method} at {self.method.precision}", self.method.rule),
            ("chat template", "checked", f"all {len(self.train) + len(self.held_out):,} conversations render with it"),
            ("split", f"{len(self.held_out):,} held out", f"seeded shuffle, llm.held_out {llm.held_out:g}"),
            ("evaluation", "perplexity, exact match, token F1", f"greedy answers to {llm.eval_rows} held-out prompts"),
            ("budget", f"{project.config.train.budget_seconds:g}s", "training stops at it, keeping the best epoch"),
        ]


def plan_generation(project: Project, step: Step | None = None) -> GenerationPlan:
    """Check the extra, the model, the data and the chat template, and decide the method."""
    import importlib.util

    step = step or (lambda _message: None)
    cfg, llm = project.config, project.config.llm
    missing = [m for m in LLM_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"task: generation needs {', '.join(missing)}, not installed.", hint="pip install 'keel[text]'"
        )
    if not llm.model:
        raise ConfigError(
            "task: generation needs llm.model in keel.yaml: the directory of a local causal language model.",
            hint="keel never downloads models: save one with save_pretrained and give its directory.",
        )
    from keel.planning.memory import decide_method
    from keel.textmodels.llm import check_chat_template, conversations_of, count_parameters
    from keel.textmodels.models import resolve_model

    directory = str(resolve_model(llm.model))
    step("reading and checking the conversations")
    frame = _read(project.data_path)
    if cfg.target not in frame.columns:
        raise DataError(
            f"{project.data_path} has no column '{cfg.target}' (target: the conversations).",
            hint=f"Columns are: {', '.join(map(str, frame.columns))}.",
        )
    conversations = conversations_of(frame[cfg.target].tolist(), cfg.target)
    formatted = None
    if llm.text_column:
        if llm.text_column not in frame.columns:
            raise DataError(f"{project.data_path} has no column '{llm.text_column}' (llm.text_column).")
        formatted = frame[llm.text_column].tolist()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    check_chat_template(tokenizer, conversations, formatted)
    import torch

    cuda_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    parameters = count_parameters(directory)
    decision = decide_method(parameters, llm.method, cuda_gib, llm.vram_gb, llm.batch_size, llm.max_length)
    if decision.method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"{decision.rule}: QLoRA needs bitsandbytes, not installed.",
            hint="pip install bitsandbytes (on the GPU machine), or set llm.method: lora.",
        )
    order = np.random.default_rng(cfg.seed).permutation(len(conversations))
    held = max(1, round(len(conversations) * llm.held_out))
    train = [conversations[i] for i in order[held:]]
    if not train:
        raise DataError(
            f"only {len(conversations)} conversation(s): nothing is left to train on after the held-out share."
        )
    return GenerationPlan(directory, parameters, decision, train, [conversations[i] for i in order[:held]])


def train_generation(project: Project, *, on_step: Step | None = None, resume: bool = False) -> GenerationResult:
    """Check the data and the chat template, decide the method, fine-tune, evaluate, save."""
    from keel.textmodels.llm import SftSettings, fine_tune_llm

    started = time.monotonic()
    step = on_step or (lambda _message: None)
    cfg, llm = project.config, project.config.llm
    plan = plan_generation(project, step)
    decision, train, held_out = plan.method, plan.train, plan.held_out
    store = Store(project.store_path).ensure()
    from keel.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(project.tracking_uri, cfg.name, store.artifacts)
    digest = sha256_file(project.data_path)
    tags = manifest.environment() | {
        "keel.task": "generation",
        "keel.data_digest": digest,
        "keel.data_source": str(project.data_path),
        "keel.seed": str(cfg.seed),
        "keel.target": cfg.target,
        "keel.llm_model": llm.model,
        "keel.llm_method": decision.method,
        "keel.role": "final",
        "keel.family": f"llm-{decision.method}",
    }
    commit = manifest.git_commit(project.root)
    if commit:
        tags["keel.git_commit"] = commit
    run_id = tracker.start_run(f"sft-{decision.method}", tags)
    folder = store.root / "llm" / cfg.name / run_id
    # one checkpoint folder per data, seed and method: a killed run leaves its epochs there for --resume
    checkpoints = store.root / "checkpoints" / f"llm-{cfg.name}-{digest[:12]}-s{cfg.seed}-{decision.method}"
    settings = SftSettings(
        decision.method,
        decision.precision,
        llm.epochs,
        llm.learning_rate,
        llm.batch_size,
        llm.max_length,
        llm.lora_rank,
        llm.patience,
        llm.max_new_tokens,
        llm.eval_rows,
        cfg.seed,
        cfg.train.threads,
    )
    try:
        tracker.log_params(
            run_id,
            {
                "method": decision.method,
                "method_rule": decision.rule,
                "precision": decision.precision,
                "parameters": plan.parameters,
                "train_rows": len(train),
                "held_out_rows": len(held_out),
                "llm": llm.model_dump_json(),
            },
        )
        step(f"fine-tuning ({decision.method}) on {len(train):,} conversations")
        result = fine_tune_llm(
            plan.directory,
            train,
            held_out,
            settings,
            folder,
            checkpoints,
            merge=llm.merge,
            resume=resume,
            deadline=started + cfg.train.budget_seconds,
        )
        tracker.log_curves(run_id, result.curves)
        if result.resumed_from:
            tracker.log_params(run_id, {"resumed_from": result.resumed_from})
        tracker.log_metrics(run_id, result.metrics | {"trainable_parameters": float(result.trainable_parameters)})
        report = folder / "held_out"
        report.mkdir(exist_ok=True)
        (report / "generations.json").write_text(json.dumps(result.samples, indent=2))
        step("tracking the adapter")
        tracker.log_artifacts(run_id, result.output, result.output.name)
        tracker.log_artifacts(run_id, report, "held_out")
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id)
    return GenerationResult(
        run_id,
        decision.method,
        decision.rule,
        result.output,
        result.merged,
        result.metrics,
        result.curves,
        len(train),
        len(held_out),
        result.trainable_parameters,
        result.parameters,
        time.monotonic() - started,
        result.samples,
        project.tracking_uri,
    )


def _read(path: Path) -> Any:
    import pandas as pd

    if path.suffix.lower() in (".jsonl", ".json"):
        if not path.is_file():
            raise DataError(f"data file {path} does not exist.", hint="Fix `data:` in keel.yaml.")
        try:
            return pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
        except ValueError as exc:
            raise DataError(f"{path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    from keel.data.load import load_table

    return load_table(path)
