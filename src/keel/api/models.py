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
from keel.errors import ConfigError, ExportError, RegistryError
from keel.evaluation.gate import (
    Check,
    baseline_check,
    improvement_check,
    latency_check,
    parity_check,
    recent_check,
    slice_check,
    suspicion_check,
)
from keel.evaluation.suite import slice_groups
from keel.exporting.bundle import REFERENCE, Bundle, load_bundle, stage_bundle
from keel.exporting.feed import TOKENIZER_FILE, Feeder
from keel.exporting.importance import output_sensitivity
from keel.exporting.parity import Latency, Parity, check_parity, measure_latency
from keel.exporting.reference import PERFORMANCE_ROWS, reference_estimates, reference_performance, reference_sample
from keel.exporting.transformer import is_transformer
from keel.registry.champion import (
    APPROVAL_TAG,
    BUNDLE_DIGEST_TAG,
    CHAMPION,
    DISABLED,
    TRAFFIC_ALIASES,
    AliasChange,
    changing,
    publish_export,
    record_decision,
    record_event,
    remove_traffic_alias,
    set_traffic_alias,
    sync_serving,
)
from keel.registry.champion import PromotionRefused as PromotionRefused  # raised by promote
from keel.registry.champion import history as champion_history
from keel.registry.champion import promote as promote_version
from keel.registry.champion import rollback as rollback_champion
from keel.registry.golden import DIGEST_TAG as GOLDEN_DIGEST_TAG
from keel.registry.golden import TARGET as GOLDEN_TARGET
from keel.registry.golden import freeze as freeze_golden
from keel.registry.golden import load as load_golden
from keel.registry.golden import with_labels
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.registry.refs import parse_ref
from keel.schema import NUMERIC, InputSchema
from keel.store import Store, read_json

Step = Callable[[str], None]
BASELINE_TAG = "keel.baseline_check"  # written by keel.api.train
GOLDEN_OVERLAP = 0.01  # exact duplicates in a data set may put a few golden rows in training


@dataclass(frozen=True)
class ExportResult:
    version: ModelVersion
    bundle: Path
    digest: str
    parity: Parity
    latency: Latency
    quantization: dict[str, Any] | None = None  # transformer graphs exported with export.quantize


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
    import pyarrow.parquet as pq

    step(f"loading {version.ref}")
    pipeline = registry.load_pipeline(version)
    with tempfile.TemporaryDirectory() as tmp:
        files = registry.download(version.run_id, "keel", Path(tmp))
        schema, meta, profile, holdout, labels = _run_files(files, project.config.export.parity_rows)
        sample = reference_sample(files / "holdout.parquet", schema, project.config.monitor.domain_rows)
        held_out = pq.read_table(files / "holdout.parquet")  # read once: the reference performance scores it
    classification = meta["plan"]["task"] != "regression"
    step("converting the pipeline to ONNX")
    settings = project.config.export
    if is_transformer(pipeline):
        model, parity, extra = _export_transformer(pipeline, schema, holdout, labels, settings, step)
        feeder = Feeder(schema, extra["metadata"]["tokens"], extra["files"][TOKENIZER_FILE].decode())
    else:
        from keel.exporting.onnx_convert import convert_pipeline

        model, schema = convert_pipeline(pipeline, schema, classification)
        step(f"checking parity on {len(next(iter(holdout.values()))):,} held-out rows")
        tolerance = settings.parity_tolerance if classification else settings.regression_parity_tolerance
        parity = check_parity(pipeline, model, schema, holdout, classification, tolerance)
        extra, feeder = {"metadata": {}, "parity": {}, "files": {}, "tags": {}}, Feeder(schema)
    if not parity.passed:
        raise ExportError(
            f"parity failed for {version.ref}: max |native - ONNX| {parity.output} difference {parity.max_diff:.2e} "
            f"exceeds {parity.tolerance:.0e} (label agreement {parity.label_agreement}).",
            hint="The ONNX graph would serve different predictions; nothing was exported.",
        )
    latency = measure_latency(model, schema, holdout, feeder=feeder)
    step("measuring how much the output depends on each column")
    importance = output_sensitivity(model, schema, holdout, classification, seed=project.config.seed, feeder=feeder)
    estimates = reference_estimates(model, schema, holdout, meta["plan"]["task"], feeder=feeder)
    step("measuring the reference performance the monitor judges decay against")
    measured = reference_performance(
        model,
        schema,
        held_out,
        meta,
        rows=settings.parity_rows if is_transformer(pipeline) else PERFORMANCE_ROWS,
        feeder=feeder,
        resamples=project.config.guard.resamples,
        seed=project.config.seed,
    )
    documents = {
        "schema.json": schema.to_dict(),
        "metadata.json": _metadata(version, meta)
        | {"importance": importance, "estimated_reference": estimates, "reference_performance": measured}
        | {"threshold": meta.get("threshold")}
        | extra["metadata"],
        "profile.json": profile,
        "parity.json": {"parity": parity.to_dict(), "latency": latency.to_dict()} | extra["parity"],
    }
    bundle = store.bundle_dir(version.name, version.version)
    staged, digest = stage_bundle(bundle, model, documents, {REFERENCE: sample} | extra["files"])
    step("recording the bundle in the registry")
    tags = {
        BUNDLE_DIGEST_TAG: digest,
        "keel.parity_max_diff": f"{parity.max_diff:.3e}",
        "keel.exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    } | extra["tags"]
    with changing(registry, store, version.name):  # the registry learns the digest, then the bundle appears
        publish_export(registry, store, version, staged, bundle, tags)
    registry.log_artifacts(version.run_id, bundle, "bundle")
    return ExportResult(version, bundle, digest, parity, latency, extra["parity"].get("quantization"))


def promote(
    project: Project,
    ref: str | None = None,
    *,
    force: bool = False,
    reason: str = "",
    recent: bool = False,
    refusal_hint: str | None = None,
    golden_candidate: Any = None,
    golden_source: str = "",
    hold: bool = False,
) -> AliasChange:
    """Make a version the champion if the gate passes (see ``keel.evaluation.gate``).

    ``hold`` (``retrain.approval: required``): a version that passes is not promoted but marked
    as awaiting approval (an ``awaiting approval`` event with every check, and the version tag
    ``keel.approval: pending``); ``keel approve`` then starts its rollout.

    The version must be exported (its bundle intact). Against a current champion, both
    bundles score the golden set, frozen from the first champion's hold-out rows: the
    challenger must beat the champion with a paired interval above zero, and no configured
    slice may regress. Parity and latency from the export are checked too. Nothing changes
    until every check has run; a refusal is recorded and raised as ``PromotionRefused``.

    ``recent`` (what ``keel retrain`` asks for): also score both on the challenger's hold-out
    rows, the newest labelled window it was given, where it may not be worse than the champion
    by more than ``guard.max_slice_regression``; and check the new labels' quality
    (``keel.evaluation.labels``) before believing any score on them.

    ``golden_candidate`` (``keel retrain --refresh-golden``): newer labelled rows the challenger
    never trained on (a DataFrame with the target as ``keel_target`` labels). The gate scores
    both models on them instead of the current golden set, and, when their labels pass the
    quality check, they become the model's golden set (a new version, recorded in the history),
    whatever the gate decides about the challenger.
    """
    registry, version = resolve(project, ref)
    store = Store(project.store_path).ensure()
    with changing(registry, store, version.name):  # one registry move of this model at a time
        return _promote(
            project,
            registry,
            store,
            version,
            force,
            reason,
            recent,
            refusal_hint,
            golden_candidate,
            golden_source,
            hold,
        )


def _promote(
    project: Project,
    registry: MlflowRegistry,
    store: Store,
    version: ModelVersion,
    force: bool,
    reason: str,
    recent: bool,
    refusal_hint: str | None,
    golden_candidate: Any,
    golden_source: str,
    hold: bool = False,
) -> AliasChange:
    version = registry.get(version.name, version.version)  # its tags as they are now, under the lock
    challenger = _exported_bundle(store, version)
    current = registry.aliases(version.name).get(CHAMPION)
    if current == version.version:
        raise RegistryError(f"{version.ref} is already the champion.", hint="Nothing to do.")
    checks, note = gate_checks(
        project, registry, store, version, challenger, current, recent, golden_candidate, golden_source
    )
    if hold and all(c.passed for c in checks):
        change = AliasChange(version.name, "awaiting approval", version.version, current, checks, note)
        record_decision(registry, change, reason)
        registry.set_version_tags(version.name, version.version, {APPROVAL_TAG: "pending"})
        return change
    deciding = (force and bool(reason.strip())) or all(c.passed for c in checks)
    if current is None and deciding and not registry.model_tags(version.name).get(GOLDEN_DIGEST_TAG):
        _freeze_golden(registry, store, version)  # only a version that becomes champion sets the yardstick
    return promote_version(
        registry, store, version, checks, force=force, reason=reason, note=note, refusal_hint=refusal_hint
    )


def gate_checks(
    project: Project,
    registry: MlflowRegistry,
    store: Store,
    version: ModelVersion,
    challenger: Bundle,
    current: str | None,
    recent: bool = False,
    golden_candidate: Any = None,
    golden_source: str = "",
) -> tuple[list[Check], str]:
    """The offline gate's checks of ``version`` against the champion ``current`` (see
    ``promote``), and the note the decision records. Callers hold the model's lock."""
    guard = project.config.guard
    checks = [
        _baseline_gate(project, registry, version, challenger),
        parity_check(challenger.parity.get("parity", {})),
        latency_check(challenger.parity.get("latency", {}), project.config.serving.latency_budget_ms),
        suspicion_check(version.tags.get("keel.suspicious")),
    ]
    note = ""
    if current is None:
        note = "first champion: there is no earlier model to compare against; its hold-out rows become the golden set."
    else:
        champion_version = registry.get(version.name, current)
        champion = _exported_bundle(store, champion_version)
        trusted, digest = _golden(registry, store, champion_version)
        frame = trusted if golden_candidate is None else golden_candidate
        y, champion_out, challenger_out = _score_golden(frame, champion, challenger)
        metric = champion.metadata["metric"]
        greater = _greater_is_better(metric)
        slices = _golden_slices(frame, project.config.evaluate.slices)
        checks = [
            improvement_check(
                metric,
                greater,
                y,
                champion_out,
                challenger_out,
                min_improvement=guard.min_improvement,
                resamples=guard.resamples,
                seed=project.config.seed,
            ),
            slice_check(
                metric,
                greater,
                y,
                champion_out,
                challenger_out,
                slices,
                min_rows=guard.min_slice_size,
                max_regression=guard.max_slice_regression,
            ),
            _unseen_check(project, version, frame),
            *checks,
        ]
        note = f"golden set {digest[:12]} ({len(frame):,} rows)"
        if recent:
            recent_frame = _holdout_frame(registry, version)[0] if golden_candidate is None else golden_candidate
            recent_y, recent_champion, recent_challenger = _score_golden(recent_frame, champion, challenger)
            quality = _label_quality(trusted, recent_frame, champion, recent_y, recent_champion, project.config.seed)
            checks += [
                recent_check(
                    metric,
                    greater,
                    recent_y,
                    recent_champion,
                    recent_challenger,
                    max_regression=guard.max_slice_regression,
                ),
                quality,
            ]
            if golden_candidate is not None and quality.passed:
                refreshed = _refresh_golden(registry, store, version, golden_candidate, digest, golden_source)
                note = (
                    f"golden set refreshed to {refreshed[:12]} ({len(frame):,} newest labelled rows; was {digest[:12]})"
                )
    return checks, note


def set_alias(project: Project, alias: str, ref: str | None = None, *, reason: str = "") -> AliasChange:
    """Point the ``canary`` or ``shadow`` alias at an exported version; a running server follows."""
    _check_traffic_alias(alias)
    registry, version = resolve(project, ref)
    store = Store(project.store_path).ensure()
    _exported_bundle(store, version)
    with changing(registry, store, version.name):
        if registry.aliases(version.name).get(CHAMPION) is None:
            raise RegistryError(
                f"model '{version.name}' has no champion yet.",
                hint="Promote one first: canary and shadow run beside it.",
            )
        return set_traffic_alias(registry, store, version, alias, reason)


def remove_alias(project: Project, alias: str, name: str | None = None, *, reason: str = "") -> AliasChange:
    """Remove the ``canary`` or ``shadow`` alias: its traffic stops at the server's next check.
    Removing ``disabled`` turns the kill switch off: the alias and the server's admin kill file."""
    _check_traffic_alias(alias)
    registry = MlflowRegistry(project.tracking_uri)
    model = name or project.name
    registry.get(model)
    store = Store(project.store_path).ensure()
    with changing(registry, store, model):
        killed = store.kill_file(model)
        if alias == DISABLED and killed.is_file():
            versions = [str(v) for v in (read_json(killed).get("versions") or [])]
            killed.unlink()
            if DISABLED not in registry.aliases(model) and versions:
                change = record_event(
                    registry, registry.get(model, versions[-1]), "remove disabled", "admin kill switch cleared", {}
                )
                sync_serving(registry, store, model)
                return change
        return remove_traffic_alias(registry, store, model, alias, reason)


def _check_traffic_alias(alias: str) -> None:
    if alias not in TRAFFIC_ALIASES:
        raise ConfigError(
            f"alias '{alias}' cannot be set here: only {', '.join(TRAFFIC_ALIASES)}.",
            hint="The champion moves only through `keel promote` (the gate) and `keel rollback`.",
        )


def history(project: Project, name: str | None = None) -> list[dict[str, Any]]:
    """Every promotion, refusal and rollback of a model, oldest first."""
    registry = MlflowRegistry(project.tracking_uri)
    model = name or project.name
    registry.get(model)
    with changing(registry, Store(project.store_path).ensure(), model):  # a killed move is completed first
        return champion_history(registry, model)


def _unseen_check(project: Project, version: ModelVersion, golden: Any) -> Check:
    """The golden rows must not be among the challenger's training rows, or its score on them is
    a training score. Rows are compared on the input columns both have (exact duplicates in
    the data itself may match a few: up to ``GOLDEN_OVERLAP`` of the rows pass)."""
    import pandas as pd

    from keel.tracking.runs import RunStore
    from keel.training.prepare import prepare_recorded

    tags = RunStore(project.tracking_uri, version.name).get(version.run_id).data.tags
    _, data = prepare_recorded(Store(project.store_path), tags)
    columns = [c.name for c in data.schema.columns if c.name in golden.columns]
    trained = pd.DataFrame({c: data.x[c][data.train] for c in columns})
    seen = set(pd.util.hash_pandas_object(trained, index=False).tolist())
    hashes = pd.util.hash_pandas_object(golden[columns].astype(trained.dtypes.to_dict()), index=False)
    overlap = int(hashes.isin(seen).sum())
    share = overlap / max(len(golden), 1)
    detail = f"{overlap:,} of {len(golden):,} golden rows ({share:.1%}) are among the challenger's training rows"
    if share > GOLDEN_OVERLAP:
        detail += f"; more than {GOLDEN_OVERLAP:.0%}: its score on them is not a held-out score (another split?)"
    return Check("golden rows unseen", share <= GOLDEN_OVERLAP, detail, {"overlap": overlap, "rows": len(golden)})


def _baseline_gate(project: Project, registry: MlflowRegistry, version: ModelVersion, bundle: Bundle) -> Check:
    """Training's verdict against the majority/mean baseline (the version's tag); versions
    trained before it was recorded are scored now, their bundle on their hold-out rows."""
    recorded = version.tags.get(BASELINE_TAG)
    if recorded:
        return Check(**json.loads(recorded))
    frame, meta = _holdout_frame(registry, version)
    y, predicted = _golden_outputs(frame, bundle)
    prior = meta.get("prior")
    if prior is None:  # runs from before the prior was stored: the hold-out's own shares or mean
        prior = np.bincount(y, minlength=predicted.shape[1]).tolist() if predicted.ndim == 2 else float(np.mean(y))
    metric = bundle.metadata["metric"]
    return baseline_check(
        metric,
        _greater_is_better(metric),
        y,
        predicted,
        prior,
        resamples=project.config.guard.resamples,
        seed=project.config.seed,
    )


def _holdout_frame(registry: MlflowRegistry, version: ModelVersion) -> tuple[Any, dict[str, Any]]:
    """A version's hold-out rows (a DataFrame, the target as class labels) and its run's meta."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        files = registry.download(version.run_id, "keel", Path(tmp))
        meta = json.loads((files / "model_meta.json").read_text())
        holdout = with_labels(pq.read_table(files / "holdout.parquet"), meta.get("classes"))
    return holdout.to_pandas(), meta


def _label_quality(
    golden: Any, new: Any, champion: Bundle, y: np.ndarray, champion_out: np.ndarray, seed: int
) -> Check:
    """The new labelled rows' self-agreement against the golden set's (``keel.evaluation.labels``),
    both on the champion's input columns and at the same number of rows."""
    from keel.evaluation.labels import SELF_ROWS, label_quality_check, not_applicable, self_agreement

    if champion_out.ndim != 2:
        return not_applicable(champion.metadata["task"])
    classes = champion.metadata["classes"]
    golden_y = _class_indices(golden[GOLDEN_TARGET].astype(str).to_numpy(), classes, champion)
    kinds = {c.name: c.kind for c in champion.schema.columns if c.name in golden.columns and c.name in new.columns}
    rows = min(len(golden), len(new), SELF_ROWS)
    then = self_agreement(golden, kinds, golden_y, rows, seed)
    now = self_agreement(new, kinds, y, rows, seed)
    return label_quality_check(then, now, champion_out, y, classes)


def _refresh_golden(
    registry: MlflowRegistry, store: Store, version: ModelVersion, frame: Any, previous: str, source: str
) -> str:
    """Make ``frame`` the model's golden set (kept with ``version``'s run) and record it."""
    import pyarrow as pa

    from keel.registry.champion import record_event

    digest = freeze_golden(registry, store, version, pa.Table.from_pandas(frame, preserve_index=False), None)
    record_event(
        registry,
        version,
        "golden refresh",
        f"golden set {digest[:12]} ({len(frame):,} rows) replaces {previous[:12]}; from {source or 'the newest rows'}",
        {"digest": digest, "previous": previous, "rows": len(frame), "source": source},
    )
    return digest


def _exported_bundle(store: Store, version: ModelVersion) -> Bundle:
    digest = version.tags.get(BUNDLE_DIGEST_TAG)
    if not digest:
        raise RegistryError(
            f"{version.ref} has not been exported.",
            hint=f"Run `keel export {version.ref}` first: only parity-checked models are promoted.",
        )
    return load_bundle(store.bundle_dir(version.name, version.version), digest)


def _freeze_golden(registry: MlflowRegistry, store: Store, version: ModelVersion) -> str:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        files = registry.download(version.run_id, "keel", Path(tmp))
        meta = json.loads((files / "model_meta.json").read_text())
        holdout = pq.read_table(files / "holdout.parquet")
    return freeze_golden(registry, store, version, holdout, meta.get("classes"))


def _golden(registry: MlflowRegistry, store: Store, champion: ModelVersion) -> tuple[Any, str]:
    """The golden set; a champion promoted before golden sets existed gets its own frozen now."""
    found = load_golden(registry, store, champion.name)
    if found is None:
        _freeze_golden(registry, store, champion)
        found = load_golden(registry, store, champion.name)
    assert found is not None
    return found


def _score_golden(frame: Any, champion: Bundle, challenger: Bundle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The golden target (class indices, or values) and both bundles' outputs on the golden rows,
    the challenger's probability columns in the champion's class order."""
    y, champion_out = _golden_outputs(frame, champion)
    _, challenger_out = _golden_outputs(frame, challenger)
    theirs, ours = champion.metadata.get("classes"), challenger.metadata.get("classes")
    if theirs and ours != theirs:
        if sorted(ours or []) != sorted(theirs):
            raise RegistryError(
                f"{challenger.model}@{challenger.version} predicts the classes {ours}, the champion {theirs}: "
                "they cannot be compared.",
                hint=f"If the task itself changed, evaluate it and run `keel promote {challenger.model}@{challenger.version} "
                "--force --reason '...'`.",
            )
        order = [list(ours or []).index(c) for c in theirs]
        challenger_out = challenger_out[:, np.asarray(order, dtype=np.intp)]
    return y, champion_out, challenger_out


def _golden_outputs(frame: Any, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """One bundle's target encoding and outputs (probabilities, or values) on the golden rows."""
    from keel.serving.predictor import Predictor

    needed = [c.name for c in bundle.schema.columns if c.name not in frame.columns]
    if needed:
        raise RegistryError(
            f"the golden set no longer matches {bundle.model}@{bundle.version}'s inputs: "
            f"it lacks column(s) {', '.join(needed)}.",
            hint="A model with other inputs cannot be compared on these rows: keep the input columns, or evaluate "
            f"it yourself and run `keel promote {bundle.model}@{bundle.version} --force --reason '...'`.",
        )
    predictor = Predictor(bundle)
    predicted = predictor.predict(bundle.schema.frame_to_arrays(frame))
    if predictor.classes is None:
        return frame[GOLDEN_TARGET].to_numpy(dtype=np.float64), predicted.score
    y = _class_indices(frame[GOLDEN_TARGET].astype(str).to_numpy(), predictor.classes, bundle)
    return y, np.asarray(predicted.probabilities, dtype=np.float64)


def _class_indices(labels: np.ndarray, classes: list[str], bundle: Bundle) -> np.ndarray:
    index = {label: i for i, label in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(index))
    if unknown:
        raise RegistryError(
            f"the golden set holds label(s) {', '.join(unknown[:5])} that {bundle.model}@{bundle.version} "
            f"does not predict (classes: {', '.join(classes)}).",
        )
    return np.array([index[label] for label in labels], dtype=np.int64)


def _golden_slices(frame: Any, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"keel.yaml's evaluate.slices names column(s) {', '.join(unknown)} that the golden set lacks.",
            hint=f"Columns: {', '.join(c for c in frame.columns if c != GOLDEN_TARGET)}.",
        )
    slices = {}
    for column in columns:
        values = frame[column].to_numpy()
        numeric = np.issubdtype(values.dtype, np.number)
        slices[column] = slice_groups(values.astype(np.float64) if numeric else values, numeric)
    return slices


def _greater_is_better(metric: str) -> bool:
    from keel.planning.rules import LOWER_IS_BETTER

    return metric not in LOWER_IS_BETTER


def rollback(project: Project, name: str | None = None, *, reason: str = "") -> AliasChange:
    """Move ``champion`` back to the previous champion."""
    registry = MlflowRegistry(project.tracking_uri)
    store = Store(project.store_path).ensure()
    model = name or project.name
    with changing(registry, store, model):
        return rollback_champion(registry, store, model, reason)


def _export_transformer(
    pipeline: Any,
    schema: InputSchema,
    holdout: dict[str, np.ndarray],
    labels: np.ndarray,
    settings: Any,
    step: Step,
) -> tuple[bytes, Parity, dict[str, Any]]:
    """A transformer pipeline's graph, its logit parity against PyTorch and, when
    ``export.quantize``, its INT8 version if accuracy holds; what the bundle adds for them
    (tokenizer.json, the tokens settings, the quantization record, registry tags)."""
    from keel.exporting.transformer import convert_transformer, logit_parity, quantize

    graph = convert_transformer(pipeline, schema)
    step(f"checking logit parity with PyTorch on {len(labels):,} held-out texts")
    parity = logit_parity(graph, pipeline, schema, holdout, settings.logit_tolerance)
    model = graph.model
    extra: dict[str, Any] = {
        "metadata": {"tokens": graph.tokens, "graph": "transformer", "encoder": graph.encoder},
        "parity": {},
        "files": {TOKENIZER_FILE: graph.tokenizer.encode()},
        "tags": {"keel.max_logit_diff": f"{parity.max_diff:.3e}"},
    }
    if settings.quantize and parity.passed:
        step("quantizing to INT8 and checking accuracy")
        int8, record = quantize(graph, schema, holdout, labels, settings.quantize_budget)
        model = int8 if int8 is not None else model
        extra["parity"]["quantization"] = record
        extra["metadata"]["precision"] = "int8" if int8 is not None else "fp32"
        extra["tags"] |= {
            "keel.quantized": "int8" if int8 is not None else "refused",
            "keel.int8_accuracy_drop": f"{record['accuracy_drop']:.4f}",
            "keel.fp32_accuracy": f"{record['fp32_accuracy']:.4f}",
            "keel.int8_accuracy": f"{record['int8_accuracy']:.4f}",
        }
    return model, parity, extra


def _run_files(
    folder: Path, max_rows: int
) -> tuple[InputSchema, dict[str, Any], dict[str, Any], dict[str, np.ndarray], np.ndarray]:
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
    labels = table.column("keel_target").to_numpy() if "keel_target" in table.column_names else np.empty(0)
    return schema, meta, profile, arrays, labels


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
