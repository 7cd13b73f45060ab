"""Moving the ``champion`` alias: promote on evidence, roll back in one step.

MLflow holds the alias and an event history (a registered-model tag); every
change is then written to the store's serving file, which the server reads.
The champion stack is replayed from the history: a promotion pushes, a
rollback pops, so repeated rollbacks walk back through earlier champions.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from keel.errors import RegistryError
from keel.evaluation.metrics import is_better
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.store import Store, write_serving_aliases

CHAMPION = "champion"
BUNDLE_DIGEST_TAG = "keel.bundle_sha256"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class AliasChange:
    """What a promote or rollback did, with the evidence it looked at."""

    model: str
    action: str
    version: str
    previous: str | None
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(
    registry: MlflowRegistry, store: Store, version: ModelVersion, *, force: bool = False, reason: str = ""
) -> AliasChange:
    """Make ``version`` the champion if the evidence allows it (or ``force``)."""
    current = registry.aliases(version.name).get(CHAMPION)
    if current == version.version:
        raise RegistryError(f"{version.ref} is already the champion.", hint="Nothing to do.")
    if current is None:
        checks: list[Check] = []
        note = "first champion: there is no earlier model to compare against, so no gate was applied."
    else:
        checks = [compare_holdout(version, registry.get(version.name, current))]
        note = ""
    failed = [c for c in checks if not c.passed]
    if failed and not force:
        details = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise RegistryError(
            f"refused to promote {version.ref}: {details}. Champion stays {version.name}@{current}.",
            hint="Promote a better model, or pass --force --reason '...' to override (recorded).",
        )
    if failed and not reason.strip():
        raise RegistryError("--force needs --reason '...': the override is recorded with the promotion.")
    change = AliasChange(
        version.name, "promote", version.version, current, checks, note or ("forced: " + reason if failed else "")
    )
    _apply(registry, store, change, reason)
    return change


def rollback(registry: MlflowRegistry, store: Store, name: str, reason: str = "") -> AliasChange:
    """Move ``champion`` back to the champion before the current one."""
    registry.get(name)  # clear error for an unknown model
    stack = champion_stack(registry.champion_history(name))
    current = registry.aliases(name).get(CHAMPION)
    if current is None or len(stack) < 2:
        raise RegistryError(
            f"model '{name}' has no previous champion to roll back to.", hint="Rollback needs at least two promotions."
        )
    change = AliasChange(name, "rollback", stack[-2], current)
    _apply(registry, store, change, reason)
    return change


def champion_stack(history: list[dict[str, Any]]) -> list[str]:
    """Replay promote/rollback events into the stack of champions (top = current)."""
    stack: list[str] = []
    for event in history:
        if event.get("action") == "promote":
            stack.append(str(event["version"]))
        elif event.get("action") == "rollback" and stack:
            stack.pop()
    return stack


def compare_holdout(challenger: ModelVersion, champion: ModelVersion) -> Check:
    """Challenger vs champion on the primary metric of the same hold-out rows.

    Only comparable when both were trained on the same data snapshot with the
    same seed and split; otherwise the check fails and says why.
    """
    keys = ("keel.data_digest", "keel.seed", "keel.test_size", "keel.metric")
    differs = [k for k in keys if challenger.tags.get(k) != champion.tags.get(k)]
    if differs:
        return Check(
            "hold-out comparison",
            False,
            f"not comparable with v{champion.version} (different {', '.join(k.split('.', 1)[1] for k in differs)})",
        )
    metric = challenger.tags["keel.metric"]
    new, old = float(challenger.tags["keel.metric_value"]), float(champion.tags["keel.metric_value"])
    greater = challenger.tags.get("keel.greater_is_better", "true") == "true"
    passed = is_better(new, old, greater) or new == old
    verdict = "not worse than" if passed else "worse than"
    return Check(
        "hold-out comparison", passed, f"{metric} {new:.4f} is {verdict} champion v{champion.version}'s {old:.4f}"
    )


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
    registry.set_alias(change.model, CHAMPION, change.version)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "action": change.action,
        "version": change.version,
        "previous": change.previous,
        "at": at,
        "by": _user(),
        "reason": reason[:200],
    }
    registry.set_champion_history(change.model, [*registry.champion_history(change.model), event])
    evidence = json.dumps({"checks": [asdict(c) for c in change.checks], "note": change.note})
    registry.set_version_tags(
        change.model,
        change.version,
        {f"keel.{change.action}d_at": at, f"keel.{change.action}_evidence": evidence[:4900]},
    )
    sync_serving(registry, store, change.model)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
