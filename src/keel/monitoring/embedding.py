"""Text drift in meaning: how far the logged texts' mean sentence embedding moved from the
reference texts' (the held-out sample in the bundle).

Length and vocabulary drift (``keel.monitoring.drift``) see surface changes; a change of
topic in the same words and lengths shows here. Both samples are embedded with the
bundle's own encoder (transformer bundles) or the packaged all-MiniLM-L6-v2 (the ``text``
extra); without the extra the check is skipped and says so.

- **statistic**: the cosine distance between the two mean embeddings.
- **chance**: a permutation test. The two samples are pooled and split at random
  ``PERMUTATIONS`` times at the same sizes; the distances that gives are what chance alone
  produces. A squared-distance statistic is skewed (a scaled chi-square, not a normal), so
  a gamma distribution with the permutations' mean and variance gives the tail (as for
  kernel two-sample tests); a normal tail was too thin and flagged chance.
- **effect floors**: beyond chance, ``drift_distance`` marks drift and ``alert_distance`` an
  alert, so that a large window's tiny but real change does not page anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PERMUTATIONS = 200


@dataclass(frozen=True)
class EmbeddingLimits:
    drift_distance: float = 0.01
    alert_distance: float = 0.05
    alpha: float = 0.001
    max_rows: int = 2000  # per side
    seed: int = 0
    alert_alpha: float = 0.001  # the family-wise share an alert must beat (keel.monitoring.drift.family_alpha)


@dataclass(frozen=True)
class EmbeddingDrift:
    column: str
    encoder: str
    distance: float  # cosine distance of the mean embeddings
    chance: float  # the distance chance alone exceeds with probability alpha at these sizes
    reference_rows: int
    current_rows: int
    status: str  # ok | drift | alert
    p_value: float = 1.0

    def describe(self) -> str:
        return (
            f"'{self.column}' mean embedding moved by cosine distance {self.distance:.4f} (chance up to "
            f"{self.chance:.4f}; {self.reference_rows:,} reference vs {self.current_rows:,} current texts, {self.encoder})"
        )


def centroid_distance(reference: np.ndarray, current: np.ndarray) -> float:
    a, b = reference.mean(axis=0), current.mean(axis=0)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(1.0 - a @ b / norms) if norms > 0 else 0.0


def null_distances(reference: np.ndarray, current: np.ndarray, seed: int) -> np.ndarray:
    """The distances of ``PERMUTATIONS`` random splits of the pooled sample at these sizes."""
    pooled = np.vstack([reference, current])
    rng = np.random.default_rng(seed)
    n = len(reference)
    total = pooled.sum(axis=0)
    null = []
    for _ in range(PERMUTATIONS):
        pick = rng.choice(len(pooled), n, replace=False)
        first = pooled[pick].sum(axis=0)
        a, b = first / n, (total - first) / (len(pooled) - n)
        null.append(1.0 - a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
    return np.asarray(null)


def gamma_tail(null: np.ndarray, value: float, alpha: float) -> tuple[float, float]:
    """(p of ``value`` or more, the value exceeded with probability ``alpha``) under the gamma
    distribution with the null's mean and variance."""
    from scipy.stats import gamma

    mean, var = float(null.mean()), float(null.var(ddof=1))
    if mean <= 0 or var <= 0:
        return (0.0 if value > mean else 1.0), mean
    shape, scale = mean**2 / var, var / mean
    return float(gamma.sf(value, shape, scale=scale)), float(gamma.isf(alpha, shape, scale=scale))


def embedding_drift(
    column: str, reference: np.ndarray, current: np.ndarray, encoder: str, limits: EmbeddingLimits
) -> EmbeddingDrift:
    """The check on two matrices of sentence embeddings (rows: texts)."""
    distance = centroid_distance(reference, current)
    p_value, chance = gamma_tail(null_distances(reference, current, limits.seed), distance, limits.alpha)
    status = "ok"
    if p_value < limits.alpha and distance >= limits.drift_distance:
        status = "alert" if distance >= limits.alert_distance and p_value < limits.alert_alpha else "drift"
    return EmbeddingDrift(column, encoder, distance, chance, len(reference), len(current), status, p_value)


def text_embedding_drift(
    reference: Any, current: Any, kinds: dict[str, str], encoder: str | None, limits: EmbeddingLimits
) -> tuple[list[EmbeddingDrift], str]:
    """The check for every text column of two pyarrow tables: (results, why none) — ``why`` says
    why there are none when the text extra is missing or no column is text."""
    from keel.schema import TEXT
    from keel.textmodels.models import DEFAULT_ENCODER, text_extra_installed

    columns = [name for name, kind in kinds.items() if kind == TEXT and name in current.column_names]
    if not columns or reference is None:
        return [], ""
    if not text_extra_installed():
        return [], "embedding drift skipped: the text extra is not installed (pip install 'keel[text]')"
    model = encoder or DEFAULT_ENCODER
    rng = np.random.default_rng(limits.seed)
    out = []
    for name in columns:
        ref = _sample(reference.column(name).to_pylist(), limits.max_rows, rng)
        cur = _sample(current.column(name).to_pylist(), limits.max_rows, rng)
        if len(ref) < 2 or len(cur) < 2:
            continue
        vectors = _embed(model, ref + cur)
        out.append(embedding_drift(name, vectors[: len(ref)], vectors[len(ref) :], model, limits))
    return out, ""


def _sample(texts: list[Any], rows: int, rng: np.random.Generator) -> list[str]:
    kept = [t for t in texts if isinstance(t, str)]
    if len(kept) > rows:
        kept = [kept[i] for i in np.sort(rng.choice(len(kept), rows, replace=False))]
    return kept


def _embed(model: str, texts: list[str]) -> np.ndarray:
    from keel.textmodels.estimators import embed_texts, weights_digest
    from keel.textmodels.models import resolve_model, tokenizer_json

    directory = resolve_model(model)
    return embed_texts(str(directory), weights_digest(directory), tokenizer_json(directory).decode(), texts, 128, 2)
