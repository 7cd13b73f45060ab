"""Embedding-distance drift on real texts: sms_spam windows with the training share of spam
(no change) and with more spam, against a 1,115-text reference.

    .venv/bin/python bench/text_drift.py

Prints each window's cosine distance of mean embeddings (all-MiniLM-L6-v2), the chance
threshold from the weighted chi-square null (keel.monitoring.embedding), and the status with keel's default floors (0.01 drift,
0.05 alert). Needs the text extra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keel.monitoring.embedding import EmbeddingLimits, _embed, embedding_drift

SMS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sms_spam.parquet"


def main() -> None:
    df = pd.read_parquet(SMS)
    rng = np.random.default_rng(0)
    vectors = _embed("all-MiniLM-L6-v2", df["text"].tolist())
    labels = df["label"].to_numpy()
    order = rng.permutation(len(df))
    reference, rest = order[:1115], order[1115:]
    spam, ham = (
        np.intersect1d(rest, np.flatnonzero(labels == "spam")),
        np.intersect1d(rest, np.flatnonzero(labels == "ham")),
    )
    for draw in range(10):
        window = rng.choice(rest, 300, replace=False)
        r = embedding_drift("text", vectors[reference], vectors[window], "MiniLM", EmbeddingLimits(seed=draw))
        print(f"unchanged #{draw}: distance {r.distance:.4f} chance {r.chance:.4f} {r.status}")
    for share in (0.13, 0.3, 0.5, 1.0):
        k = round(300 * share)
        window = np.concatenate([rng.choice(spam, k, replace=False), rng.choice(ham, 300 - k, replace=False)])
        r = embedding_drift("text", vectors[reference], vectors[window], "MiniLM", EmbeddingLimits())
        print(f"spam {share:.0%}: distance {r.distance:.4f} chance {r.chance:.4f} {r.status}")


if __name__ == "__main__":
    main()
