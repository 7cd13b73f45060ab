"""``evaluate``: a version's full metric suite, slices, sanity checks, report and model card."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.api.models import resolve
from keel.config import Project
from keel.errors import ConfigError
from keel.evaluation.gate import baseline_check, improvement_check
from keel.evaluation.report import EvaluationData, SanityCheck, render_card, render_html
from keel.evaluation.suite import evaluate_slices, evaluate_suite, scalar_metrics, slice_groups
from keel.registry.champion import CHAMPION
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.schema import NUMERIC, TEXT, arrays_to_frame
from keel.store import Store, atomic_write_bytes
from keel.tracking.runs import RunStore
from keel.training.fit import predict
from keel.training.prepare import Prepared, prepare_recorded, training_prior

LEAKAGE_SCORE = 0.99  # a held-out score above this on a real task is suspect
OVERFIT_GAP = 0.05  # train minus hold-out, in score units (classification) or as a fraction (regression)
SPOT_CHECK_ROWS = 20
IMPORTANCE_ROWS = 2000
SCORERS = {  # keel's metric -> scikit-learn's scorer (greater is better)
    "roc_auc": "roc_auc",
    "average_precision": "average_precision",
    "f1_macro": "f1_macro",
    "accuracy": "accuracy",
    "log_loss": "neg_log_loss",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


@dataclass(frozen=True)
class EvaluationResult:
    data: EvaluationData
    report: Path
    card: Path


def evaluate(project: Project, ref: str | None = None, *, resamples: int = 100) -> EvaluationResult:
    """Score ``ref`` (default: the newest version) on its hold-out rows, with every check."""
    registry, version = resolve(project, ref)
    runs = RunStore(project.tracking_uri, version.name)
    tags = runs.get(version.run_id).data.tags
    dataset, data = prepare_recorded(Store(project.store_path), tags)
    config = data.config
    pipeline = registry.load_pipeline(version)
    meta = _run_meta(registry, version)
    test = data.test
    predicted = predict(pipeline, data, test)
    y = data.y[test]
    plan, metric = data.plan, data.plan.metric
    suite = evaluate_suite(y, predicted, resamples=resamples, seed=config.seed)
    slice_columns = project.config.evaluate.slices
    slices = evaluate_slices(metric, y, predicted, _slices(data, test, slice_columns), resamples=resamples // 2)
    checks = _sanity_checks(data, pipeline, predicted, suite.metrics, meta, version, resamples)
    evaluation = EvaluationData(
        model=version.name,
        version=version.version,
        family=meta.get("family", tags.get("keel.family", "?")),
        task=plan.task,
        metric=metric,
        classes=data.classes,
        suite=suite,
        slices=slices,
        checks=checks,
        samples=_samples(data, test, predicted, config.seed),
        y=y,
        predicted=predicted,
        importance=_importance(pipeline, data, test, config.seed),
        curves=runs.curves(version.run_id),
        champion=_champion(project, registry, version, data, predicted, resamples),
        lineage={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        plan=meta.get("plan", {}).get("decisions", []),
        params=meta.get("params", {}),
        findings=[{"severity": f.severity, "message": f.message} for f in dataset.triage.findings],
        intended_use=project.config.evaluate.intended_use,
    )
    return _write(project, registry, version, evaluation)


def _run_meta(registry: MlflowRegistry, version: ModelVersion) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = registry.download(version.run_id, "keel/model_meta.json", Path(tmp))
        return json.loads(Path(folder).read_text())


def _slices(data: Prepared, rows: np.ndarray, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    kinds = {c.name: c.kind for c in data.schema.columns}
    unknown = [c for c in columns if c not in kinds]
    if unknown:
        raise ConfigError(
            f"keel.yaml's evaluate.slices names column(s) {', '.join(unknown)} that are not model inputs.",
            hint=f"Input columns: {', '.join(kinds)}.",
        )
    return {c: slice_groups(data.x[c][rows], kinds[c] == NUMERIC) for c in columns}


def _sanity_checks(
    data: Prepared,
    pipeline: Any,
    predicted: np.ndarray,
    metrics: dict[str, float],
    meta: dict[str, Any],
    version: ModelVersion,
    resamples: int,
) -> list[SanityCheck]:
    plan, y = data.plan, data.y[data.test]
    metric, value = plan.metric, metrics[plan.metric]
    checks = []
    suspicious = {
        k: v for k, v in metrics.items() if k in ("roc_auc", "accuracy", "f1_macro", "r2") and v > LEAKAGE_SCORE
    }
    text = [c.name for c in data.schema.columns if c.kind == TEXT]
    if suspicious and text:  # no single column to blame: text tasks can be this easy (spam)
        named = ", ".join(f"{k} {v:.4f}" for k, v in suspicious.items())
        checks.append(
            SanityCheck(
                "leakage",
                "warn",
                f"{named} above {LEAKAGE_SCORE} on held-out rows from free text ({', '.join(text)}): an easy task, "
                "or the label written in the text; read the spot-check rows, and the duplicates `keel analyze` lists",
            )
        )
    elif suspicious:
        named = ", ".join(f"{k} {v:.4f}" for k, v in suspicious.items())
        checks.append(
            SanityCheck(
                "leakage",
                "fail",
                f"{named} above {LEAKAGE_SCORE} on held-out rows: suspect a leaked feature; see `keel analyze`",
            )
        )
    else:
        checks.append(SanityCheck("leakage", "pass", f"no score above {LEAKAGE_SCORE}"))
    versus = baseline_check(
        metric, plan.greater_is_better, y, predicted, training_prior(data), resamples=resamples, seed=data.config.seed
    )
    checks.append(SanityCheck(versus.name, "pass" if versus.passed else "fail", versus.detail))
    train_value = _metric_on(pipeline, data, data.train, metric)
    gap = (train_value - value) if plan.greater_is_better else (value - train_value) / max(abs(value), 1e-12)
    unit = "" if plan.greater_is_better else " (as a fraction of the hold-out score)"
    status = "warn" if gap > OVERFIT_GAP else "pass"
    detail = f"{metric} on training rows {train_value:.4f}, hold-out {value:.4f}: gap {gap:+.4f}{unit}"
    if meta.get("overfit_iteration"):
        status, detail = "warn", detail + f"; validation loss diverged after iteration {meta['overfit_iteration']}"
    checks.append(SanityCheck("overfitting", status, detail))
    parity = version.tags.get("keel.parity_max_diff")
    if parity is None:
        checks.append(SanityCheck("export parity", "warn", f"not exported yet: run `keel export {version.ref}`"))
    else:
        checks.append(SanityCheck("export parity", "pass", f"max |native - ONNX| {parity} at export"))
    checks.append(
        SanityCheck(
            "spot check", "info", f"{SPOT_CHECK_ROWS} random hold-out rows with their predictions are in the report"
        )
    )
    return checks


def _metric_on(pipeline: Any, data: Prepared, rows: np.ndarray, metric: str) -> float:
    from keel.evaluation.metrics import metric_value

    return metric_value(metric, data.y[rows], predict(pipeline, data, rows))


def _samples(data: Prepared, rows: np.ndarray, predicted: np.ndarray, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(rows), size=min(SPOT_CHECK_ROWS, len(rows)), replace=False))
    out = []
    for i in chosen:
        row: dict[str, Any] = {c.name: _plain(data.x[c.name][rows[i]]) for c in data.schema.columns}
        if data.classes:
            row["keel: actual"] = data.classes[int(data.y[rows[i]])]
            row["keel: predicted"] = data.classes[int(predicted[i].argmax())]
            row["keel: probability"] = float(predicted[i].max())
        else:
            row["keel: actual"], row["keel: predicted"] = float(data.y[rows[i]]), float(predicted[i])
        out.append(row)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.floating):
        return float(value) if math.isfinite(float(value)) else "(missing)"
    return "(missing)" if value == "" else str(value)


def _importance(pipeline: Any, data: Prepared, rows: np.ndarray, seed: int) -> dict[str, float]:
    """Permutation importance of each input column on the primary metric (any family, ensembles too)."""
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    chosen = rows if len(rows) <= IMPORTANCE_ROWS else np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False))
    frame = arrays_to_frame(data.schema, data.rows(chosen))
    scorer = SCORERS[data.plan.metric]
    if scorer == "roc_auc" and data.plan.task == "multiclass":
        scorer = "roc_auc_ovr"
    result = permutation_importance(
        pipeline, frame, data.y[chosen], scoring=scorer, n_repeats=3, random_state=seed, n_jobs=1
    )
    return {c.name: float(v) for c, v in zip(data.schema.columns, result.importances_mean, strict=True)}


def _champion(
    project: Project,
    registry: MlflowRegistry,
    version: ModelVersion,
    data: Prepared,
    predicted: np.ndarray,
    resamples: int,
) -> dict[str, Any] | None:
    """The current champion on the same hold-out rows, when it is another version of comparable data."""
    current = registry.aliases(version.name).get(CHAMPION)
    if current is None:
        return None
    if current == version.version:
        return {"note": "This version is the champion."}
    champion = registry.get(version.name, current)
    keys = ("keel.data_digest", "keel.seed", "keel.test_size", "keel.split")
    differs = [k.split(".", 1)[1] for k in keys if champion.tags.get(k) != version.tags.get(k)]
    if differs:
        return {
            "note": f"Champion {champion.ref} was trained with a different {', '.join(differs)}: its hold-out rows differ; `keel promote` compares them on the golden set."
        }
    theirs = predict(registry.load_pipeline(champion), data, data.test)
    plan, y = data.plan, data.y[data.test]
    check = improvement_check(
        plan.metric, plan.greater_is_better, y, theirs, predicted, min_improvement=0.0, resamples=resamples
    )
    return {"ref": champion.ref, "metrics": scalar_metrics(y, theirs), "comparison": check.detail}


def _write(
    project: Project, registry: MlflowRegistry, version: ModelVersion, evaluation: EvaluationData
) -> EvaluationResult:
    store = Store(project.store_path).ensure()
    stem = f"{version.name}-v{version.version}"
    report = atomic_write_bytes(store.reports_dir() / f"{stem}-evaluation.html", render_html(evaluation).encode())
    card = atomic_write_bytes(store.reports_dir() / f"{stem}-model-card.md", render_card(evaluation).encode())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / report.name).write_bytes(report.read_bytes())
        (folder / card.name).write_bytes(card.read_bytes())
        summary = {
            "suite": evaluation.suite.to_dict(),
            "slices": evaluation.slices.to_dict(),
            "checks": [c.__dict__ for c in evaluation.checks],
        }
        (folder / "evaluation.json").write_text(json.dumps(summary, indent=2, default=str))
        registry.log_artifacts(version.run_id, folder, "keel/evaluation")
    return EvaluationResult(evaluation, report, card)
