"""Texts to token ids: the one tokenisation that training, export and serving all run.

It is the model's own ``tokenizer.json`` run by the `tokenizers` library (no torch), with
truncation to ``max_length`` and padding to the longest text of the batch. The bundle ships
that file, hash-verified, so the server tokenises exactly as training did.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=8)
def tokenizer_from_json(raw: str | bytes, max_length: int) -> Any:
    """A ``tokenizers.Tokenizer`` truncating to ``max_length`` and padding to the batch's longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(raw.decode() if isinstance(raw, bytes) else raw)
    tokenizer.enable_truncation(max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    pad = tokenizer.padding or {}
    tokenizer.enable_padding(
        pad_id=int(pad.get("pad_id", pad_id if pad_id is not None else 0)),
        pad_token=str(pad.get("pad_token", "[PAD]")),
    )
    return tokenizer


def encode(tokenizer: Any, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 [N, L]; a missing text is the empty text."""
    batch = tokenizer.encode_batch([t if isinstance(t, str) else "" for t in texts])
    ids = np.array([e.ids for e in batch], dtype=np.int64)
    mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
    return ids, mask


def by_length(tokenizer: Any, texts: Sequence[Any], batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar token length, so that batches carry little padding."""
    lengths = np.array([len(tokenizer.encode(t if isinstance(t, str) else "").ids) for t in texts])
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
