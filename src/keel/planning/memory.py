"""GPU memory for transformer inference and fine-tuning, and the strategy that fits a given VRAM.

Bytes per parameter (mixed precision, AdamW):

| mode | weights | gradients | optimizer | notes |
|---|---|---|---|---|
| inference | precision (bf16/fp16 2, fp32 4, int8 1, int4 0.5) | - | - | + KV cache |
| full | 2 (bf16) + 4 (fp32 master copy) | 2 | 8 (Adam m, v in fp32) | 16 bytes/param |
| lora | precision (frozen) | adapters only | adapters only (16 bytes each) | adapters ~0.4% of the parameters (rank 16 on attention) |
| qlora | 0.5 + 0.0625 (4-bit NF4 + quantisation constants) | adapters only | adapters only | |

Activations when training, with gradient checkpointing: 2 x layers x hidden x sequence x
batch x 2 bytes (one checkpoint per layer, bf16), plus one layer's working set
(~16 x hidden x sequence x batch x 2 bytes). KV cache for inference: 2 x layers x hidden x
sequence x batch x 2 bytes. Plus 10% for the framework and fragmentation. Layer count and
hidden size come from the nearest reference architecture when not given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.errors import ConfigError, TrainingError

PRECISION_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}
MODES = ("inference", "full", "lora", "qlora")
METHODS = ("lora", "qlora", "full")  # fine-tuning methods keel train can run (task: generation)
LORA_SHARE = 0.004
OVERHEAD = 0.10
# (parameters, layers, hidden) of common decoder sizes: GPT-2 small/medium, 1B, 3B, Llama 7B/13B/34B/70B.
REFERENCE = [
    (0.125e9, 12, 768),
    (0.35e9, 24, 1024),
    (1.3e9, 24, 2048),
    (3e9, 28, 3072),
    (7e9, 32, 4096),
    (13e9, 40, 5120),
    (34e9, 48, 7168),
    (70e9, 80, 8192),
]
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: float
    precision: str
    mode: str
    batch: int
    seq_len: int
    parts: dict[str, float]  # name -> bytes

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def parse_parameters(text: str) -> float:
    """'7B', '1.5b', '350M', '7e9' -> a number of parameters."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*", text.lower())
    if not match:
        raise ConfigError(f"'{text}' is not a parameter count.", hint="Use e.g. 7B, 1.5B, 350M or 7e9.")
    scale = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[match.group(2)]
    value = float(match.group(1)) * scale
    if value <= 0:
        raise ConfigError("the parameter count must be positive.")
    return value


def estimate(
    parameters: float, precision: str = "bf16", mode: str = "inference", batch: int = 1, seq_len: int = 2048
) -> MemoryEstimate:
    """Memory by part (bytes) for ``mode`` at ``precision``."""
    if precision not in PRECISION_BYTES:
        raise ConfigError(f"unknown precision '{precision}'.", hint=f"Use one of: {', '.join(PRECISION_BYTES)}.")
    if mode not in MODES:
        raise ConfigError(f"unknown mode '{mode}'.", hint=f"Use one of: {', '.join(MODES)}.")
    if batch < 1 or seq_len < 1:
        raise ConfigError("batch and sequence length must be at least 1.")
    _, layers, hidden = min(REFERENCE, key=lambda ref: abs(ref[0] - parameters) / ref[0])
    tokens = batch * seq_len
    parts: dict[str, float] = {}
    if mode == "inference":
        parts["weights"] = parameters * PRECISION_BYTES[precision]
        parts["kv cache"] = 2 * layers * hidden * tokens * 2
    elif mode == "full":
        parts["weights (bf16 + fp32 master)"] = parameters * 6
        parts["gradients"] = parameters * 2
        parts["optimizer (Adam m, v)"] = parameters * 8
    else:
        weight_bytes = 0.5625 if mode == "qlora" else PRECISION_BYTES[precision]
        parts["frozen weights"] = parameters * weight_bytes
        parts["adapters + their gradients and optimizer"] = parameters * LORA_SHARE * 16
    if mode != "inference":
        parts["activations (checkpointed)"] = 2 * layers * hidden * tokens * 2 + 16 * hidden * tokens * 2
    parts["framework overhead"] = OVERHEAD * sum(parts.values())
    return MemoryEstimate(parameters, precision, mode, batch, seq_len, parts)


def recommend(parameters: float, vram_gb: float, *, training: bool, batch: int = 1, seq_len: int = 2048) -> str:
    """The first strategy, best quality first, whose estimate fits in ``vram_gb`` (90% usable)."""
    usable = vram_gb * GIB * 0.9
    options = (
        [("full", "bf16"), ("lora", "bf16"), ("qlora", "int4")]
        if training
        else [("inference", "bf16"), ("inference", "int8"), ("inference", "int4")]
    )
    for mode, precision in options:
        need = estimate(parameters, precision, mode, batch, seq_len).total
        if need <= usable:
            return f"{mode} at {precision}: needs {need / GIB:.1f} GiB of {vram_gb:g} GiB"
    smallest = estimate(parameters, options[-1][1], options[-1][0], batch, seq_len).total
    return (
        f"nothing fits in {vram_gb:g} GiB (the smallest, {options[-1][0]} at {options[-1][1]}, needs "
        f"{smallest / GIB:.1f} GiB): lower the batch or sequence length, use a smaller model, or more GPUs"
    )


@dataclass(frozen=True)
class MethodDecision:
    method: str
    precision: str
    rule: str


def decide_method(
    parameters: float, configured: str, cuda_gib: float | None, vram_gb: float | None, batch: int, seq_len: int
) -> MethodDecision:
    """LoRA, QLoRA or full fine-tuning by the GPU memory there is (``cuda_gib``, None without
    CUDA) or is planned for (``vram_gb``), unless keel.yaml sets it."""
    if configured != "auto":
        if configured not in METHODS:
            raise ConfigError(f"unknown llm.method '{configured}'.", hint=f"Use auto or one of: {', '.join(METHODS)}.")
        if configured == "qlora" and cuda_gib is None:
            raise ConfigError(
                "llm.method qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels); this machine has none.",
                hint="Use llm.method: lora on this machine, or run on a GPU machine.",
            )
        precision = "int4" if configured == "qlora" else "bf16" if cuda_gib is not None else "fp32"
        return MethodDecision(configured, precision, "set in keel.yaml (llm.method)")
    memory = vram_gb if vram_gb is not None else cuda_gib
    if cuda_gib is None and vram_gb is None:
        need = estimate(parameters, "fp32", "lora", batch, seq_len).total
        return MethodDecision(
            "lora",
            "fp32",
            f"no CUDA GPU: LoRA in fp32 on the CPU (about {need / GIB:.2f} GiB of memory); QLoRA needs CUDA",
        )
    assert memory is not None
    verdict = recommend(parameters, memory, training=True, batch=batch, seq_len=seq_len)
    if verdict.startswith("nothing fits"):
        raise TrainingError(f"{parameters / 1e9:.2f}B parameters: {verdict}.")
    method, precision = verdict.split(":")[0].split(" at ")
    return MethodDecision(method, precision, f"{parameters / 1e9:.3g}B parameters, {verdict} (keel estimate-memory)")
