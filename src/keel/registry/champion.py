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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import RegistryError
from keel.evaluation.gate import Check
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.store import Store, write_serving_aliases

CHAMPION = "champion"
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
    change = AliasChange(name, "rollback", stack[-2], current)
    _apply(registry, store, change, reason)
    return change


TRAFFIC_ALIASES = ("canary", "shadow")


def set_traffic_alias(
    registry: MlflowRegistry, store: Store, version: ModelVersion, alias: str, reason: str = ""
) -> AliasChange:
    """Point ``canary`` or ``shadow`` at ``version`` (the server picks it up); recorded."""
    previous = registry.aliases(version.name).get(alias)
    change = AliasChange(version.name, f"set {alias}", version.version, previous)
    registry.set_alias(version.name, alias, version.version)
    _record(registry, change, reason)
    sync_serving(registry, store, version.name)
    return change


def remove_traffic_alias(
    registry: MlflowRegistry, store: Store, name: str, alias: str, reason: str = ""
) -> AliasChange:
    """Stop canary or shadow traffic; recorded on the version the alias pointed at."""
    current = registry.aliases(name).get(alias)
    if current is None:
        raise RegistryError(f"model '{name}' has no '{alias}' alias.", hint="`keel history` shows the alias changes.")
    change = AliasChange(name, f"remove {alias}", current, current)
    registry.delete_alias(name, alias)
    _record(registry, change, reason)
    sync_serving(registry, store, name)
    return change


def record_event(
    registry: MlflowRegistry, version: ModelVersion, action: str, note: str, numbers: dict[str, Any]
) -> AliasChange:
    """Record a decision that moves no alias (a golden set refresh) in the version's history."""
    change = AliasChange(version.name, action, version.version, None, [Check(action, True, note, numbers)], note)
    _record(registry, change, "")
    return change


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
    """Rewrite the store's serving file from the registry's aliases."""
    aliases = registry.aliases(name)
    digests = {}
    for version in set(aliases.values()):
        digest = registry.get(name, version).tags.get(BUNDLE_DIGEST_TAG)
        if digest:
            digests[version] = digest
    write_serving_aliases(store, name, aliases, digests)
    return aliases


def _apply(registry: MlflowRegistry, store: Store, change: AliasChange, reason: str) -> None:
    """Move the alias and record the event; if recording fails, the alias moves back."""
    registry.set_alias(change.model, CHAMPION, change.version)
    try:
        _record(registry, change, reason)
    except BaseException:
        if change.previous is not None:
            registry.set_alias(change.model, CHAMPION, change.previous)
        raise
    sync_serving(registry, store, change.model)


def _record(registry: MlflowRegistry, change: AliasChange, reason: str) -> None:
    """The decision in full as an artifact of the version's run, then its event tag."""
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
    version = registry.get(change.model, change.version)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{change.action.replace(' ', '-')}-{stamp}.json"
        path.write_text(json.dumps(event | change.to_dict(), indent=2, default=str))
        registry.log_artifacts(version.run_id, Path(tmp), "keel/decisions")
    text = json.dumps(event, default=str)
    if len(text) > TAG_LIMIT:  # the artifact keeps everything; the tag keeps what fits
        event["reason"], event["note"] = event["reason"][:100], event["note"][:100]
        text = json.dumps(event, default=str)
    registry.set_version_tags(change.model, change.version, {f"{EVENT_PREFIX}{stamp}": text})


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
