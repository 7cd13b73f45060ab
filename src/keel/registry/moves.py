"""Registry moves that survive a kill and a concurrent command.

A champion change is several writes to different systems: the MLflow alias, the decision
(an artifact and an event tag, which ``keel history`` and the champion stack replay) and the
store's serving file (what the server reads). A process killed between two of them, or two
commands interleaving their steps, left them disagreeing (alias @2, history top @1).

Two rules make them agree:

- **One lock per model across processes** (``model_lock``: a file lock in the store,
  ``locks/<model>.lock``). Promote, rollback, alias changes and export's registry steps hold
  it from reading the current state to the last write, so commands on one model run one
  after another; a command that waits longer than ``LOCK_SECONDS`` fails with a clear line.
- **Intent first** (``intents/<model>.json``, written atomically before the first write):
  the target alias, version and the full event to record. The steps then run; the intent is
  removed after the last. Whoever takes the lock next finds an intent left by a killed
  command and rolls it forward: every step is idempotent (setting an alias, writing the
  event tag under the same key, rewriting the serving file), so doing them again completes
  the move. ``recover`` is that roll-forward.

``fault_point(name)`` kills the process at a named step boundary when the environment
variable ``KEEL_FAULT_AT`` names it: the seam the crash tests use (tests/integration/
test_registry_crashes.py); unset, it does nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keel.errors import RegistryError
from keel.store import Store, atomic_write_json, read_json

LOCK_SECONDS = 120.0
_LOCKS: dict[str, Any] = {}
FAULT_ENV = "KEEL_FAULT_AT"


def fault_point(name: str) -> None:
    """SIGKILL this process here when ``KEEL_FAULT_AT`` is ``name`` (crash tests only)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def lock_file(store: Store, name: str) -> Path:
    return store.root / "locks" / f"{name}.lock"


def intent_file(store: Store, name: str) -> Path:
    return store.root / "intents" / f"{name}.json"


@contextmanager
def model_lock(store: Store, name: str, timeout: float = LOCK_SECONDS) -> Iterator[None]:
    """Hold ``name``'s lock (re-entrant within a process) for a sequence of registry moves."""
    from filelock import FileLock, Timeout

    path = lock_file(store, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _LOCKS.setdefault(str(path), FileLock(str(path)))  # one object per file: re-entrant
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise RegistryError(
            f"another keel command has been changing model '{name}' for over {timeout:g} s (lock {path}).",
            hint="Wait for it to finish (`keel history` shows what it did), then run this again.",
        ) from None
    try:
        yield
    finally:
        lock.release()


def write_intent(store: Store, name: str, intent: dict[str, Any]) -> None:
    atomic_write_json(intent_file(store, name), intent)


def clear_intent(store: Store, name: str) -> None:
    intent_file(store, name).unlink(missing_ok=True)


def pending_intent(store: Store, name: str) -> dict[str, Any] | None:
    path = intent_file(store, name)
    if not path.is_file():
        return None
    try:
        intent = read_json(path)
    except ValueError:  # written atomically, so only a hand-edited file gets here
        raise RegistryError(
            f"{path} is corrupt: a registry move of '{name}' was interrupted and cannot be completed.",
            hint="Check `keel history` against the MLflow aliases, then delete the file.",
        ) from None
    return intent if isinstance(intent, dict) else None


def recover(store: Store, name: str, finish: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
    """Roll forward the move a killed command left in ``name``'s intent (``finish`` redoes its
    steps, each idempotent), then clear it; the intent, or None when there was none."""
    intent = pending_intent(store, name)
    if intent is None:
        return None
    finish(intent)
    clear_intent(store, name)
    return intent
