"""Fit one family with given hyperparameters, score it, and read its training curves.

Boosted families fit their transforms first, then the booster with the validation rows as
its eval set: early stopping picks the number of rounds, an optional ``on_round`` hook
sees the validation loss every ``REPORT_EVERY`` rounds (the search prunes with it), and the
loss curves of the final fit show where validation loss started to diverge. Fine-tuned text
families (``FINE_TUNED``) do the same per epoch, and stop at a deadline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ConfigError
from keel.evaluation.metrics import classification_metrics, regression_metrics
from keel.features.build import build_preprocessor, categorical_indices, plain_vocabularies
from keel.schema import LOG_LABEL, LOG_SCORE, TEXT, arrays_to_frame
from keel.training.families import BOOSTERS, EARLY_STOPPING_ROUNDS, FINE_TUNED, TEXT_FAMILIES, make_estimator
from keel.training.prepare import Prepared

REPORT_EVERY = 10
NATIVE_CATEGORICAL = ("lightgbm",)  # categorical splits on ordinal codes (onnxmltools converts them)
DIVERGENCE = 0.02  # validation loss 2% above its best, while training loss still falls
RoundHook = Callable[[int, float], bool]  # (round, validation loss) -> stop now?


@dataclass
class Candidate:
    """A fitted pipeline of one family with its scores."""

    family: str
    pipeline: Any
    metrics: dict[str, float]
    fit_seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    validation_score: float = float("nan")
    iterations: int | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)
    overfit_iteration: int | None = None
    trials: int = 0
    run_id: str = ""
    model_uri: str = ""
    rows: str = "all"  # what the final model learnt from: "all" training rows, or "train" (validation held out)
    test_predictions: np.ndarray | None = None  # ``predict`` on the test rows, kept so they are scored once
    cut: bool = False  # the fit stopped at the deadline (the rounds or iterations it had are in ``params``)
    cut_trials: int = 0  # search trials of this family that the deadline ended


_TRANSFORMED: dict[str, tuple[Any, ...]] = {}  # see _transformed


def _transformed(data: Prepared, train: np.ndarray, valid: np.ndarray | None, family: str) -> tuple[Any, Any, Any]:
    """The feature transforms fitted on the ``train`` rows, and the rows transformed.

    Transforms have no searched parameters, so every trial of a family fits the same ones.
    With text inputs that refit was a third of the search's time (TF-IDF vocabulary, measured
    with py-spy on sms_spam), so the last fit per kind of transform is kept and reused while
    the data and rows are the same; tabular transforms are cheap to refit and are not kept
    (the cache would hold a copy of the training matrix)."""
    if not any(c.kind == TEXT for c in data.schema.columns):
        return _fit_transforms(data, train, valid, family)
    key = _transform_kind(family)
    rows = hash(train.tobytes()), None if valid is None else hash(valid.tobytes())
    kept = _TRANSFORMED.get(key)
    if kept is not None and kept[0] is data and kept[1] == rows:
        return kept[2]
    if kept is not None and kept[0] is not data:
        _TRANSFORMED.clear()  # new data: nothing kept is valid any more
    result = _fit_transforms(data, train, valid, family)
    _TRANSFORMED[key] = (data, rows, result)
    return result


def _transform_kind(family: str) -> str:
    if family == "embeddings":
        return "embeddings"
    if family in FINE_TUNED:
        return "texts"
    return f"tabular|scale={family == 'linear'}|native={family in NATIVE_CATEGORICAL}"


def build_features(family: str, data: Prepared) -> Any:
    """The feature transforms ``family`` reads its inputs through (fitted by the caller)."""
    if family in TEXT_FAMILIES:
        from keel.textmodels.estimators import TextColumn, TextEncoder

        text = [c.name for c in data.schema.columns if c.kind == TEXT]
        if len(text) != 1 or len(data.schema.columns) != 1:
            raise ConfigError(
                f"family '{family}' reads one text column alone; this data has {len(text)} text and "
                f"{len(data.schema.columns) - len(text)} other input column(s).",
                hint="Drop the other columns in keel.yaml, or use the linear family (TF-IDF) for mixed inputs.",
            )
        cfg = data.config.text
        if family == "embeddings":
            return TextEncoder(text[0], cfg.encoder, cfg.max_length, data.config.train.threads)
        return TextColumn(text[0])
    return build_preprocessor(data.schema, scale=family == "linear", native_categorical=family in NATIVE_CATEGORICAL)


def warm_text_features(family: str, data: Prepared, deadline: float) -> str:
    """Embed every row's text (training, validation and test) before the ``embeddings`` family's
    search, in chunks that stop at ``deadline`` (keel.textmodels.embedding_cache): "" when all are
    embedded, else why the family could not train in its share (what was embedded is kept for
    the next run)."""
    if family != "embeddings":
        return ""
    from keel.textmodels.embedding_cache import EmbeddingIncomplete

    encoder = build_features(family, data)
    frame = arrays_to_frame(data.schema, data.rows(np.arange(len(data.y))))
    encoder.fit(frame)
    try:
        encoder.transform(frame, deadline=deadline)
    except EmbeddingIncomplete as exc:
        return f"budget too small for this family: {exc}"
    return ""


def _fit_transforms(data: Prepared, train: np.ndarray, valid: np.ndarray | None, family: str) -> tuple[Any, Any, Any]:
    features = build_features(family, data)
    x_train = features.fit_transform(arrays_to_frame(data.schema, data.rows(train)))
    plain_vocabularies(features)
    x_valid = None if valid is None else features.transform(arrays_to_frame(data.schema, data.rows(valid)))
    return features, x_train, x_valid


def fit_family(
    family: str,
    params: dict[str, Any],
    data: Prepared,
    train: np.ndarray,
    valid: np.ndarray | None,
    *,
    seed: int,
    threads: int,
    on_round: RoundHook | None = None,
    curves: bool = False,
    deadline: float | None = None,
    checkpoints: Path | None = None,
) -> Candidate:
    """Fit ``family`` on the ``train`` rows (boosters and fine-tuned families stop early on
    ``valid``). Fine-tuned families stop at ``deadline`` (time.monotonic) too, and keep a
    checkpoint per epoch under ``checkpoints`` to resume a killed fit from."""
    from sklearn.pipeline import Pipeline

    start = time.perf_counter()
    native = family in NATIVE_CATEGORICAL
    boosted = family in BOOSTERS and valid is not None
    tuned = family in FINE_TUNED
    features, x_train, x_valid = _transformed(data, train, valid if boosted or tuned else None, family)
    estimator = make_estimator(family, data.plan.classification, params, seed, threads, data.config.text)
    fit_args = {"categorical_feature": categorical_indices(data.schema)} if native else {}
    history: dict[str, list[float]] = {}
    if tuned:
        eval_set = (x_valid, data.y[valid]) if valid is not None else None
        folder = checkpoints / _rows_key(train, valid) if checkpoints is not None else None
        # what the caller scores before ``deadline``: the validation rows, and the test rows
        after = len(valid) + len(data.test) if valid is not None and deadline is not None else 0
        estimator.fit(x_train, data.y[train], eval_set, on_round, deadline, folder, after)
        history = dict(estimator.curves_)
    elif boosted:
        train_set, valid_set = (x_train, data.y[train]), (x_valid, data.y[valid])
        history = _fit_booster(family, estimator, train_set, valid_set, on_round, curves, fit_args, deadline)
    else:
        from keel.training.deadline import fit_until

        fit_until(family, estimator, x_train, data.y[train], deadline, fit_args)
    pipeline = Pipeline([("features", features), ("model", estimator)])
    iterations = _iterations(family, estimator)
    cut = bool(getattr(estimator, "keel_cut_", False))
    candidate = Candidate(
        family,
        pipeline,
        {},
        time.perf_counter() - start,
        params | (getattr(estimator, "keel_replay_", None) or {}) if cut else params,
        iterations=iterations,
        curves=history,
        overfit_iteration=divergence(history),
        cut=cut,
    )
    return candidate


def _fit_booster(
    family: str,
    estimator: Any,
    train: tuple[Any, np.ndarray],
    valid: tuple[Any, np.ndarray],
    on_round: RoundHook | None,
    curves: bool,
    fit_args: dict[str, Any],
    deadline: float | None = None,
) -> dict[str, list[float]]:
    """Fit with early stopping on ``valid``; returns loss curves when ``curves`` (train and valid).
    At ``deadline`` the fit stops where it is, keeping its best round so far (``keel.training.deadline``)."""
    from keel.training.deadline import lightgbm_deadline, xgboost_deadline

    sets = [train, valid] if curves else [valid]
    if family == "lightgbm":
        import lightgbm as lgb

        callbacks: list[Any] = [lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)]
        if deadline is not None:
            callbacks.append(lightgbm_deadline(estimator, deadline))
        if on_round is not None:
            callbacks.append(_lightgbm_hook(on_round))
        names = ["train", "valid"] if curves else ["valid"]
        estimator.fit(
            *train,
            eval_X=tuple(x for x, _ in sets),
            eval_y=tuple(y for _, y in sets),
            eval_names=names,
            callbacks=callbacks,
            **fit_args,
        )
        results = estimator.evals_result_
        return {name: list(next(iter(results[name].values()))) for name in names} if curves else {}
    hooks = [_XGBoostHook(on_round)] if on_round is not None else []
    if deadline is not None:
        hooks.append(xgboost_deadline(estimator, deadline))
    if hooks:
        estimator.set_params(callbacks=hooks)
    estimator.fit(*train, eval_set=sets, verbose=False)
    if hooks:
        estimator.set_params(callbacks=None)  # the saved model keeps no reference to the search
    results = estimator.evals_result()
    if not curves:
        return {}
    return {
        name: list(next(iter(results[key].values())))
        for name, key in (("train", "validation_0"), ("valid", "validation_1"))
    }


class StopTraining(Exception):
    """Raised inside a LightGBM callback to end a fit that the hook stopped."""


def _lightgbm_hook(on_round: RoundHook) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        if (env.iteration + 1) % REPORT_EVERY:
            return
        for data_name, _metric, value, _ in env.evaluation_result_list:
            if data_name == "valid":
                if on_round(env.iteration + 1, float(value)):
                    raise StopTraining()
                return

    callback.order = 30  # type: ignore[attr-defined]
    return callback


def _xgboost_base() -> type:
    import xgboost as xgb

    return xgb.callback.TrainingCallback


class _XGBoostHook:
    """XGBoost TrainingCallback calling ``on_round`` (built lazily so import stays cheap)."""

    def __new__(cls, on_round: RoundHook) -> Any:
        base = _xgboost_base()

        class Hook(base):  # type: ignore[misc, valid-type]
            def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
                if (epoch + 1) % REPORT_EVERY:
                    return False
                last = list(evals_log.values())[-1]
                return bool(on_round(epoch + 1, float(next(iter(last.values()))[-1])))

        return Hook()


def _rows_key(train: np.ndarray, valid: np.ndarray | None) -> str:
    """A checkpoint folder per set of rows: a resumed fit continues only on the same rows."""
    digest = hashlib.sha256(train.tobytes())
    if valid is not None:
        digest.update(valid.tobytes())
    return digest.hexdigest()[:16]


def _iterations(family: str, estimator: Any) -> int | None:
    if family in FINE_TUNED:
        return estimator.best_epoch_ or round(estimator.epochs_run_)
    if family == "lightgbm":
        return int(estimator.best_iteration_ or estimator.n_estimators_)
    if family == "xgboost":
        best = getattr(estimator, "best_iteration", None)
        return int(best) + 1 if best is not None else None
    return None


def divergence(curves: dict[str, list[float]]) -> int | None:
    """The round after which validation loss rose >= 1% above its best while training loss fell."""
    train, valid = curves.get("train"), curves.get("valid")
    if not train or not valid or len(valid) < 2:
        return None
    best = int(np.argmin(valid))
    rose = valid[-1] > valid[best] * (1 + DIVERGENCE) if valid[best] > 0 else valid[-1] > valid[best] + DIVERGENCE
    return best + 1 if rose and train[-1] < train[best] else None


def score(pipeline: Any, data: Prepared, index: np.ndarray) -> dict[str, float]:
    """The task's metric suite on the rows in ``index``."""
    return suite(data, index, predict(pipeline, data, index))


def suite(data: Prepared, index: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The task's metric suite of ``predicted`` (from ``predict``) on the rows in ``index``."""
    if data.plan.classification:
        return classification_metrics(data.y[index], predicted)
    return regression_metrics(data.y[index], predicted)


def predict(pipeline: Any, data: Prepared, index: np.ndarray) -> np.ndarray:
    """Class probabilities (classification) or values (regression) for the rows in ``index``."""
    frame = arrays_to_frame(data.schema, data.rows(index))
    if data.plan.classification:
        return np.asarray(pipeline.predict_proba(frame))  # float32 from XGBoost: log loss checks sums at its precision
    return np.asarray(pipeline.predict(frame), dtype=np.float64)


def predictions_of(
    pipeline: Any, data: Prepared, index: np.ndarray, predicted: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Prediction-log columns (keel_label / keel_score) for the rows in ``index`` (from
    ``predicted``, what ``predict`` gave on them, when the caller has it)."""
    proba = predict(pipeline, data, index) if predicted is None else predicted
    if not data.plan.classification:
        return {LOG_SCORE: proba}  # values, for regression
    classes = np.asarray(data.classes, dtype=object)
    best = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return {LOG_LABEL: classes[proba.argmax(axis=1)], LOG_SCORE: best.astype(np.float64)}
