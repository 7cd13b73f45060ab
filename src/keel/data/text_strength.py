"""How well a free-text column alone predicts the target: TF-IDF and a linear model, out of fold.

Text columns are scored on the same scale as the others (``keel.data.leakage``: 2·AUC-1,
accuracy above the majority share, R²), so that a tabular column that dominates beside the
text (a star rating next to the review it labels) is seen. On at most ``SAMPLE`` rows,
``FOLDS``-fold, up to ``FEATURES`` word uni- and bigrams: about a second on 10,000 texts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.data.leakage import Strength

SAMPLE = 10_000
FOLDS = 3
FEATURES = 20_000


def text_strength(name: str, series: Any, y: np.ndarray, task: str, seed: int = 0) -> Strength:
    """Out-of-fold strength of the text column ``series`` (pandas) for the encoded target ``y``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(seed)
    index = np.arange(len(y))
    if len(index) > SAMPLE:
        index = np.sort(rng.choice(index, SAMPLE, replace=False))
    texts = series.iloc[index].fillna("").astype(str).to_numpy()
    target = y[index]
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), max_features=FEATURES, sublinear_tf=True, min_df=2)
    if task == "regression":
        model = make_pipeline(vectoriser, Ridge(alpha=1.0))
        folds = KFold(FOLDS, shuffle=True, random_state=seed)
        predicted = cross_val_predict(model, texts, target, cv=folds)
        sst = float(np.sum((target - target.mean()) ** 2)) or 1.0
        r2 = max(0.0, 1 - float(np.sum((target - predicted) ** 2)) / sst)
        return Strength(name, "R²", r2, r2)
    counts = np.bincount(target)
    if counts[counts > 0].min() < FOLDS:
        return Strength(name, "AUC" if task == "binary" else "accuracy", 0.5 if task == "binary" else 0.0, 0.0)
    model = make_pipeline(vectoriser, LogisticRegression(max_iter=1000, C=4.0))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, texts, target, cv=folds, method="predict_proba")
    if task == "binary":
        from keel.data.reliance import auc

        value = auc(target, proba[:, 1])
        return Strength(name, "AUC", value, max(0.0, 2 * value - 1))
    accuracy = float(np.mean(proba.argmax(axis=1) == target))
    base = float(counts.max() / len(target))
    return Strength(name, "accuracy", accuracy, max(0.0, (accuracy - base) / max(1 - base, 1e-12)))
