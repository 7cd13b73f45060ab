"""``task: generation`` end to end on the CPU: a tiny randomly initialised Llama and a BPE
tokenizer trained here on the test's own conversations (nothing downloaded), fine-tuned with
TRL's SFTTrainer and LoRA through the real CLI, then checked: chat-template errors, the
method rules, perplexity and answer metrics, the adapter and its merge."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TEST_THREADS, keel

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("text_extra")]

TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def conversations(count: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        out.append(
            [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
            ]
        )
    return out


def build_model(folder: Path, template: str | None = TEMPLATE) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer trained on the chats."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [m["content"] for c in conversations(300) for m in c]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="<|end|>"
    )
    if template is not None:
        fast.chat_template = template
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny-llama"))


def project(folder: Path, model: Path | str, frame: pd.DataFrame, **llm: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "chats.parquet")
    settings = {"model": str(model), "epochs": 3, "learning_rate": 0.005, "batch_size": 16, "max_length": 64}
    config = {
        "name": "tiny-chat",
        "data": "chats.parquet",
        "target": "messages",
        "task": "generation",
        "seed": 1,
        "train": {"budget_seconds": 300, "threads": TEST_THREADS},
        "llm": settings | {"max_new_tokens": 12, "eval_rows": 12} | llm,
    }
    (folder / "keel.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_the_plan_and_estimate_memory_show_the_method_before_training(tmp_path: Path, tiny_llm: Path) -> None:
    folder = project(tmp_path / "plan", tiny_llm, pd.DataFrame({"messages": conversations(40)}))
    plan = keel("plan", cwd=folder, check=True)
    assert "lora at fp32" in plan.stdout and "no CUDA GPU" in plan.stdout
    assert "all 40 conversations render" in plan.stdout and "4 held out" in plan.stdout
    assert not (folder / ".keel" / "llm").exists()  # planning trains nothing
    from transformers import AutoModelForCausalLM

    count = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_llm).parameters())
    estimate = keel(
        "estimate-memory", "--model", str(tiny_llm), "--mode", "lora", "--vram", "8", cwd=folder, check=True
    )
    assert f"{count / 1e9:g}B parameters" in estimate.stdout  # counted from the directory's config
    assert "would fine-tune with full" in estimate.stdout  # a tiny model fits 8 GiB in full
    neither = keel("estimate-memory", cwd=folder)
    assert neither.returncode == 2 and "give either --params" in neither.stderr


def test_sft_with_lora_on_the_cpu_tracked_evaluated_and_merged(tmp_path: Path, tiny_llm: Path) -> None:
    import mlflow
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = project(tmp_path / "sft", tiny_llm, pd.DataFrame({"messages": conversations(160)}), merge=True)
    result = keel("train", cwd=folder, check=True)
    assert "no CUDA GPU: LoRA in fp32 on the CPU" in result.stdout, result.stdout
    assert "perplexity" in result.stdout and "exact_match" in result.stdout

    client = mlflow.MlflowClient(f"sqlite:///{folder / '.keel' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny-chat").experiment_id])
    metrics = run.data.metrics
    assert run.data.tags["keel.llm_method"] == "lora" and run.data.params["held_out_rows"] == "16"
    assert metrics["perplexity"] < metrics["perplexity_before"]  # it learned the format
    assert 0.0 <= metrics["exact_match"] <= metrics["token_f1"] <= 1.0
    history = client.get_metric_history(run.info.run_id, "valid")
    assert len(history) >= 2  # a validation loss per epoch

    stored = list((folder / ".keel" / "llm" / "tiny-chat").iterdir())
    assert len(stored) == 1
    adapter, merged = stored[0] / "adapter", stored[0] / "merged"
    assert (adapter / "adapter_config.json").is_file()
    assert not list((folder / ".keel" / "checkpoints").glob("llm-*/checkpoint-*"))  # a finished fit keeps none
    tokenizer = AutoTokenizer.from_pretrained(merged)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()
    plain = AutoModelForCausalLM.from_pretrained(merged).eval()
    prompt = tokenizer.apply_chat_template(conversations(1, seed=9)[0][:1], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(with_adapter(ids).logits, plain(ids).logits, atol=1e-4)


def test_a_killed_sft_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_llm: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    from conftest import cli_environment

    folder = project(tmp_path / "resume", tiny_llm, pd.DataFrame({"messages": conversations(160)}), epochs=40)
    checkpoints = folder / ".keel" / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "train"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=cli_environment(),
    )
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("llm-*/checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        assert process.poll() is None, "the fit ended before its first checkpoint"
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sorted(checkpoints.glob("llm-*/checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))
    assert saved, "the killed fit left no complete checkpoint"
    # whether or not the kill landed mid-save, leave what one does: a newer folder without its state
    cut_short = saved[-1].parent.with_name("checkpoint-100000")
    cut_short.mkdir()
    (cut_short / "adapter_config.json").write_text("{}")

    resumed = keel("train", "--resume", cwd=folder, check=True)
    assert "perplexity" in resumed.stdout
    client = mlflow.MlflowClient(f"sqlite:///{folder / '.keel' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-chat").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 1
    assert finished[0].data.params["resumed_from"] == saved[-1].parent.name  # the newest complete one
    assert not list(checkpoints.glob("llm-*/checkpoint-*"))


def test_pre_formatted_text_in_another_template_is_refused_before_training(tmp_path: Path, tiny_llm: Path) -> None:
    chats = conversations(40)
    other = ["".join(f"### {m['role']}: {m['content']}\n" for m in c) for c in chats]
    folder = project(
        tmp_path / "mismatch", tiny_llm, pd.DataFrame({"messages": chats, "text": other}), text_column="text"
    )
    result = keel("train", cwd=folder)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "differs from the tokenizer's chat template at character 0" in result.stderr
    assert "Traceback" not in result.stderr and not (folder / ".keel" / "llm").exists()


def test_a_tokenizer_without_a_chat_template_is_refused(tmp_path: Path) -> None:
    model = build_model(tmp_path / "no-template", template=None)
    folder = project(tmp_path / "p", model, pd.DataFrame({"messages": conversations(20)}))
    result = keel("train", cwd=folder)
    assert result.returncode == 2 and "has no chat template" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("model", "llm", "code", "message"),
    [
        ("meta-llama/Llama-3.2-1B-Instruct", {}, 2, "never downloads models at run time"),
        (None, {"method": "qlora"}, 2, "qlora needs a CUDA GPU"),
    ],
)
def test_what_cannot_run_here_is_one_clear_line(
    tmp_path: Path, tiny_llm: Path, model: str | None, llm: dict[str, object], code: int, message: str
) -> None:
    folder = project(tmp_path / "p", model or tiny_llm, pd.DataFrame({"messages": conversations(20)}), **llm)
    result = keel("train", cwd=folder)
    assert result.returncode == code and message in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_conversation_without_an_answer_names_its_row(tmp_path: Path, tiny_llm: Path) -> None:
    chats = conversations(10)
    chats[4] = chats[4][:1]
    folder = project(tmp_path / "p", tiny_llm, pd.DataFrame({"messages": chats}))
    result = keel("train", cwd=folder)
    assert result.returncode == 3 and "row 4" in result.stderr and "assistant" in result.stderr, result.stderr
