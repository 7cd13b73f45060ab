"""``keel rollout``: shadow, canary and ramp that advance by themselves and roll back by themselves.

``start`` checks the offline gate (the same checks as ``keel promote``) and records the rollout
(keel.registry.rollout); ``drive`` is the controller: every ``rollout.interval_seconds`` it
reads the server's counters (``/metrics``, summed over workers or replicas) and the prediction
log since the step began, runs the step's checks (keel.monitoring.online) and then

- rolls back at once when a check fails: the ``canary`` and ``shadow`` aliases are removed, the
  servers stop sending the challenger traffic within ``serving.reload_poll_seconds``, and the
  evidence is recorded as a ``rollout rollback`` event in ``keel history``;
- otherwise, once the step has run its duration (not counting pauses) and both routes have
  answered ``rollout.min_requests``, moves to the next step;
- at ``full``, promotes the challenger (its promotion event records the gate's checks and the
  rollout's evidence) and removes the traffic aliases.

Every step change is one registry move (``keel.registry.champion.move_routes``: intent first,
under the model's lock), an MLflow version tag and a line in ``keel history``, and a webhook
POST when one is configured. The state is in the store, written atomically after each look:
kill the controller and start it again (``keel rollout run``) and it carries on with the step.
The servers need no restart: they follow the serving file as for any alias change.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from keel.api.models import _exported_bundle, gate_checks, resolve
from keel.api.monitor import join_labels, read_labels, target_of
from keel.config import Project
from keel.errors import KeelError, MonitorError, RegistryError
from keel.evaluation.gate import Check
from keel.monitoring import online
from keel.monitoring.performance import LOG_TRUTH, outcomes
from keel.profile import load_profile
from keel.registry.champion import APPROVAL_TAG, CHAMPION, AliasChange, changing, move_routes, record_event
from keel.registry.champion import promote as promote_version
from keel.registry.mlflow_registry import MlflowRegistry
from keel.registry.rollout import (
    ABORTED,
    ACTIVE,
    CANARY,
    COMPLETE,
    FULL,
    PAUSED,
    ROLLED_BACK,
    RUNNING,
    SHADOW,
    Step,
    active,
    parse_plan,
    plan_of,
    plan_payload,
    read_state,
    step_elapsed,
    write_state,
)
from keel.schema import LOG_LABEL, LOG_REQUEST, LOG_ROUTE, LOG_SCORE, LOG_TIME
from keel.store import Store

logger = logging.getLogger("keel.rollout")
Changed = Callable[[dict[str, Any], str], None]  # (state, what happened)
TRAFFIC = {CANARY: None, SHADOW: None}  # a rollback or abort removes both


def _context(project: Project, name: str | None) -> tuple[MlflowRegistry, Store, str]:
    registry = MlflowRegistry(project.tracking_uri)
    model = name or project.name
    return registry, Store(project.store_path).ensure(), model


def start(
    project: Project,
    ref: str | None,
    plan: str | None = None,
    *,
    server: str | None = None,
    labels: Path | str | None = None,
    webhook: str | None = None,
    force: bool = False,
    reason: str = "",
    aa: bool = False,
) -> dict[str, Any]:
    """Record a rollout of an exported version that passed the offline gate (or ``force`` with a
    reason). ``aa``: roll the champion out against itself, to measure the checks' false-rollback
    rate. Nothing moves until ``drive`` applies the first step."""
    settings = project.config.rollout
    steps = parse_plan(plan or settings.plan)
    registry, version = resolve(project, ref)
    store = Store(project.store_path).ensure()
    if labels is not None:
        read_labels(project, labels)  # a clear error now, not at the first look
    challenger = _exported_bundle(store, version)
    with changing(registry, store, version.name):
        running = active(store, version.name)
        if running is not None:
            raise RegistryError(
                f"{version.name}@{running['version']} is already rolling out ({running['status']}, "
                f"step {running['step'] + 1} of {len(running['plan'])}).",
                hint="One rollout per model: wait for it, or `keel rollout abort` it first.",
            )
        champion = registry.aliases(version.name).get(CHAMPION)
        if champion is None:
            raise RegistryError(
                f"model '{version.name}' has no champion to roll out against.",
                hint="Promote the first version with `keel promote`: a rollout compares a challenger with it.",
            )
        if champion == version.version and not aa:
            raise RegistryError(f"{version.ref} is already the champion.", hint="Nothing to roll out.")
        gate: list[Check] = []
        if not aa:
            try:
                gate, _note = gate_checks(project, registry, store, version, challenger, champion)
            except KeelError as exc:  # the gate cannot compare them (other inputs): only a forced start goes on
                if not (force and reason.strip()):
                    raise
                gate = [Check("offline gate", False, f"could not run: {exc.message}")]
            failed = [c for c in gate if not c.passed]
            if failed and not (force and reason.strip()):
                details = "; ".join(f"{c.name}: {c.detail}" for c in failed)
                hint = "Roll out a version that passes `keel promote`'s gate, or pass --force --reason '...'."
                raise RegistryError(f"{version.ref} did not pass the offline gate: {details}.", hint=hint)
        state = {
            "model": version.name,
            "version": version.version,
            "champion": champion,
            "aa": aa,
            "plan": plan_payload(steps),
            "step": 0,
            "applied": -1,
            "status": RUNNING,
            "started_at": time.time(),
            "step_started": time.time(),
            "paused_seconds": 0.0,
            "server": server or settings.server or _default_server(project),
            "labels": str(Path(labels).resolve()) if labels is not None else None,
            "webhook": webhook or settings.webhook,
            "forced": bool(force and reason.strip()),
            "reason": reason,
            "gate": [c.to_dict() for c in gate],
            "tests": _planned_tests(steps, settings.interval_seconds, labels is not None),
            "checks": [],
            "window": {},
            "last": None,
            "looks": 0,
            "events": [],
        }
        write_state(store, version.name, state)
    return state


def approve(
    project: Project,
    ref: str,
    reason: str,
    plan: str | None = None,
    *,
    server: str | None = None,
    labels: Path | str | None = None,
    webhook: str | None = None,
) -> dict[str, Any]:
    """A person's yes to a challenger that ``keel retrain`` held (``retrain.approval: required``):
    recorded with who and why, then its rollout starts (through the gate again: the golden set
    may have moved since)."""
    if not reason.strip():
        raise RegistryError("keel approve needs --reason '...': the approval is recorded with the rollout.")
    registry, version = resolve(project, ref)
    if version.tags.get(APPROVAL_TAG) != "pending":
        raise RegistryError(
            f"{version.ref} is not awaiting approval (approval: {version.tags.get(APPROVAL_TAG) or 'none'}).",
            hint="`keel retrain` with retrain.approval: required holds a challenger that passed the gate; "
            "`keel rollout start` rolls out any exported version.",
        )
    state = start(project, version.ref, plan, server=server, labels=labels, webhook=webhook, reason=reason)
    store = Store(project.store_path)
    with changing(registry, store, version.name):
        registry.set_version_tags(version.name, version.version, {APPROVAL_TAG: "approved"})
        record_event(registry, version, "approve", reason, {"plan": [Step(**s).token() for s in state["plan"]]})
    return state


def _default_server(project: Project) -> str:
    serving = project.config.serving
    host = "127.0.0.1" if serving.host in ("0.0.0.0", "::", "") else serving.host
    return f"http://{host}:{serving.port}"


def _planned_tests(steps: list[Step], interval: float, labels: bool) -> int:
    """Every check of every look the plan makes: the Bonferroni denominator."""
    total = 0
    for step in steps:
        if step.kind == FULL:
            continue
        checks = (4 if step.kind == SHADOW else 3) + (1 if labels else 0)
        total += checks * max(1, math.ceil(step.seconds / interval))
    return total


def alpha_of(project: Project, state: dict[str, Any]) -> float:
    return online.looks_alpha(project.config.rollout.false_rollback_rate, int(state["tests"]))


def status(project: Project, name: str | None = None) -> dict[str, Any]:
    _registry, store, model = _context(project, name)
    state = read_state(store, model)
    if state is None:
        raise RegistryError(f"model '{model}' has never been rolled out.", hint="Start one with `keel rollout start`.")
    return state


def pause(project: Project, name: str | None = None, reason: str = "") -> dict[str, Any]:
    """Hold the current step: its traffic stays, it does not advance (its checks still roll back)."""
    return _set_status(project, name, PAUSED, reason)


def resume(project: Project, name: str | None = None, reason: str = "") -> dict[str, Any]:
    return _set_status(project, name, RUNNING, reason)


def _set_status(project: Project, name: str | None, wanted: str, reason: str) -> dict[str, Any]:
    registry, store, model = _context(project, name)
    with changing(registry, store, model):
        state = _running(store, model)
        if state["status"] == wanted:
            raise RegistryError(
                f"the rollout of {model}@{state['version']} is already {wanted}.", hint="Nothing to do."
            )
        now = time.time()
        if wanted == PAUSED:
            state["paused_at"] = now
        else:
            state["paused_seconds"] = state.get("paused_seconds", 0.0) + now - (state.get("paused_at") or now)
            state["paused_at"] = None
        state["status"] = wanted
        action = "rollout pause" if wanted == PAUSED else "rollout resume"
        record_event(registry, registry.get(model, state["version"]), action, reason or action, _summary(state))
        _note(state, action, reason)
        write_state(store, model, state)
    _notify(state, action)
    return state


def _running(store: Store, model: str) -> dict[str, Any]:
    state = active(store, model)
    if state is None:
        raise RegistryError(f"model '{model}' has no rollout running.", hint="`keel rollout status` shows the last.")
    return state


def abort(project: Project, name: str | None = None, reason: str = "") -> dict[str, Any]:
    """Stop the rollout: the challenger's traffic is removed; the champion stays."""
    registry, store, model = _context(project, name)
    with changing(registry, store, model):
        state = _running(store, model)
        _end(registry, store, state, ABORTED, "rollout abort", reason or "aborted by hand", state.get("checks", []))
    _notify(state, "rollout abort")
    return state


def drive(
    project: Project,
    name: str | None = None,
    *,
    on_change: Changed | None = None,
    interval: float | None = None,
) -> dict[str, Any]:
    """Run the model's rollout to its end (complete, rolled back or aborted): the controller.
    One per model at a time; started again after a kill, it carries on with the step."""
    registry, store, model = _context(project, name)
    every = interval or project.config.rollout.interval_seconds
    with _controller(store, model):
        while True:
            state = status(project, model)
            if state["status"] not in ACTIVE:
                return state
            began = time.monotonic()
            state, happened = look(project, registry, store, state)
            if happened and on_change is not None:
                on_change(state, happened)
            if state["status"] not in ACTIVE:
                return state
            time.sleep(max(0.0, every - (time.monotonic() - began)))


@contextmanager
def _controller(store: Store, model: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = store.root / "locks" / f"{model}.rollout.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RegistryError(
            f"another `keel rollout` controller is driving model '{model}' (lock {path}).",
            hint="One controller per rollout: `keel rollout status` shows its progress.",
        ) from None
    try:
        yield
    finally:
        lock.release()


def look(project: Project, registry: MlflowRegistry, store: Store, state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """One look at the rollout: apply the step if it is not in place yet; else count the
    window, run the checks, and roll back, advance or wait. Returns the state and what
    happened ('' when nothing changed)."""
    model = state["model"]
    steps = plan_of(state)
    if registry.aliases(model).get(CHAMPION) != state["champion"]:
        with changing(registry, store, model):
            current = active(store, model)
            if current is None:
                return status(project, model), ""
            why = f"the champion moved to @{registry.aliases(model).get(CHAMPION)} during the rollout"
            _end(registry, store, current, ABORTED, "rollout abort", why, current.get("checks", []))
        _notify(current, "rollout abort")
        return current, "rollout abort"
    if state["applied"] != state["step"]:
        return _apply(project, registry, store, state, steps)
    step = steps[state["step"]]
    checks, window, last, reachable = _evidence(project, state, step)
    with changing(registry, store, model):
        current = active(store, model)
        if current is None or current["step"] != state["step"] or current["applied"] != state["applied"]:
            return (current or status(project, model)), ""  # paused, resumed, aborted meanwhile: look again
        current.update(window=window, last=last, checks=[c.to_dict() for c in checks], looks=current["looks"] + 1)
        current["server_error"] = reachable
        failed = [c for c in checks if not c.passed]
        if failed:
            details = "; ".join(f"{c.name}: {c.detail}" for c in failed)
            _end(registry, store, current, ROLLED_BACK, "rollout rollback", details, current["checks"])
            happened = "rollout rollback"
        elif (
            current["status"] == RUNNING
            and not reachable
            and step_elapsed(current) >= step.seconds
            and all(c.numbers.get("enough", True) for c in checks if c.name in ("errors", "agreement"))
        ):
            current["step"] += 1
            write_state(store, model, current)
            happened = ""
        else:
            write_state(store, model, current)
            return current, ""
    if happened:
        _notify(current, happened)
        return current, happened
    return _apply(project, registry, store, current, steps)


def _apply(
    project: Project, registry: MlflowRegistry, store: Store, state: dict[str, Any], steps: list[Step]
) -> tuple[dict[str, Any], str]:
    """Put the current step's routes in place (one recorded move), or finish at ``full``."""
    model = state["model"]
    with changing(registry, store, model):
        current = active(store, model)
        if current is None or current["step"] != state["step"]:
            return (current or status(project, model)), ""
        index = current["step"]
        step = steps[index]
        if step.kind == FULL:
            _finish(registry, store, current, steps)
            happened = "rollout full"
        else:
            targets = {SHADOW: current["version"], CANARY: None}
            if step.kind == CANARY:
                targets = {SHADOW: None, CANARY: current["version"]}
            action = f"rollout step {index + 1}/{len(steps)}: {step.describe()}"
            change = AliasChange(
                model,
                "rollout start" if index == 0 else "rollout step",
                current["version"],
                current["champion"],
                _gate(current) if index == 0 else [],
                action,
            )
            move_routes(
                registry, store, change, targets, step.share if step.kind == CANARY else None, current["reason"]
            )
            try:
                last = online.scrape(current["server"])
            except OSError:
                last = None  # the first count the server answers becomes the step's start
            current.update(applied=index, step_started=time.time(), paused_seconds=0.0, window={}, last=last, checks=[])
            if current["status"] == PAUSED:
                current["paused_at"] = time.time()
            _note(current, action, "")
            write_state(store, model, current)
            happened = action
    _notify(current, happened)
    return current, happened


def _finish(registry: MlflowRegistry, store: Store, state: dict[str, Any], steps: list[Step]) -> None:
    """The ``full`` step: promote the challenger with the gate's checks and the rollout's
    evidence, then stop the traffic aliases. Callers hold the lock."""
    model, version = state["model"], state["version"]
    evidence = Check(
        "rollout",
        True,
        f"passed {', '.join(s.describe() for s in steps[:-1])} ({state['looks']} looks)",
        {"looks": state["looks"], "last_checks": state.get("checks", [])},
    )
    if version != state["champion"]:
        promote_version(
            registry,
            store,
            registry.get(model, version),
            [*_gate(state), evidence],
            force=state["forced"],
            reason=state["reason"] or "rollout",
            note=f"rolled out: {', '.join(s.describe() for s in steps)}",
        )
    _end(registry, store, state, COMPLETE, "rollout full", evidence.detail, [evidence.to_dict()])


def _end(
    registry: MlflowRegistry,
    store: Store,
    state: dict[str, Any],
    outcome: str,
    action: str,
    why: str,
    checks: list[dict[str, Any]],
) -> None:
    """Remove the challenger's traffic, record why, and close the rollout. Callers hold the lock."""
    model = state["model"]
    kept = [Check(c["name"], c["passed"], c["detail"], c.get("numbers", {})) for c in checks]
    change = AliasChange(model, action, state["version"], state["champion"], kept, why)
    move_routes(registry, store, change, dict(TRAFFIC), None, state.get("reason", ""))
    state["status"] = outcome
    state["ended_at"] = time.time()
    _note(state, action, why)
    write_state(store, model, state)


def _gate(state: dict[str, Any]) -> list[Check]:
    return [Check(c["name"], c["passed"], c["detail"], c.get("numbers", {})) for c in state.get("gate", [])]


def _note(state: dict[str, Any], action: str, why: str) -> None:
    state.setdefault("events", []).append(
        {"at": time.time(), "step": state["step"], "action": action, "why": why[:500]}
    )


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    return {"step": state["step"], "plan": [Step(**s).token() for s in state["plan"]], "looks": state.get("looks", 0)}


def _notify(state: dict[str, Any], happened: str) -> None:
    """POST the change to the rollout's webhook (a failure is logged, never fatal)."""
    url = state.get("webhook")
    if not url or not happened:
        return
    body = {
        "model": state["model"],
        "version": state["version"],
        "champion": state["champion"],
        "event": happened,
        "status": state["status"],
        "step": state["step"],
        "plan": [Step(**s).token() for s in state["plan"]],
        "checks": state.get("checks", []),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    request = urllib.request.Request(
        url, json.dumps(body, default=str).encode(), {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except OSError as exc:
        logger.error("rollout webhook %s failed: %s", url, exc)


def _evidence(
    project: Project, state: dict[str, Any], step: Step
) -> tuple[list[Check], dict[str, Any], dict[str, Any] | None, str]:
    """The step's checks on its window, the window's counters, the last scrape, and why the
    server could not be read ('' when it could)."""
    settings = project.config.rollout
    alpha = alpha_of(project, state)
    route = SHADOW if step.kind == SHADOW else CANARY
    window, last = state.get("window") or {}, state.get("last")
    try:
        now = online.scrape(state["server"])
        window = online.advance(window, last or now, now) if last is not None else window
        last, unreachable = now, ""
    except OSError as exc:
        unreachable = f"{state['server']}/metrics: {exc}"
        logger.warning("cannot read the server's counters (%s); the step waits", unreachable)
    minimum = settings.min_requests
    checks = [
        online.errors_check(window, route, alpha, minimum),
        online.latency_check(window, route, project.config.serving.latency_budget_ms / 1000, alpha, minimum),
    ]
    checks += _log_checks(project, state, step, route, alpha)
    return checks, window, last, unreachable


def _log_checks(project: Project, state: dict[str, Any], step: Step, route: str, alpha: float) -> list[Check]:
    """The checks read from the prediction log since the step began."""
    from keel.api.serving import load_alias

    store = Store(project.store_path)
    settings = project.config.rollout
    table = _window_log(store, state["model"], state["step_started"])
    champion_bundle = load_alias(store, state["model"], CHAMPION)
    challenger_bundle = _exported_bundle(store, _version(project, state))
    champion_rows = _route_rows(table, CHAMPION)
    challenger_rows = _route_rows(table, route)
    minimum = settings.min_requests
    task = challenger_bundle.metadata["task"]
    profile_mine = load_profile(challenger_bundle.profile).get(LOG_SCORE)
    profile_theirs = load_profile(champion_bundle.profile).get(LOG_SCORE)
    checks = []
    if step.kind == SHADOW:
        mine, theirs = _paired(champion_rows, challenger_rows)
        spread = profile_theirs.std if profile_theirs is not None and profile_theirs.std else 1.0
        checks.append(
            online.agreement_check(
                task, theirs, mine, spread, alpha, minimum, settings.max_disagreement, settings.max_score_delta
            )
        )
    checks.append(
        online.score_drift_check(
            profile_mine,
            _scores(challenger_rows),
            profile_theirs,
            _scores(champion_rows),
            alpha,
            minimum,
            settings.max_score_shift,
        )
    )
    if state.get("labels"):
        checks.append(_metric_check(project, state, champion_bundle, champion_rows, challenger_rows, alpha))
    return checks


def _version(project: Project, state: dict[str, Any]) -> Any:
    return MlflowRegistry(project.tracking_uri).get(state["model"], state["version"])


def _window_log(store: Store, model: str, since: float) -> Any:
    """The prediction log's rows (shadow included) logged since ``since`` (epoch seconds)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    directory = store.predictions_dir(model)
    files = (
        [f for f in sorted(directory.glob("*.parquet")) if f.stat().st_mtime >= since - 1] if directory.is_dir() else []
    )
    tables = []
    for file in files:
        try:
            tables.append(pq.read_table(file))
        except (OSError, pa.ArrowInvalid) as exc:
            logger.warning("skipping unreadable log segment %s: %s", file, exc)
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    cutoff = pa.scalar(int(since * 1_000_000), pa.timestamp("us"))
    return table.filter(pc.greater_equal(table[LOG_TIME], cutoff))


def _route_rows(table: Any, route: str) -> Any:
    import pyarrow.compute as pc

    if table is None or LOG_ROUTE not in table.column_names:
        return None
    return table.filter(pc.fill_null(pc.equal(table[LOG_ROUTE], route), False))


def _scores(table: Any) -> Any:
    import pyarrow as pa

    return pa.chunked_array([], pa.float64()) if table is None else table[LOG_SCORE]


def _paired(champion: Any, shadow: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both models' outputs on the same rows: the shadow's rows matched to the answered ones by
    request id and position within the request."""
    empty = {"score": np.array([]), "label": np.array([])}
    if champion is None or shadow is None or champion.num_rows == 0 or shadow.num_rows == 0:
        return empty, empty

    def keyed(table: Any) -> Any:
        frame = table.select([c for c in (LOG_REQUEST, LOG_SCORE, LOG_LABEL) if c in table.column_names]).to_pandas()
        frame["position"] = frame.groupby(LOG_REQUEST).cumcount()
        return frame

    joined = keyed(shadow).merge(keyed(champion), on=[LOG_REQUEST, "position"], suffixes=("_mine", "_theirs"))
    label = LOG_LABEL if f"{LOG_LABEL}_mine" in joined.columns else None

    def side(suffix: str) -> dict[str, np.ndarray]:
        labels = joined[f"{label}{suffix}"].astype(str).to_numpy() if label else np.array([])
        return {"score": joined[f"{LOG_SCORE}{suffix}"].to_numpy(np.float64), "label": labels}

    return side("_mine"), side("_theirs")


def _metric_check(
    project: Project, state: dict[str, Any], bundle: Any, champion: Any, challenger: Any, alpha: float
) -> Check:
    """The plan's metric on each route's labelled rows of the window (labels joined by id)."""
    from keel.monitoring.performance import MIN_LABELLED

    target = target_of(project, bundle, alpha)
    metric = target.measurable

    def labelled(table: Any) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.array([]), np.array([]))
        if table is None or table.num_rows == 0:
            return empty
        try:
            joined = join_labels(table, truth, project.config.serving.id_column or "")
        except MonitorError:  # no label has arrived for these rows yet
            return empty
        known = ~np.asarray(joined[LOG_TRUTH].is_null().to_numpy(zero_copy_only=False), dtype=bool)
        score = joined[LOG_SCORE].to_numpy().astype(np.float64)
        return outcomes(target, joined, joined[LOG_TRUTH], known, score)

    try:
        truth = read_labels(project, state["labels"])
    except KeelError as exc:
        return Check("metric", True, f"labels unreadable, not checked: {exc.message}", {"enough": False})
    return online.metric_check(
        metric,
        target.greater,
        labelled(champion),
        labelled(challenger),
        alpha,
        MIN_LABELLED,
        project.config.guard.resamples,
        project.config.seed,
    )
