"""scikit-learn estimators for the transformer strategies (imported without torch; fitting
and predicting load it).

| family | pipeline | what is stored (skops) |
|---|---|---|
| ``embeddings`` | ``TextEncoder`` (frozen encoder, mean-pooled, normalised) -> ``LogisticRegression`` | the encoder's id and the head |
| ``lora`` | ``TextColumn`` -> ``EncoderClassifier(method="lora")`` | the adapters (~0.3% of the weights) and the head |
| ``finetune`` | ``TextColumn`` -> ``EncoderClassifier(method="full")`` | every weight |

The encoder itself is never stored: its id resolves to the packaged or local directory
(``keel.textmodels.models``), and the SHA-256 of its weights, recorded at fit time, must
match when the model is loaded again.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from keel.errors import ConfigError
from keel.textmodels.models import DEFAULT_ENCODER, require_text_extra, resolve_model, tokenizer_json


def texts_of(X: Any, column: str | None = None) -> list[Any]:
    """The texts of a DataFrame column (or of a 1-D array); a missing text is None."""
    values = X[column] if column is not None and hasattr(X, "columns") else X
    values = np.asarray(values, dtype=object).ravel()
    return [v if isinstance(v, str) else None for v in values]


def embed_texts(
    directory: str,
    digest: str,
    tokenizer: str,
    texts: list[Any],
    max_length: int,
    threads: int = 1,
    deadline: float | None = None,
) -> np.ndarray:
    """Sentence embeddings of ``texts`` (None is the empty text) by the encoder in ``directory``
    (weights ``digest``), each text embedded once: the search's trials, the refit, scoring, the
    monitor's windows and later runs share them (``keel.textmodels.embedding_cache``). With a
    ``deadline``, embedding stops between chunks once it has passed (``EmbeddingIncomplete``)."""
    from keel.textmodels.embedding_cache import embeddings

    def compute(todo: list[str]) -> np.ndarray:
        from keel.textmodels.nets import embed

        return embed(directory, tokenizer, todo, max_length, threads=threads)

    space = f"{directory}|{digest}|{max_length}"
    return embeddings(space, [t if t is not None else "" for t in texts], compute, deadline)


def weights_digest(directory: Path) -> str:
    """SHA-256 over the encoder's weight files (safetensors or bin), in name order; computed
    once per process and set of files (their sizes and modification times)."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return _digest(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@lru_cache(maxsize=8)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        file = Path(name)
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class _Encoded(BaseEstimator):
    """Shared by both estimators: the encoder's directory, tokenizer and weight digest."""

    model: str
    max_length: int

    def _directory(self) -> Path:
        require_text_extra()
        directory = resolve_model(self.model)
        recorded = getattr(self, "encoder_sha256_", None)
        if recorded is not None and getattr(self, "_checked", None) != str(directory):
            found = weights_digest(directory)
            if found != recorded:
                raise ConfigError(
                    f"encoder '{self.model}' at {directory} has other weights than the model was trained "
                    f"with (sha256 {found[:12]}, trained with {recorded[:12]}).",
                    hint="Install the encoder version the model was trained with, or retrain.",
                )
            self._checked = str(directory)
        return directory

    def _record(self) -> Path:
        directory = self._directory()
        self.encoder_sha256_ = weights_digest(directory)
        self.tokenizer_ = tokenizer_json(directory).decode()
        self._checked = str(directory)
        return directory

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {k: v for k, v in state.items() if not k.startswith("_") or k == "_sklearn_version"}


class TextColumn(TransformerMixin, BaseEstimator):
    """The raw texts of one column, for estimators that tokenise themselves."""

    def __init__(self, column: str) -> None:
        self.column = column

    def fit(self, X: Any, y: Any = None) -> TextColumn:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(texts_of(X, self.column), dtype=object)


class TextEncoder(TransformerMixin, _Encoded):
    """Sentence embeddings of one text column from a frozen encoder (the ``embeddings`` family).

    Embeddings are kept per process by text, so the search's trials, the refit and scoring
    embed each text once.
    """

    def __init__(self, column: str, model: str = DEFAULT_ENCODER, max_length: int = 128, threads: int = 1) -> None:
        self.column = column
        self.model = model
        self.max_length = max_length
        self.threads = threads

    def fit(self, X: Any, y: Any = None) -> TextEncoder:
        self._record()
        return self

    def transform(self, X: Any, deadline: float | None = None) -> np.ndarray:
        """Embeddings of the column's texts; with a ``deadline``, stops between chunks once it passed."""
        directory = str(self._directory())
        texts = texts_of(X, self.column)
        return embed_texts(
            directory, self.encoder_sha256_, self.tokenizer_, texts, self.max_length, self.threads, deadline
        )


class EncoderClassifier(ClassifierMixin, _Encoded):
    """An encoder fine-tuned with a linear head on mean pooling (``lora`` and ``finetune``).

    ``fit`` takes ``eval_set=(X, y)`` for early stopping, ``on_round`` (epoch, validation
    loss) -> stop?, a ``deadline`` (time.monotonic), a ``checkpoints`` directory to resume
    a killed fit from, and ``scored_after``, how many texts the caller scores after the fit
    within the same deadline.
    """

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        method: str = "lora",
        rank: int = 8,
        learning_rate: float = 1e-3,
        epochs: int = 3,
        batch_size: int = 32,
        max_length: int = 128,
        patience: int = 1,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        self.model = model
        self.method = method
        self.rank = rank
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.patience = patience
        self.seed = seed
        self.threads = threads

    def fit(
        self,
        X: Any,
        y: Any,
        eval_set: tuple[Any, Any] | None = None,
        on_round: Any = None,
        deadline: float | None = None,
        checkpoints: Path | str | None = None,
        scored_after: int = 0,
    ) -> EncoderClassifier:
        if self.method not in ("lora", "full"):
            raise ConfigError(f"unknown fine-tuning method '{self.method}'.", hint="Use lora or full.")
        directory = self._record()
        from keel.textmodels.nets import FineTuning, fine_tune

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        valid = None
        if eval_set is not None:
            valid = (texts_of(eval_set[0]), np.searchsorted(self.classes_, np.asarray(eval_set[1])))
        settings = FineTuning(
            self.method,
            self.rank,
            self.learning_rate,
            self.epochs,
            self.batch_size,
            self.max_length,
            self.patience,
            self.seed,
            self.threads,
        )
        tuned = fine_tune(
            str(directory),
            self.tokenizer_,
            texts_of(X),
            codes,
            len(self.classes_),
            valid,
            settings,
            on_epoch=on_round,
            deadline=deadline,
            checkpoints=Path(checkpoints) if checkpoints is not None else None,
            scored_after=scored_after,
        )
        self.weights_ = tuned.weights
        self.curves_ = tuned.curves
        self.best_epoch_ = tuned.best_epoch
        self.epochs_run_ = tuned.epochs
        self.resumed_from_ = tuned.resumed_from
        self._net = tuned.network  # the trained module: predicting after fit needs no rebuild
        return self

    def network(self) -> Any:
        """The trained torch classifier (built once per process from the stored weights)."""
        net = getattr(self, "_net", None)
        if net is None:
            from keel.textmodels.nets import build

            net = build(str(self._directory()), len(self.classes_), self.method, self.rank, self.weights_)
            self._net = net
        return net

    def decision_logits(self, X: Any) -> np.ndarray:
        from keel.textmodels.nets import logits_of

        texts = texts_of(X)
        memo = getattr(self, "_memo", None)
        key = hashlib.sha256("\x00".join(t or "" for t in texts).encode()).hexdigest()
        if memo is not None and memo[0] == key:
            return memo[1]
        logits = logits_of(self.network(), self.tokenizer_, texts, self.max_length, self.threads)
        self._memo = (key, logits)
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self.decision_logits(X).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
