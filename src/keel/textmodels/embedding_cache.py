"""Sentence embeddings kept by content, in the process and on disk, computed in chunks that can
stop at a deadline.

Embedding every text once took 271 s of a 300 s budget on 22,000 reviews, outside any fit
that could stop. Here each chunk of ``CHUNK`` texts is embedded, kept, and written to keel's
cache (``keel.config.cache_dir()/embeddings/<encoder, weights, length>/``, one ``.npz`` shard
per chunk, written to a temporary name and renamed) before the clock is read: a run that runs
out of time keeps what it embedded, and the next run, or the monitor, starts from there.
Texts are keyed by their SHA-1, so the cache holds no text. Deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from keel.errors import TrainingError

CHUNK = 512
MEMORY_ROWS = 200_000  # texts whose embedding a process keeps (sms_spam: 5,574 x 384 float32 = 8.6 MB)
_MEMORY: dict[str, dict[str, np.ndarray]] = {}


class EmbeddingIncomplete(TrainingError):
    """The deadline came before every text was embedded; what was embedded is kept."""

    def __init__(self, done: int, total: int, seconds: float) -> None:
        self.done, self.total, self.seconds = done, total, seconds
        super().__init__(
            f"embedded {done:,} of {total:,} texts in {seconds:.0f} s before the deadline (kept in keel's cache: "
            "the next run continues from there)"
        )


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def embeddings(
    space: str,
    texts: Sequence[str],
    compute: Callable[[list[str]], np.ndarray],
    deadline: float | None = None,
) -> np.ndarray:
    """Embeddings of ``texts`` (float32 [N, hidden]) in the embedding ``space`` (encoder, weights,
    length), computing with ``compute`` only those neither in memory nor on disk; raises
    ``EmbeddingIncomplete`` when ``deadline`` (time.monotonic) passes between two chunks."""
    cache = _memory(space)
    keys = [text_key(t) for t in texts]
    found = {k: cache[k] for k in set(keys) if k in cache}  # a full cache may be emptied below
    todo_keys = sorted(set(keys) - set(found))
    if todo_keys:
        by_key = dict(zip(keys, texts, strict=True))
        started = time.monotonic()
        for i in range(0, len(todo_keys), CHUNK):
            chunk = todo_keys[i : i + CHUNK]
            vectors = compute([by_key[k] for k in chunk])
            found.update(zip(chunk, vectors, strict=True))
            if len(cache) + len(chunk) > MEMORY_ROWS:
                cache.clear()
            cache.update(zip(chunk, vectors, strict=True))
            _write_shard(space, chunk, vectors)
            if deadline is not None and time.monotonic() >= deadline and i + CHUNK < len(todo_keys):
                raise EmbeddingIncomplete(len(found), len(set(keys)), time.monotonic() - started)
    if not keys:
        return np.empty((0, 0), dtype=np.float32)
    return np.stack([found[k] for k in keys])


def cached_share(space: str, texts: Sequence[str]) -> float:
    """The share of distinct ``texts`` already embedded (in memory or on disk)."""
    cache = _memory(space)
    keys = {text_key(t) for t in texts}
    return sum(1 for k in keys if k in cache) / max(1, len(keys))


def _folder(space: str) -> Path | None:
    if os.environ.get("KEEL_EMBEDDING_CACHE", "1") == "0":
        return None
    from keel.config import cache_dir

    return cache_dir() / "embeddings" / hashlib.sha256(space.encode()).hexdigest()[:24]


def _memory(space: str) -> dict[str, np.ndarray]:
    """The process's embeddings of ``space``, loaded once from the disk shards."""
    if space in _MEMORY:
        return _MEMORY[space]
    cache: dict[str, np.ndarray] = {}
    folder = _folder(space)
    if folder is not None and folder.is_dir():
        for shard in sorted(folder.glob("*.npz")):
            try:
                with np.load(shard) as stored:
                    cache.update(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
            except (OSError, ValueError, KeyError):  # a shard cut short by a kill: skip it
                continue
            if len(cache) >= MEMORY_ROWS:
                break
    _MEMORY[space] = cache
    return cache


def _write_shard(space: str, keys: list[str], vectors: np.ndarray) -> None:
    folder = _folder(space)
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        temporary = folder / f".{name}.partial"
        with temporary.open("wb") as handle:
            np.savez(handle, keys=np.asarray(keys), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(temporary, folder / f"{name}.npz")
    except OSError:  # a read-only or full cache costs speed, never a result
        return


def forget(space: str | None = None) -> None:
    """Drop the in-process copy (tests; the disk shards stay)."""
    if space is None:
        _MEMORY.clear()
    else:
        _MEMORY.pop(space, None)
