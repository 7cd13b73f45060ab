"""The LLM path's rules without a model: the method by GPU memory, the answer metrics, and
the conversation checks (keel.textmodels.llm; no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from keel.errors import ConfigError, DataError, TrainingError
from keel.planning.memory import decide_method
from keel.textmodels.llm import answer_metrics, conversations_of


@pytest.mark.parametrize(
    ("parameters", "gib", "method"),
    [
        (1.3e9, 80.0, "full"),  # 16 bytes a parameter fit
        (7e9, 80.0, "lora"),  # 112 GB of full fine-tuning do not; bf16 LoRA does
        (7e9, 24.0, "lora"),
        (7e9, 12.0, "qlora"),  # 4-bit weights
        (70e9, 80.0, "qlora"),  # 140 GB of bf16 weights do not fit; 4-bit ones do
    ],
)
def test_the_method_follows_the_gpu_memory(parameters: float, gib: float, method: str) -> None:
    decision = decide_method(parameters, "auto", gib, None, batch=1, seq_len=1024)
    assert decision.method == method and "estimate-memory" in decision.rule


def test_planned_vram_wins_over_the_gpu_here_and_nothing_fitting_is_an_error() -> None:
    assert decide_method(7e9, "auto", None, 12.0, 1, 1024).method == "qlora"
    with pytest.raises(TrainingError, match="nothing fits in 4 GiB"):
        decide_method(70e9, "auto", 4.0, None, 1, 1024)


def test_without_a_gpu_lora_runs_on_the_cpu_and_qlora_is_refused() -> None:
    decision = decide_method(1e6, "auto", None, None, 4, 64)
    assert (decision.method, decision.precision) == ("lora", "fp32") and "no CUDA GPU" in decision.rule
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        decide_method(1e6, "qlora", None, None, 4, 64)
    assert decide_method(1e6, "full", None, None, 4, 64).rule == "set in keel.yaml (llm.method)"


def test_answer_metrics_normalise_like_squad() -> None:
    metrics = answer_metrics(["The answer is 5.", "Paris"], ["answer is 5", "London, not Paris"])
    assert metrics["exact_match"] == 0.5
    assert metrics["token_f1"] == pytest.approx((1.0 + 2 * (1 / 3) * 1 / (1 / 3 + 1)) / 2)
    assert answer_metrics([], []) == {}


def test_conversations_are_checked_row_by_row() -> None:
    good = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert conversations_of([np.array(good, dtype=object)], "messages") == [good]
    for bad, message in (
        ("not a list", "row 0 of column 'messages' is not a list of messages"),
        ([{"role": "bot", "content": "x"}], "role in system, user, assistant"),
        ([{"role": "user", "content": "hi"}], "does not end with an assistant message"),
    ):
        with pytest.raises(DataError, match=message):
            conversations_of([bad], "messages")
