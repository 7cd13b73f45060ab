"""The model bundle: everything the server needs, each file pinned by SHA-256.

A bundle is a directory::

    model.onnx      the whole pipeline (transforms + model) as one graph
    schema.json     input columns, kinds and graph input names
    metadata.json   model, version, task, classes, metrics, lineage
    profile.json    reference profile of inputs and predictions (for monitoring)
    parity.json     native vs ONNX on held-out rows, and latency
    reference.parquet  a sample of held-out input rows (the monitor's domain classifier);
                    optional: bundles exported before it existed lack it
    manifest.json   {"format": 1, "files": {name: sha256}}

Loading recomputes every hash and refuses a bundle that differs from its
manifest; callers that know the manifest's own hash (the registry records it)
pass it to ``load_bundle`` so a rewritten manifest is refused too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import BundleError
from keel.schema import InputSchema
from keel.store import atomic_write_bytes, publish_dir, sha256_file, staging_dir

FORMAT = 1
MANIFEST = "manifest.json"
REQUIRED = ("model.onnx", "schema.json", "metadata.json", "profile.json", "parity.json")
REFERENCE = "reference.parquet"


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    digest: str
    schema: InputSchema
    metadata: dict[str, Any]
    profile: dict[str, Any]
    parity: dict[str, Any]
    files: tuple[str, ...] = ()  # every file the manifest lists (and loading verified)

    @property
    def model_file(self) -> Path:
        return self.path / "model.onnx"

    @property
    def model(self) -> str:
        return str(self.metadata["model"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def reference_file(self) -> Path | None:
        """The held-out sample, verified with the rest; None in bundles exported without one
        (a file the manifest does not list is never read)."""
        return self.path / REFERENCE if REFERENCE in self.files else None


def write_bundle(
    final: Path, model_onnx: bytes, documents: dict[str, Any], files: dict[str, bytes] | None = None
) -> str:
    """Write a bundle atomically; returns the SHA-256 of its manifest.

    ``documents`` maps the JSON files' names (schema.json, ...) to their content; ``files``
    other files by name (reference.parquet) to their bytes.
    """
    staged, digest = stage_bundle(final, model_onnx, documents, files)
    publish_dir(staged, final)
    return digest


def stage_bundle(
    final: Path, model_onnx: bytes, documents: dict[str, Any], files: dict[str, bytes] | None = None
) -> tuple[Path, str]:
    """``write_bundle``'s files in a staging directory beside ``final``, not yet published (the
    caller records the digest in the registry first, then publishes with ``publish_dir``)."""
    staged = staging_dir(final)
    try:
        atomic_write_bytes(staged / "model.onnx", model_onnx)
        for name, content in documents.items():
            atomic_write_bytes(staged / name, json.dumps(content, indent=2, sort_keys=True).encode())
        for name, content in (files or {}).items():
            atomic_write_bytes(staged / name, content)
        digests = {p.name: sha256_file(p) for p in sorted(staged.iterdir()) if p.is_file()}
        missing = [name for name in REQUIRED if name not in digests]
        if missing:
            raise BundleError(f"bundle is incomplete: {', '.join(missing)} missing.")
        manifest = json.dumps({"format": FORMAT, "files": digests}, indent=2, sort_keys=True).encode()
        atomic_write_bytes(staged / MANIFEST, manifest)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged, hashlib.sha256(manifest).hexdigest()


def load_bundle(path: Path, expected_digest: str | None = None) -> Bundle:
    """Verify every file of the bundle at ``path`` against its manifest, then load it."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise BundleError(
            f"no model bundle at {path} (manifest.json missing).", hint="Run `keel export` for this version."
        )
    raw = manifest_file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if expected_digest and digest != expected_digest:
        raise BundleError(
            f"bundle {path} does not match the registry: manifest sha256 {digest[:12]}, "
            f"expected {expected_digest[:12]}.",
            hint="Re-export this version with `keel export`.",
        )
    files = _manifest_files(raw, path)
    for name, want in files.items():
        _verify_file(path / name, want)
    docs = {name: json.loads((path / name).read_text()) for name in REQUIRED if name.endswith(".json")}
    return Bundle(
        path,
        digest,
        InputSchema.from_dict(docs["schema.json"]),
        docs["metadata.json"],
        docs["profile.json"],
        docs["parity.json"],
        tuple(sorted(files)),
    )


def _manifest_files(raw: bytes, path: Path) -> dict[str, str]:
    try:
        manifest = json.loads(raw)
        files = {str(k): str(v) for k, v in manifest["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BundleError(f"the manifest of bundle {path} is corrupt.", hint="Re-export with `keel export`.") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"bundle {path} has format {manifest.get('format')}, this keel reads format {FORMAT}.")
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise BundleError(f"bundle {path} is incomplete: {', '.join(missing)} not in its manifest.")
    return files


def _verify_file(file: Path, want: str) -> None:
    if not file.is_file():
        raise BundleError(f"bundle file {file} is missing.", hint="Re-export with `keel export`.")
    got = sha256_file(file)
    if got != want:
        raise BundleError(
            f"bundle file {file} is tampered or truncated (sha256 {got[:12]}, manifest says {want[:12]}).",
            hint="Do not edit bundles; re-export with `keel export`.",
        )
