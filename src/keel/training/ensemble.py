"""A weighted ensemble of the searched families, chosen by greedy ensemble selection.

Caruana et al. (2004), as AutoGluon and auto-sklearn use it: start from nothing and, for
``ROUNDS`` rounds, add (with replacement) the family whose predictions most improve the
blend's validation metric; a family's weight is how often it was added. The predictions are
each family's best trial on the validation rows (out-of-fold when the search
cross-validated), so no member was fitted on the rows that weigh it.

The ensemble is a soft-voting scikit-learn estimator over the members' final pipelines
(each with its own feature transforms); skl2onnx converts it, so it exports and serves as
one graph like any other candidate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.evaluation.metrics import is_better, metric_value

ROUNDS = 25
FAMILY = "ensemble"


def select_weights(
    predictions: dict[str, np.ndarray], y: np.ndarray, metric: str, greater_is_better: bool, rounds: int = ROUNDS
) -> dict[str, float]:
    """Greedy ensemble selection with replacement: each member's share of ``rounds`` picks.

    Ties go to the family named first (sorted), so the result is deterministic.
    """
    names = sorted(predictions)
    counts = dict.fromkeys(names, 0)
    total: np.ndarray | None = None
    for size in range(rounds):
        best_name, best_value, best_total = "", float("nan"), None
        for name in names:
            candidate = predictions[name] if total is None else total + predictions[name]
            value = metric_value(metric, y, candidate / (size + 1))
            if best_total is None or is_better(value, best_value, greater_is_better):
                best_name, best_value, best_total = name, value, candidate
        counts[best_name] += 1
        total = best_total
    return {name: count / rounds for name, count in counts.items() if count}


def blend(predictions: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted average of the members' predictions."""
    total = sum(
        (predictions[name] * weight for name, weight in weights.items()),
        np.zeros_like(next(iter(predictions.values())), dtype=np.float64),
    )
    return np.asarray(total / sum(weights.values()))


def assemble(members: list[tuple[str, Any, float]], classification: bool) -> Any:
    """A fitted soft-voting estimator over already fitted pipelines (nothing is refitted).

    ``members`` are (name, fitted pipeline, weight). scikit-learn's Voting estimators only
    fit by cloning, so the fitted attributes are set here, as their ``fit`` would set them.
    """
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch

    estimators = [(name, pipeline) for name, pipeline, _ in members]
    weights = np.array([weight for _, _, weight in members], dtype=np.float64)
    if classification:
        model = VotingClassifier(estimators, voting="soft", weights=weights, flatten_transform=False)
        model.le_ = LabelEncoder().fit(members[0][1].classes_)
        model.classes_ = model.le_.classes_
    else:
        model = VotingRegressor(estimators, weights=weights)
    model.estimators_ = [pipeline for _, pipeline, _ in members]
    model.named_estimators_ = Bunch(**dict(estimators))
    return model
