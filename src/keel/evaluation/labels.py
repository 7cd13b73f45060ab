"""Label quality: are the new labels as trustworthy as the ones the champion was judged on?

A challenger trained on corrupted labels can pass a ranking gate: flipping labels at random
barely changes which rows a model ranks higher, so its ROC AUC on clean golden rows stays
high. And a check on the newest labelled rows scores it against the same corrupted labels.
So ``keel retrain`` asks about the labels themselves, before it believes any score on them.

**Self-agreement (the check that refuses).** A model is most often right on the rows it is
surest of. Within one set of labelled rows, a small LightGBM is fitted on one half and
predicts the other (two folds, so every row gets an out-of-fold prediction); among the
``TOP_SHARE`` (20%) of rows it is surest of, count how often the label agrees with the
prediction. The same procedure, at the same number of rows, runs on:

- the golden set, whose labels the gate already trusts (historical);
- the new labelled rows (the challenger's hold-out, or the newest rows of a refresh).

Each set is judged from within, so a real change in the world between the two (concept
drift) does not lower the new agreement: the small model learns the new relation. Labels
flipped at random on a share f of rows cap the agreement of even the surest rows near
1 - f. The check fails when the new agreement is lower than the historical one by more than
``tolerance`` (0.05), beyond chance (one-sided two-proportion test, p below ``alpha`` 0.01).
A first version compared the challenger's own surest predictions with the champion's; on
electricity a challenger trained on older days met the newest month's honest labels at 80%
against 96%, and was refused: the gap in time looked like noise.

**Reported beside it.** How often the new labels agree with the *champion's* confident
predictions (they fall under concept drift too, so they inform rather than refuse), and the
label distribution shift: each class's share among the new labels against the share the
champion expects on those same rows (its mean probability). Under a pure change of inputs
the two move together; randomly flipped labels pull the shares toward uniform.

Regression has no notion of a flipped label: the check passes and says it does not apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TOP_SHARE = 0.2


@dataclass(frozen=True)
class Agreement:
    share: float  # labels agreeing with the model's prediction among its most confident rows
    rows: int  # how many confident rows
    cut: float  # the confidence at or above which a row counts as confident


def confident_agreement(proba: np.ndarray, y: np.ndarray, top_share: float = TOP_SHARE) -> Agreement:
    """How often ``y`` (class indices) matches the argmax of ``proba`` on the most confident
    ``top_share`` of rows."""
    confidence = proba.max(axis=1)
    k = max(1, round(top_share * len(y)))
    order = np.argsort(-confidence, kind="stable")[:k]
    right = proba[order].argmax(axis=1) == y[order]
    return Agreement(float(np.mean(right)), k, float(confidence[order[-1]]))


SELF_ROWS = 5000  # rows per set for the self-agreement fits (both sets drawn to the same size)


def self_agreement(frame: Any, kinds: dict[str, str], y: np.ndarray, rows: int, seed: int = 0) -> Agreement:
    """Out-of-fold confident agreement within one labelled set: ``frame``'s ``kinds`` columns
    (numeric, or anything else as a category), ``y`` class indices, ``rows`` rows drawn."""
    import lightgbm as lgb
    import pandas as pd
    from sklearn.model_selection import KFold, StratifiedKFold

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(y), min(rows, len(y)), replace=False))
    data = {}
    for name, kind in kinds.items():
        values = frame[name].iloc[pick]
        if kind == "numeric":
            data[name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        else:
            data[name] = pd.Categorical(values.astype("string").fillna("").to_numpy(dtype=object))
    x, target = pd.DataFrame(data), y[pick]
    classes = np.unique(target)
    proba = np.zeros((len(target), int(y.max()) + 1))
    stratify = np.bincount(target).min() >= 2
    folds = (StratifiedKFold if stratify else KFold)(2, shuffle=True, random_state=seed)
    for train, test in folds.split(x, target):
        if len(np.unique(target[train])) < len(classes):
            continue
        model = lgb.LGBMClassifier(
            n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20, random_state=seed, verbose=-1,
            n_jobs=2,
        )  # fmt: skip
        model.fit(x.iloc[train], target[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(x.iloc[test])
    return confident_agreement(proba, target)


def label_quality_check(
    then: Agreement,
    now: Agreement,
    champion_new: np.ndarray | None = None,
    y_new: np.ndarray | None = None,
    classes: list[str] | None = None,
    *,
    tolerance: float = 0.05,
    alpha: float = 0.01,
) -> Any:
    """The gate's check (``keel.evaluation.gate.Check``) from the golden set's self-agreement
    (``then``) and the new labelled rows' (``now``); ``champion_new`` (the champion's
    probabilities on the new rows) and ``y_new`` (their labels) add the informative numbers."""
    from scipy.stats import norm

    from keel.evaluation.gate import Check

    pooled = (then.share * then.rows + now.share * now.rows) / (then.rows + now.rows)
    error = math.sqrt(max(pooled * (1 - pooled), 1e-6) * (1 / then.rows + 1 / now.rows))
    gap = then.share - now.share
    p_value = float(norm.sf((gap - tolerance) / error))
    passed = not (gap > tolerance and p_value < alpha)
    numbers: dict[str, Any] = {
        "historical_agreement": then.share,
        "historical_rows": then.rows,
        "new_agreement": now.share,
        "new_rows": now.rows,
        "gap": gap,
        "tolerance": tolerance,
        "p_value": p_value,
        "noise_estimate": max(0.0, gap),
    }
    extra = ""
    if champion_new is not None and y_new is not None:
        numbers["champion_agreement_new"] = confident_agreement(champion_new, y_new).share
        shares = np.bincount(y_new, minlength=champion_new.shape[1]) / max(len(y_new), 1)
        expected = champion_new.mean(axis=0)
        names = classes or [str(i) for i in range(len(shares))]
        numbers["label_shares"] = dict(zip(names, map(float, shares), strict=True))
        numbers["expected_shares"] = dict(zip(names, map(float, expected), strict=True))
        worst = int(np.argmax(np.abs(shares - expected)))
        extra = (
            f"; the champion's surest predictions agree {numbers['champion_agreement_new']:.1%}; "
            f"label '{names[worst]}' is {shares[worst]:.1%} of the new labels, the champion expects "
            f"{expected[worst]:.1%} on those rows"
        )
    detail = (
        f"on the {now.rows:,} new rows a model fitted on the others is surest of, the labels agree "
        f"{now.share:.1%} vs {then.share:.1%} on the golden set ({then.rows:,} rows): {-gap:+.1%}"
    )
    if not passed:
        detail = (
            f"the new labels look corrupted: {detail}, more than {tolerance:.0%} lower (p {p_value:.2g}), as if "
            f"about {gap:.0%} of them were wrong{extra}. Check the labelling pipeline before retraining on them"
        )
    else:
        detail += f" (fails beyond {tolerance:.0%} lower){extra}"
    return Check("label quality", passed, detail, numbers)


def not_applicable(task: str) -> Any:
    from keel.evaluation.gate import Check

    return Check("label quality", True, f"not checked for {task}: a flipped label has no meaning there", {})
