"""Canonical input arrays -> an exported graph's inputs.

Tabular and TF-IDF graphs take one [N, 1] tensor per column (``InputSchema.onnx_feed``).
A transformer graph takes ``input_ids`` and ``attention_mask``: its text column is tokenised
with the ``tokenizer.json`` shipped in the bundle, by the same function training used
(``keel.textmodels.tokens``), so serving has no second tokeniser.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.schema import InputSchema
from keel.textmodels.tokens import encode, tokenizer_from_json

TOKENIZER_FILE = "tokenizer.json"
CHUNK_TEXTS = 64  # a transformer graph scores many texts in chunks: one padded batch of 2,000 took GBs


class Feeder:
    """Builds the graph's feed from canonical arrays (see keel.schema)."""

    def __init__(self, schema: InputSchema, tokens: dict[str, Any] | None = None, tokenizer: str | None = None) -> None:
        """``tokens`` is a transformer bundle's ``metadata["tokens"]`` ({column, max_length}) and
        ``tokenizer`` its tokenizer.json; both None for every other graph."""
        self.schema = schema
        self.tokens = tokens
        self._tokenizer = tokenizer_from_json(tokenizer, int(tokens["max_length"])) if tokens and tokenizer else None

    @property
    def tokenised(self) -> bool:
        return self._tokenizer is not None

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._tokenizer is None or self.tokens is None:
            return self.schema.onnx_feed(arrays)
        ids, mask = encode(self._tokenizer, arrays[self.tokens["column"]].tolist())
        return {"input_ids": ids, "attention_mask": mask}

    def run(self, session: Any, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs for every row. A transformer graph runs in chunks of texts of
        similar length (little padding, bounded memory); the rows come back in their order."""
        if self._tokenizer is None or self.tokens is None:
            return list(session.run(None, self(arrays)))
        from keel.textmodels.tokens import by_length

        texts = arrays[self.tokens["column"]]
        parts: list[list[np.ndarray]] = []
        order = by_length(self._tokenizer, list(texts), CHUNK_TEXTS)
        for rows in order:
            parts.append(session.run(None, self({name: values[rows] for name, values in arrays.items()})))
        if not parts:
            return list(session.run(None, self(arrays)))
        index = np.concatenate(order)
        out = []
        for k in range(len(parts[0])):
            joined = np.concatenate([p[k] for p in parts])
            restored = np.empty_like(joined)
            restored[index] = joined
            out.append(restored)
        return out

    @classmethod
    def of_bundle(cls, bundle: Any) -> Feeder:
        """The feeder of a verified bundle (its tokenizer.json was hash-checked with the rest)."""
        tokens = bundle.metadata.get("tokens")
        if not tokens:
            return cls(bundle.schema)
        if TOKENIZER_FILE not in bundle.files:
            from keel.errors import BundleError

            raise BundleError(
                f"bundle {bundle.path} holds a transformer graph but no {TOKENIZER_FILE} in its manifest.",
                hint="Re-export this version with `keel export`.",
            )
        return cls(bundle.schema, tokens, (bundle.path / TOKENIZER_FILE).read_text(encoding="utf-8"))
