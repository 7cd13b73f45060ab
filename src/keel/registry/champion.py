"""Moving the ``champion`` alias: promote on evidence, roll back in one step, keep the history.

Every decision (a promotion, a refusal, a rollback) is recorded in MLflow's registry as an
event tag on the version it concerns (``keel.event.<ns>``: action, who, when, why, each
check's verdict) and in full, with every check's numbers, as a JSON artifact of that
version's run (``keel/decisions/``). ``keel history`` reads the events back from the tags;
the champion stack is replayed from them (a promotion pushes, a rollback pops), so repeated
rollbacks walk back through earlier champions. After every change the store's serving file,
which the server reads, is rewritten from the registry's aliases.
"""

from __future__ import annotations

import getpass
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import RegistryError
from keel.evaluation.gate import Check
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.registry.moves import clear_intent, fault_point, model_lock, recover, write_intent
from keel.store import Store, write_serving_aliases

CHAMPION = "champion"
CANARY = "canary"
DISABLED = "disabled"  # the kill switch: this version gets no traffic (see sync_serving)
CANARY_SHARE_TAG = "keel.canary_share"  # a model tag: the canary's share while a rollout runs
APPROVAL_TAG = "keel.approval"  # a version tag: pending (retrain.approval: required) | approved
BUNDLE_DIGEST_TAG = "keel.bundle_sha256"
EVENT_PREFIX = "keel.event."
TAG_LIMIT = 4900  # MLflow tag values hold 5,000 characters


@dataclass(frozen=True)
class AliasChange:
    """What a promote or rollback did (or, refused, would have done), with its evidence."""

    model: str
    action: str  # promote | rollback | refused
    version: str
    previous: str | None
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "version": self.version,
            "previous": self.previous,
            "checks": [c.to_dict() for c in self.checks],
            "note": self.note,
        }


class PromotionRefused(RegistryError):
    """The gate said no; ``change`` holds the checks, already recorded with the version."""

    def __init__(self, change: AliasChange, message: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.change = change


def promote(
    registry: MlflowRegistry,
    store: Store,
    version: ModelVersion,
    checks: list[Check],
    *,
    force: bool = False,
    reason: str = "",
    note: str = "",
    refusal_hint: str | None = None,
) -> AliasChange:
    """Make ``version`` the champion if every check passed (or ``force`` with a reason).
    ``refusal_hint``: the fix a refusal suggests (``keel retrain`` has no ``--force``, so it
    names ``keel promote``'s)."""
    current = registry.aliases(version.name).get(CHAMPION)
    if current == version.version:
        raise RegistryError(f"{version.ref} is already the champion.", hint="Nothing to do.")
    failed = [c for c in checks if not c.passed]
    if failed and force and not reason.strip():
        raise RegistryError("--force needs --reason '...': the override is recorded with the promotion.")
    if failed and not force:
        change = AliasChange(version.name, "refused", version.version, current, checks, note)
        _record(registry, change, reason)
        details = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise PromotionRefused(
            change,
            f"refused to promote {version.ref}: {details}. Champion stays {version.name}@{current or 'none'}.",
            hint=refusal_hint or "Promote a better model, or pass --force --reason '...' to override (recorded).",
        )
    if failed:
        note = f"forced past {len(failed)} failed check(s): {reason}"
    change = AliasChange(version.name, "promote", version.version, current, checks, note)
    _apply(registry, store, change, reason)
    return change


def rollback(registry: MlflowRegistry, store: Store, name: str, reason: str = "") -> AliasChange:
    """Move ``champion`` back to the champion before the current one."""
    registry.get(name)  # clear error for an unknown model
    stack = champion_stack(history(registry, name))
    current = registry.aliases(name).get(CHAMPION)
    if current is None or len(stack) < 2:
        raise RegistryError(
            f"model '{name}' has no previous champion to roll back to.", hint="Rollback needs at least two promotions."
        )
    _verified(registry, store, name, stack[-2])
    change = AliasChange(name, "rollback", stack[-2], current)
    _apply(registry, store, change, reason)
    return change


def _verified(registry: MlflowRegistry, store: Store, name: str, version: str) -> None:
    """The bundle a rollback moves to must load and match its recorded digest, as promote's does:
    the server would refuse anything else."""
    from keel.errors import BundleError
    from keel.exporting.bundle import load_bundle

    target = registry.get(name, version)
    digest = target.tags.get(BUNDLE_DIGEST_TAG)
    try:
        if not digest:
            raise BundleError(f"{target.ref} has no exported bundle recorded in the registry.")
        load_bundle(store.bundle_dir(name, version), digest)
    except BundleError as exc:
        raise RegistryError(
            f"cannot roll back to {target.ref}: {exc.message}",
            hint=f"The champion stays. Re-export it (`keel export {target.ref}`), then roll back again.",
        ) from None


TRAFFIC_ALIASES = ("canary", "shadow", DISABLED)


def set_traffic_alias(
    registry: MlflowRegistry, store: Store, version: ModelVersion, alias: str, reason: str = ""
) -> AliasChange:
    """Point ``canary`` or ``shadow`` at ``version`` (the server picks it up); recorded."""
    previous = registry.aliases(version.name).get(alias)
    change = AliasChange(version.name, f"set {alias}", version.version, previous)
    _move(registry, store, change, alias, version.version, reason)
    return change


def remove_traffic_alias(
    registry: MlflowRegistry, store: Store, name: str, alias: str, reason: str = ""
) -> AliasChange:
    """Stop canary or shadow traffic; recorded on the version the alias pointed at."""
    current = registry.aliases(name).get(alias)
    if current is None:
        raise RegistryError(f"model '{name}' has no '{alias}' alias.", hint="`keel history` shows the alias changes.")
    change = AliasChange(name, f"remove {alias}", current, current)
    _move(registry, store, change, alias, None, reason)
    return change


def record_event(
    registry: MlflowRegistry, version: ModelVersion, action: str, note: str, numbers: dict[str, Any]
) -> AliasChange:
    """Record a decision that moves no alias (a golden set refresh) in the version's history."""
    change = AliasChange(version.name, action, version.version, None, [Check(action, True, note, numbers)], note)
    _record(registry, change, "")
    return change


def record_decision(registry: MlflowRegistry, change: AliasChange, reason: str = "") -> None:
    """Record a decision that moves no alias, with its checks (a challenger awaiting approval)."""
    _record(registry, change, reason)


def history(registry: MlflowRegistry, name: str) -> list[dict[str, Any]]:
    """Every recorded decision about ``name``'s versions, oldest first."""
    events = []
    for version in registry.versions(name):
        for key, value in version.tags.items():
            if key.startswith(EVENT_PREFIX):
                try:
                    event = json.loads(value)
                except ValueError:
                    raise RegistryError(
                        f"event tag {key} of {version.ref} is corrupt.",
                        hint="Fix or delete the tag in the MLflow UI; the decision's artifact holds the full record.",
                    ) from None
                events.append((int(key[len(EVENT_PREFIX) :]), event))
    return [event for _, event in sorted(events, key=lambda pair: pair[0])]


def champion_stack(events: list[dict[str, Any]]) -> list[str]:
    """Replay promote/rollback events into the stack of champions (top = current)."""
    stack: list[str] = []
    for event in events:
        if event.get("action") == "promote":
            stack.append(str(event["version"]))
        elif event.get("action") == "rollback" and stack:
            stack.pop()
    return stack


def sync_serving(registry: MlflowRegistry, store: Store, name: str) -> dict[str, str]:
    """Rewrite the store's serving file from the registry: the aliases, each aliased version's
    bundle digest, the canary's traffic share a rollout step set (model tag ``keel.canary_share``)
    and the kill switch (the ``disabled`` alias), with the champion before the current one as the
    fallback while the current one is disabled."""
    aliases = registry.aliases(name)
    disabled = aliases.get(DISABLED)
    # The champion before the current one: what the server answers with while the kill switch
    # (this alias, or its admin call) has the current one disabled.
    earlier = [v for v in champion_stack(history(registry, name))[:-1] if v not in (disabled, aliases.get(CHAMPION))]
    fallback = earlier[-1] if earlier else None
    digests = {}
    for version in set(aliases.values()) | ({fallback} if fallback else set()):
        digest = registry.get(name, version).tags.get(BUNDLE_DIGEST_TAG)
        if digest:
            digests[version] = digest
    share = registry.model_tags(name).get(CANARY_SHARE_TAG)
    write_serving_aliases(
        store,
        name,
        aliases,
        digests,
        canary_share=float(share) if share and CANARY in aliases else None,
        disabled=(disabled,) if disabled else (),
        fallback=fallback,
    )
    return aliases


def _apply(registry: MlflowRegistry, store: Store, change: AliasChange, reason: str) -> None:
    """Move the champion alias and record the event (see ``_move``)."""
    _move(registry, store, change, CHAMPION, change.version, reason)


def _move(
    registry: MlflowRegistry, store: Store, change: AliasChange, alias: str, target: str | None, reason: str
) -> None:
    """Point ``alias`` at ``target`` (None: remove it) and record the decision, crash-consistently
    (``keel.registry.moves``): the intent first, then the alias, the event, the serving file.
    A failure rolls the alias back (the intent says so first, in case that fails too); a kill
    leaves the intent for the next command to roll forward. Callers hold the model's lock."""
    stamp, event = _event(change, reason)
    previous = change.previous  # what the alias pointed at, read by the caller under the lock
    intent = {
        "model": change.model,
        "alias": alias,
        "target": target,
        "previous": previous,
        "stamp": stamp,
        "event": event,
        "change": change.to_dict(),
    }
    write_intent(store, change.model, intent)
    fault_point("intent-written")
    try:
        _point(registry, change.model, alias, target)
        fault_point("alias-set")
        _write_event(registry, change.model, change.version, stamp, event, change.to_dict())
        fault_point("event-recorded")
    except BaseException:
        write_intent(store, change.model, intent | {"rollback": True})
        with suppress(Exception):  # if this fails too, the intent asks the next command to restore it
            _point(registry, change.model, alias, previous)
            clear_intent(store, change.model)
        raise
    sync_serving(registry, store, change.model)
    fault_point("serving-synced")
    clear_intent(store, change.model)


def move_routes(
    registry: MlflowRegistry,
    store: Store,
    change: AliasChange,
    targets: dict[str, str | None],
    share: float | None,
    reason: str = "",
) -> None:
    """A rollout step in one recorded move: point each traffic alias in ``targets`` (None
    removes it), set the canary's traffic share (None: clear it), record one event, rewrite the
    serving file. Intent first, as ``_move``; every step idempotent, so a kill anywhere is
    rolled forward by the next command on the model. Callers hold the model's lock."""
    stamp, event = _event(change, reason)
    intent = {
        "op": "routes",
        "model": change.model,
        "targets": targets,
        "share": share,
        "stamp": stamp,
        "event": event,
        "change": change.to_dict(),
    }
    write_intent(store, change.model, intent)
    fault_point("routes-intent-written")
    _finish_routes(registry, store, intent)
    clear_intent(store, change.model)


def _finish_routes(registry: MlflowRegistry, store: Store, intent: dict[str, Any]) -> None:
    model = intent["model"]
    share = intent.get("share")
    registry.set_model_tags(model, {CANARY_SHARE_TAG: "" if share is None else repr(float(share))})
    for alias, target in intent["targets"].items():
        _point(registry, model, alias, target)
    fault_point("routes-set")
    version = str(intent["change"]["version"])
    if f"{EVENT_PREFIX}{intent['stamp']}" not in registry.get(model, version).tags:
        _write_event(registry, model, version, int(intent["stamp"]), intent["event"], intent["change"])
    fault_point("routes-recorded")
    sync_serving(registry, store, model)


def publish_export(
    registry: MlflowRegistry, store: Store, version: ModelVersion, staged: Path, final: Path, tags: dict[str, str]
) -> None:
    """Make an exported bundle current: its digest into the registry first, then the staged
    directory published, then the serving file (when the model has aliases). A kill in between
    is rolled forward by the next command on the model (``finish_move``). Callers hold the lock."""
    intent = {
        "op": "export",
        "model": version.name,
        "version": version.version,
        "staged": str(staged),
        "final": str(final),
        "tags": tags,
    }
    write_intent(store, version.name, intent)
    fault_point("export-intent-written")
    _finish_export(registry, store, intent)
    clear_intent(store, version.name)


def _finish_export(registry: MlflowRegistry, store: Store, intent: dict[str, Any]) -> None:
    from keel.store import publish_dir

    model, version = intent["model"], str(intent["version"])
    registry.set_version_tags(model, version, intent["tags"])
    fault_point("export-tags-set")
    staged = Path(intent["staged"])
    if staged.is_dir():
        publish_dir(staged, Path(intent["final"]))
    fault_point("export-published")
    if registry.aliases(model):
        sync_serving(registry, store, model)


def finish_move(registry: MlflowRegistry, store: Store, intent: dict[str, Any]) -> None:
    """Complete (or, when it failed loudly, undo) the move an interrupted command recorded."""
    if intent.get("op") == "export":
        _finish_export(registry, store, intent)
        return
    if intent.get("op") == "routes":
        _finish_routes(registry, store, intent)
        return
    model, alias = intent["model"], intent["alias"]
    if intent.get("rollback"):
        _point(registry, model, alias, intent.get("previous"))
    else:
        _point(registry, model, alias, intent.get("target"))
        version = str(intent["change"]["version"])
        key = f"{EVENT_PREFIX}{intent['stamp']}"
        if key not in registry.get(model, version).tags:
            _write_event(registry, model, version, int(intent["stamp"]), intent["event"], intent["change"])
    sync_serving(registry, store, model)


@contextmanager
def changing(registry: MlflowRegistry, store: Store, name: str) -> Iterator[None]:
    """Hold ``name``'s lock, first completing any move a killed command left behind."""
    with model_lock(store, name):
        recover(store, name, lambda intent: finish_move(registry, store, intent))
        yield


def _point(registry: MlflowRegistry, model: str, alias: str, version: str | None) -> None:
    if version is not None:
        registry.set_alias(model, alias, version)
    elif alias in registry.aliases(model):
        registry.delete_alias(model, alias)


def _record(registry: MlflowRegistry, change: AliasChange, reason: str) -> None:
    """A decision that moves no alias (a refusal, a golden refresh), in full."""
    stamp, event = _event(change, reason)
    _write_event(registry, change.model, change.version, stamp, event, change.to_dict())


def _event(change: AliasChange, reason: str) -> tuple[int, dict[str, Any]]:
    stamp = time.time_ns()
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp / 1e9))
    event = {
        "action": change.action,
        "version": change.version,
        "previous": change.previous,
        "at": at,
        "by": _user(),
        "reason": reason[:500],
        "note": change.note[:500],
        "checks": [[c.name, c.passed] for c in change.checks],
        "decision": f"keel/decisions/{change.action.replace(' ', '-')}-{stamp}.json",
    }
    return stamp, event


def _write_event(
    registry: MlflowRegistry, model: str, version: str, stamp: int, event: dict[str, Any], change: dict[str, Any]
) -> None:
    """The decision in full as an artifact of the version's run, then its event tag (the same
    key when done again: idempotent)."""
    found = registry.get(model, version)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(event["decision"]).name
        path.write_text(json.dumps(event | change, indent=2, default=str))
        registry.log_artifacts(found.run_id, Path(tmp), "keel/decisions")
    event = dict(event)
    text = json.dumps(event, default=str)
    if len(text) > TAG_LIMIT:  # the artifact keeps everything; the tag keeps what fits
        event["reason"], event["note"] = event["reason"][:100], event["note"][:100]
        text = json.dumps(event, default=str)
    registry.set_version_tags(model, version, {f"{EVENT_PREFIX}{stamp}": text})


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
