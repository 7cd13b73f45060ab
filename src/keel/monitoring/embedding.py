"""Text drift in meaning: how far the logged texts' mean sentence embedding moved from the
reference texts' (the held-out sample in the bundle).

Length and vocabulary drift (``keel.monitoring.drift``) see surface changes; a change of
topic in the same words and lengths shows here. Both samples are embedded with the
bundle's own encoder (transformer bundles) or the packaged all-MiniLM-L6-v2 (the ``text``
extra); without the extra the check is skipped and says so.

- **statistic**: the cosine distance between the two mean embeddings.
- **chance**: the test is on the squared Euclidean distance between the two mean
  embeddings (a high-dimensional two-sample mean test). With no change it is a sum of
  chi-squares weighted by the eigenvalues of the pooled covariance times 1/n + 1/m, whose
  tail comes from a four-moment approximation (Liu, Tang and Zhang). A permutation null with
  a normal, then a gamma, tail was tried first: on 500 quiet windows of sms_spam both flagged
  several times their nominal rate, because a few directions dominate the spread and make
  the tail heavy. ``chance`` is that distance in cosine units, approximately.
- **effect floors**: beyond chance, ``drift_distance`` marks drift and ``alert_distance`` an
  alert, so that a large window's tiny but real change does not page anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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


def mean_shift_test(reference: np.ndarray, current: np.ndarray, alpha: float) -> tuple[float, float]:
    """(p, the squared distance of the two mean embeddings that chance exceeds with probability
    ``alpha``) for the squared Euclidean distance between the means. With no change, the
    difference of the means is about normal with covariance S (1/n + 1/m) (S: the pooled
    within-sample covariance), so the squared distance is a sum of chi-squares weighted by that
    matrix's eigenvalues; its tail is Liu, Tang and Zhang's four-moment approximation."""
    n, m = len(reference), len(current)
    gap = reference.mean(axis=0) - current.mean(axis=0)
    centred = np.vstack([reference - reference.mean(axis=0), current - current.mean(axis=0)])
    covariance = centred.T @ centred / max(n + m - 2, 1)
    weights = np.clip(np.linalg.eigvalsh(covariance), 0.0, None) * (1 / n + 1 / m)
    return weighted_chi2_tail(float(gap @ gap), weights, alpha)


def weighted_chi2_tail(value: float, weights: np.ndarray, alpha: float) -> tuple[float, float]:
    """P(sum_i w_i X_i > value) for independent chi-square(1) X_i, and the value exceeded with
    probability ``alpha`` (Liu, Tang & Zhang 2009: a noncentral chi-square with the same
    first four cumulants)."""
    from scipy.stats import ncx2

    c1, c2, c3, c4 = (float(np.sum(weights**k)) for k in (1, 2, 3, 4))
    if c2 <= 0:
        return (0.0 if value > c1 else 1.0), c1
    s1, s2 = c3 / c2**1.5, c4 / c2**2
    if s1**2 > s2:
        a = 1 / (s1 - np.sqrt(s1**2 - s2))
        delta = s1 * a**3 - a**2
        dof = a**2 - 2 * delta
    else:
        a, delta, dof = 1 / s1, 0.0, 1 / s1**2
    mean_x, sd_x = dof + delta, np.sqrt(2) * a
    mean_q, sd_q = c1, np.sqrt(2 * c2)
    p_value = float(ncx2.sf((value - mean_q) / sd_q * sd_x + mean_x, dof, max(delta, 1e-12)))
    cut = (float(ncx2.isf(alpha, dof, max(delta, 1e-12))) - mean_x) / sd_x * sd_q + mean_q
    return p_value, cut


def embedding_drift(
    column: str, reference: np.ndarray, current: np.ndarray, encoder: str, limits: EmbeddingLimits
) -> EmbeddingDrift:
    """The check on two matrices of sentence embeddings (rows: texts)."""
    distance = centroid_distance(reference, current)
    p_value, squared = mean_shift_test(reference, current, limits.alpha)
    a, b = reference.mean(axis=0), current.mean(axis=0)
    chance = squared / max(2 * float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)  # about, in cosine units
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
