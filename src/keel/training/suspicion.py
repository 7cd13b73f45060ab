""" "Suspiciously good": a real-world score above 0.99 means look for leakage first.

| when | what keel does |
|---|---|
| the chosen model's test ROC AUC, accuracy or R² is above ``SUSPICIOUS`` and an input is free text | a warning: text tasks can be this easy (spam), and no single column is to blame |
| the same with tabular inputs | the drop-column check on the chosen model: its ``TOP`` most important inputs on validation (permutation), each refit away with the model's own family and parameters |
| - then | the version is registered with the evidence and **promotion is refused** until ``keel train --allow score.suspicious --reason`` or ``keel promote --force --reason`` (both recorded) |

The evidence names each column with the model's validation skill with and without it and the
share of the remaining error it removes (``keel.data.reliance.carried_share``): a column that
carries most of a near-perfect score is the first suspect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.data.reliance import carried_share, skill_of
from keel.schema import TEXT, InputSchema
from keel.training.fit import Candidate, fit_family, predict
from keel.training.prepare import Prepared

SUSPICIOUS = 0.99
WATCHED = ("roc_auc", "accuracy", "r2")
TOP = 2
PERMUTATION_ROWS = 2000
CHECK = "score.suspicious"


@dataclass(frozen=True)
class Suspicion:
    """Why a score is suspicious, and what the drop-column check found."""

    scores: dict[str, float]
    text: bool
    columns: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> str:
        named = ", ".join(f"test {k} {v:.4f}" for k, v in self.scores.items())
        if self.text:
            return f"{named} above {SUSPICIOUS} from free text: an easy task, or the label written in the text"
        found = "; ".join(
            f"'{c['column']}': validation skill {c['skill_full']:.3f} with it, {c['skill_without']:.3f} without "
            f"(it removes {c['carried']:.0%} of the remaining error)"
            for c in self.columns
        )
        return (
            f"{named} above {SUSPICIOUS}: a real-world model this good usually has a leak. Drop-column check: {found}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def suspicious_scores(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k in WATCHED and np.isfinite(v) and v > SUSPICIOUS}


def check(best: Candidate, candidates: list[Candidate], data: Prepared, seed: int, threads: int) -> Suspicion | None:
    """None when the chosen model's scores are ordinary; else the evidence (drop-column refits)."""
    scores = suspicious_scores(best.metrics)
    if not scores:
        return None
    if any(c.kind == TEXT for c in data.schema.columns):
        return Suspicion(scores, text=True)
    single = _single_family(best, candidates)
    rows = data.valid if data.valid is not None else data.test
    ranked = _ranked_columns(best.pipeline, data, rows, seed)
    found = []
    if single is not None and len(data.schema.columns) > 1:
        full = _skill(single.pipeline, data, rows)
        for name in ranked[:TOP]:
            without = _without(data, name)
            refit = fit_family(
                single.family, _params(single), without, data.search_train, data.valid, seed=seed, threads=threads
            )
            skill = _skill(refit.pipeline, without, rows)
            found.append(
                {"column": name, "skill_full": full, "skill_without": skill, "carried": carried_share(full, skill)}
            )
    return Suspicion(scores, text=False, columns=found)


def _single_family(best: Candidate, candidates: list[Candidate]) -> Candidate | None:
    """The chosen model, or for an ensemble its heaviest member; None for the baseline."""
    if best.family == "ensemble":
        weights = best.params.get("weights", {})
        name = max(weights, key=weights.get) if weights else None
        best = next((c for c in candidates if c.family == name), best)
    return None if best.family in ("baseline", "ensemble") else best


def _params(candidate: Candidate) -> dict[str, Any]:
    """The candidate's parameters without the keys a deadline or a refit added."""
    return {k: v for k, v in candidate.params.items() if not k.startswith("cut_") and k != "cv_rounds"}


def _skill(pipeline: Any, data: Prepared, rows: np.ndarray) -> float:
    """Skill on one scale (``keel.data.reliance.skill_of``) of ``pipeline`` on ``rows``."""
    predicted = predict(pipeline, data, rows)
    task = data.plan.task
    return skill_of(task, data.y[rows], predicted[:, 1] if task == "binary" else predicted)


def _ranked_columns(pipeline: Any, data: Prepared, rows: np.ndarray, seed: int) -> list[str]:
    """Input columns by how much permuting each on ``rows`` lowers the model's skill."""
    rng = np.random.default_rng(seed)
    chosen = rows if len(rows) <= PERMUTATION_ROWS else np.sort(rng.choice(rows, PERMUTATION_ROWS, replace=False))
    base = _skill(pipeline, data, chosen)
    drops = {}
    for column in data.schema.columns:
        shuffled = dict(data.x)
        values = data.x[column.name].copy()
        values[chosen] = values[rng.permutation(chosen)]
        shuffled[column.name] = values
        drops[column.name] = base - _skill(pipeline, dataclasses.replace(data, x=shuffled), chosen)
    return sorted(drops, key=lambda name: -drops[name])


def _without(data: Prepared, name: str) -> Prepared:
    schema = InputSchema(tuple(c for c in data.schema.columns if c.name != name))
    return dataclasses.replace(data, schema=schema, x={k: v for k, v in data.x.items() if k != name})
