"""The store's layout on disk and the only ways keel writes into it.

Every write goes to a temporary name and is renamed into place, so a process
killed at any moment leaves either the old file or the new one, never half.

Layout (default ``.keel/`` beside the project file)::

    mlflow.db, artifacts/          MLflow tracking + registry (SQLite)
    data/<sha256>/                 content-addressed data snapshots
    bundles/<model>/<version>/     exported, hash-verified model bundles
    serving/<model>.json           aliases materialised for the server
    predictions/<model>/           append-only Parquet prediction log
    reports/                       JSON reports (monitor, ...)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import RegistryError


@dataclass(frozen=True)
class Store:
    """Paths inside one store directory; creating it is explicit (``ensure``)."""

    root: Path

    def ensure(self) -> Store:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def snapshot_dir(self, digest: str) -> Path:
        return self.root / "data" / digest

    def bundle_dir(self, model: str, version: str | int) -> Path:
        return self.root / "bundles" / model / str(version)

    def serving_file(self, model: str) -> Path:
        return self.root / "serving" / f"{model}.json"

    def kill_file(self, model: str) -> Path:
        """Versions the server's admin kill switch disabled (``POST /admin/disable``)."""
        return self.root / "serving" / "kill" / f"{model}.json"

    def rollout_file(self, model: str) -> Path:
        """The model's rollout: its plan, step and evidence (keel.registry.rollout)."""
        return self.root / "rollouts" / f"{model}.json"

    def predictions_dir(self, model: str) -> Path:
        return self.root / "predictions" / model

    def reports_dir(self) -> Path:
        return self.root / "reports"

    def golden_file(self, model: str, digest: str) -> Path:
        return self.root / "golden" / model / f"{digest}.parquet"


def output_path(path: Path | str, what: str = "output") -> Path:
    """A file a command will write, resolved against the working directory, its folder created;
    DataError (one line, with the fix) when the folder cannot be made or written."""
    from keel.errors import DataError

    target = Path(path).expanduser().resolve()
    if target.is_dir():
        raise DataError(f"the {what} '{path}' is a directory.", hint="Name a file in it.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the folder of the {what} '{path}': {exc.strerror or exc}.",
            hint="Choose a folder you can write to.",
        ) from None
    if not os.access(target.parent, os.W_OK):
        raise DataError(
            f"cannot write the {what} '{path}': its folder is read-only.", hint="Choose a folder you can write to."
        )
    return target


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a store is shared by its team
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: Path, payload: Any) -> Path:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def staging_dir(final: Path) -> Path:
    """A fresh sibling directory to fill before ``publish_dir`` renames it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    staged.chmod(0o755)
    return staged


def publish_dir(staged: Path, final: Path) -> Path:
    """Move a filled staging directory to ``final``, replacing an older one."""
    if final.exists():
        trash = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        os.replace(final, trash)
        os.replace(staged, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staged, final)
    return final


# -- serving aliases -------------------------------------------------------
# The registry (MLflow) is the source of truth for aliases; this file is a copy
# the server can read without MLflow. Every registry command rewrites it.


@dataclass(frozen=True)
class ServingAliases:
    """Alias -> version, and each aliased version's bundle manifest SHA-256."""

    model: str
    aliases: dict[str, str]
    digests: dict[str, str]
    canary_share: float | None = None  # set by a rollout step; None: serving.canary_share
    disabled: tuple[str, ...] = ()  # versions the kill switch took out of traffic
    fallback: str | None = None  # the champion before a disabled one (its digest is in ``digests``)

    def resolve(self, alias: str) -> tuple[str, str | None]:
        """(version, expected bundle digest) of ``alias``."""
        if alias not in self.aliases:
            have = ", ".join(sorted(self.aliases)) or "none"
            raise RegistryError(
                f"model '{self.model}' has no alias '{alias}' (aliases: {have}).", hint="Run `keel promote` first."
            )
        version = self.aliases[alias]
        return version, self.digests.get(version)


def write_serving_aliases(
    store: Store,
    model: str,
    aliases: dict[str, str],
    digests: dict[str, str],
    *,
    canary_share: float | None = None,
    disabled: tuple[str, ...] = (),
    fallback: str | None = None,
) -> Path:
    """Record which version each alias ('champion', ...) points at, the canary's share of the
    traffic when a rollout sets it, and the versions the kill switch disabled."""
    payload: dict[str, Any] = {
        "model": model,
        "aliases": dict(sorted(aliases.items())),
        "digests": dict(sorted(digests.items())),
    }
    if canary_share is not None:
        payload["canary_share"] = canary_share
    if disabled:
        payload["disabled"] = sorted(disabled)
    if fallback is not None:
        payload["fallback"] = fallback
    return atomic_write_json(store.serving_file(model), payload)


def read_serving_aliases(store: Store, model: str) -> ServingAliases:
    """The aliases written at the last promote or rollback."""
    file = store.serving_file(model)
    if not file.is_file():
        known = sorted(p.stem for p in (store.root / "serving").glob("*.json"))
        hint = f"Models with a champion here: {', '.join(known)}." if known else "Run `keel promote` first."
        raise RegistryError(f"model '{model}' has no promoted version in store {store.root}.", hint=hint)
    try:
        payload = read_json(file)
        aliases = {str(k): str(v) for k, v in payload["aliases"].items()}
        digests = {str(k): str(v) for k, v in payload.get("digests", {}).items()}
        share = payload.get("canary_share")
        share = None if share is None else float(share)
        disabled = tuple(str(v) for v in payload.get("disabled", ()))
        fallback = None if payload.get("fallback") is None else str(payload["fallback"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(f"{file} is corrupt.", hint="Rewrite it with `keel promote` or `keel rollback`.") from None
    return ServingAliases(model, aliases, digests, share, disabled, fallback)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
