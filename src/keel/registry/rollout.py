"""A rollout's plan and its state in the store.

A plan is a list of steps, written ``shadow:10m,canary:5%:10m,canary:25%:10m,full``:

- ``shadow:DURATION``: the challenger scores every request beside the champion, answers none;
- ``canary:SHARE%:DURATION``: it answers that share of the requests;
- ``full``: it becomes the champion (a promotion, recorded with the rollout's evidence).

The state (``rollouts/<model>.json`` in the store, written atomically under the model's lock)
holds the plan, the current step, when it began, the traffic counted in its window, the last
checks and every step change: whatever process drives the rollout (``keel rollout run``) can
be killed and started again, and carries on with the step where it was. One rollout per model:
``start`` refuses while another is running or paused.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from keel.errors import ConfigError, RegistryError
from keel.store import Store, atomic_write_json, read_json

SHADOW, CANARY, FULL = "shadow", "canary", "full"
RUNNING, PAUSED, COMPLETE, ROLLED_BACK, ABORTED = "running", "paused", "complete", "rolled back", "aborted"
ACTIVE = (RUNNING, PAUSED)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")


@dataclass(frozen=True)
class Step:
    kind: str  # shadow | canary | full
    share: float = 0.0  # of requests the canary answers
    seconds: float = 0.0  # at least this long (and until the step has seen enough traffic)

    def describe(self) -> str:
        if self.kind == FULL:
            return "full"
        span = _span(self.seconds)
        return f"shadow {span}" if self.kind == SHADOW else f"canary {self.share:.0%} {span}"

    def token(self) -> str:
        if self.kind == FULL:
            return FULL
        span = f"{self.seconds:g}s"
        return f"shadow:{span}" if self.kind == SHADOW else f"canary:{self.share * 100:g}%:{span}"


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def parse_plan(text: str) -> list[Step]:
    """Steps from ``shadow:10m,canary:5%:10m,full``; a clear error for anything else."""
    hint = "Write steps like shadow:10m,canary:5%:10m,canary:25%:10m,full (durations in s, m or h)."
    steps = []
    for raw in (part.strip().lower() for part in text.split(",")):
        fields = raw.split(":")
        try:
            if fields == [FULL]:
                steps.append(Step(FULL))
            elif fields[0] == SHADOW and len(fields) == 2:
                steps.append(Step(SHADOW, 0.0, _seconds(fields[1])))
            elif fields[0] == CANARY and len(fields) == 3 and fields[1].endswith("%"):
                share = float(fields[1][:-1]) / 100
                if not 0 < share < 1 or not math.isfinite(share):
                    raise ValueError
                steps.append(Step(CANARY, share, _seconds(fields[2])))
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"rollout plan step '{raw}' is not one keel knows.", hint=hint) from None
    if not steps or steps[-1].kind != FULL or any(s.kind == FULL for s in steps[:-1]):
        raise ConfigError(f"rollout plan '{text}' must end with one 'full' step.", hint=hint)
    if len(steps) < 2:
        raise ConfigError(f"rollout plan '{text}' has no shadow or canary step before full.", hint=hint)
    return steps


def _seconds(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(text)
    return seconds


def plan_of(state: dict[str, Any]) -> list[Step]:
    return [Step(**step) for step in state["plan"]]


def plan_payload(steps: list[Step]) -> list[dict[str, Any]]:
    return [asdict(step) for step in steps]


def read_state(store: Store, model: str) -> dict[str, Any] | None:
    """The model's last rollout (None: never one), checked enough to act on."""
    file = store.rollout_file(model)
    if not file.is_file():
        return None
    try:
        state = read_json(file)
        plan_of(state)
        int(state["step"]), str(state["status"]), str(state["version"])
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"{file} is corrupt: the rollout of '{model}' cannot be read.",
            hint="`keel history` shows its steps. Delete the file, then `keel alias remove canary` (and shadow) "
            "to stop the challenger's traffic; a new `keel rollout start` begins afresh.",
        ) from None
    return state


def write_state(store: Store, model: str, state: dict[str, Any]) -> None:
    atomic_write_json(store.rollout_file(model), state | {"updated": time.time()})


def active(store: Store, model: str) -> dict[str, Any] | None:
    state = read_state(store, model)
    return state if state is not None and state["status"] in ACTIVE else None


def step_elapsed(state: dict[str, Any], now: float | None = None) -> float:
    """Seconds the current step has run, not counting time paused."""
    now = time.time() if now is None else now
    paused = state.get("paused_seconds", 0.0)
    if state["status"] == PAUSED and state.get("paused_at"):
        paused += now - state["paused_at"]
    return max(0.0, now - state["step_started"] - paused)
