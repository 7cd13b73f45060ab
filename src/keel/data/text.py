"""Near-duplicate texts with MinHash and LSH (datasketch): copies that differ in a few words."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

THRESHOLD = 0.8
NUM_PERM = 64
SAMPLE = 20_000
TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class NearDuplicates:
    """Texts that have a near-copy (Jaccard >= THRESHOLD on word bigrams) that is not an exact copy."""

    rows_checked: int
    rows_with_near_copy: int
    examples: list[tuple[str, str]] = field(default_factory=list)


def normalise(text: str) -> str:
    return " ".join(TOKEN.findall(text.lower()))


def _signatures(texts: list[str]) -> list[Any]:
    from datasketch import MinHash

    shingles = []
    for text in texts:
        words = text.split()
        grams = [" ".join(pair) for pair in pairwise(words)] or words or [""]
        shingles.append([g.encode() for g in grams])
    return list(MinHash.bulk(shingles, num_perm=NUM_PERM, seed=1))


def near_duplicates(values: Iterable[Any], seed: int = 0) -> NearDuplicates:
    """Near-copies within one text column's values (exact copies are counted elsewhere)."""
    from datasketch import MinHashLSH

    texts = _distinct_sample(values, seed)
    signatures = _signatures(texts)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for i, sig in enumerate(signatures):
        lsh.insert(i, sig)
    flagged: set[int] = set()
    examples: list[tuple[str, str]] = []
    for i, sig in enumerate(signatures):
        others = [j for j in lsh.query(sig) if j != i]
        if others:
            flagged.add(i)
            if len(examples) < 3 and i < others[0]:
                examples.append((texts[i][:120], texts[others[0]][:120]))
    return NearDuplicates(len(texts), len(flagged), examples)


def near_overlap(train: Iterable[Any], test: Iterable[Any]) -> int:
    """How many distinct test texts have a near-copy among the training texts."""
    from datasketch import MinHashLSH

    train_texts, test_texts = _distinct_sample(train, 0), _distinct_sample(test, 1)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for i, sig in enumerate(_signatures(train_texts)):
        lsh.insert(i, sig)
    return sum(1 for sig in _signatures(test_texts) if lsh.query(sig))


def _distinct_sample(values: Iterable[Any], seed: int) -> list[str]:
    texts = sorted({normalise(str(v)) for v in values if v is not None and v == v})
    if len(texts) > SAMPLE:
        rng = np.random.default_rng(seed)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), SAMPLE, replace=False))]
    return texts
