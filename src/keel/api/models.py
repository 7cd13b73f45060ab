"""``export``, ``promote``, ``rollback``: from a registered version to the serving champion."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel._version import __version__
from keel.config import Project
from keel.errors import ExportError, RegistryError
from keel.exporting.bundle import load_bundle, write_bundle
from keel.exporting.parity import Latency, Parity, check_parity, measure_latency
from keel.registry.champion import BUNDLE_DIGEST_TAG, AliasChange, sync_serving
from keel.registry.champion import promote as promote_version
from keel.registry.champion import rollback as rollback_champion
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.registry.refs import parse_ref
from keel.schema import NUMERIC, InputSchema
from keel.store import Store

Step = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    version: ModelVersion
    bundle: Path
    digest: str
    parity: Parity
    latency: Latency


def resolve(project: Project, ref: str | None) -> tuple[MlflowRegistry, ModelVersion]:
    """The registry and the version ``ref`` names (newest when omitted; aliases allowed)."""
    name, version = parse_ref(ref, project.name)
    registry = MlflowRegistry(project.tracking_uri)
    if version is not None and not version.isdigit():
        registry.get(name)
        aliases = registry.aliases(name)
        if version not in aliases:
            raise RegistryError(
                f"model '{name}' has no alias '{version}'.",
                hint=f"Aliases: {', '.join(sorted(aliases)) or 'none yet'}.",
            )
        version = aliases[version]
    return registry, registry.get(name, version)


def export(project: Project, ref: str | None = None, *, on_step: Step | None = None) -> ExportResult:
    """Convert a version's whole pipeline to ONNX, check parity, and store its bundle."""
    step = on_step or (lambda _message: None)
    registry, version = resolve(project, ref)
    store = Store(project.store_path).ensure()
    step(f"loading {version.ref}")
    pipeline = registry.load_pipeline(version)
    with tempfile.TemporaryDirectory() as tmp:
        files = registry.download(version.run_id, "keel", Path(tmp))
        schema, meta, profile, holdout = _run_files(files, project.config.export.parity_rows)
    classification = meta["plan"]["task"] != "regression"
    step("converting the pipeline to ONNX")
    from keel.exporting.onnx_convert import convert_pipeline

    model, schema = convert_pipeline(pipeline, schema, classification)
    step(f"checking parity on {len(next(iter(holdout.values()))):,} held-out rows")
    settings = project.config.export
    tolerance = settings.parity_tolerance if classification else settings.regression_parity_tolerance
    parity = check_parity(pipeline, model, schema, holdout, classification, tolerance)
    if not parity.passed:
        raise ExportError(
            f"parity failed for {version.ref}: max |native - ONNX| {parity.output} difference {parity.max_diff:.2e} "
            f"exceeds {parity.tolerance:.0e} (label agreement {parity.label_agreement}).",
            hint="The ONNX graph would serve different predictions; nothing was exported.",
        )
    latency = measure_latency(model, schema, holdout)
    documents = {
        "schema.json": schema.to_dict(),
        "metadata.json": _metadata(version, meta),
        "profile.json": profile,
        "parity.json": {"parity": parity.to_dict(), "latency": latency.to_dict()},
    }
    bundle = store.bundle_dir(version.name, version.version)
    digest = write_bundle(bundle, model, documents)
    step("recording the bundle in the registry")
    registry.log_artifacts(version.run_id, bundle, "bundle")
    registry.set_version_tags(
        version.name,
        version.version,
        {
            BUNDLE_DIGEST_TAG: digest,
            "keel.parity_max_diff": f"{parity.max_diff:.3e}",
            "keel.exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    if registry.aliases(version.name):
        sync_serving(registry, store, version.name)
    return ExportResult(version, bundle, digest, parity, latency)


def promote(project: Project, ref: str | None = None, *, force: bool = False, reason: str = "") -> AliasChange:
    """Make a version the champion: it must be exported, its bundle intact, and not worse."""
    registry, version = resolve(project, ref)
    digest = version.tags.get(BUNDLE_DIGEST_TAG)
    if not digest:
        raise RegistryError(
            f"{version.ref} has not been exported.",
            hint=f"Run `keel export {version.ref}` first: only parity-checked models are promoted.",
        )
    store = Store(project.store_path).ensure()
    load_bundle(store.bundle_dir(version.name, version.version), digest)
    return promote_version(registry, store, version, force=force, reason=reason)


def rollback(project: Project, name: str | None = None, *, reason: str = "") -> AliasChange:
    """Move ``champion`` back to the previous champion."""
    registry = MlflowRegistry(project.tracking_uri)
    return rollback_champion(registry, Store(project.store_path).ensure(), name or project.name, reason)


def _run_files(
    folder: Path, max_rows: int
) -> tuple[InputSchema, dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    import pyarrow.parquet as pq

    try:
        schema = InputSchema.from_dict(json.loads((folder / "schema.json").read_text()))
        meta = json.loads((folder / "model_meta.json").read_text())
        profile = json.loads((folder / "profile.json").read_text())
        table = pq.read_table(folder / "holdout.parquet").slice(0, max_rows)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(
            f"the run's files are missing or unreadable: {exc}",
            hint="Retrain with `keel train`; the run was not written completely.",
        ) from None
    arrays = {}
    for col in schema.columns:
        values = table.column(col.name).to_numpy(zero_copy_only=False)
        arrays[col.name] = values.astype(np.float32) if col.kind == NUMERIC else values.astype(object)
    return schema, meta, profile, arrays


def _metadata(version: ModelVersion, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": version.name,
        "version": version.version,
        "run_id": version.run_id,
        "family": meta["family"],
        "task": meta["plan"]["task"],
        "metric": meta["plan"]["metric"],
        "metrics": meta["metrics"],
        "target": meta["target"],
        "classes": meta["classes"],
        "data_digest": meta["lineage"].get("keel.data_digest"),
        "keel_version": __version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
