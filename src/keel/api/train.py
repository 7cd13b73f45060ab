"""``train``: baselines first, then a budgeted Optuna search per family, final refits, every run
tracked (nested under one parent run), the best on validation registered."""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.config import Engine, Project
from keel.data.snapshot import DatasetVersion, snapshot
from keel.data.triage import TriageOptions
from keel.errors import ConfigError, TrainingError
from keel.evaluation.gate import Check, baseline_check
from keel.evaluation.metrics import bootstrap_interval, is_better, metric_value
from keel.monitoring.slices import SLICES_KEY, slice_profile
from keel.planning.rules import MIN_FINE_TUNE_EPOCHS, Decision, Plan, baseline_verdict
from keel.profile import build_profile
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.schema import LOG_LABEL, LOG_SCORE
from keel.store import Store
from keel.tracking import manifest
from keel.tracking.base import Tracker
from keel.training.deadline import replay_keys
from keel.training.ensemble import FAMILY as ENSEMBLE
from keel.training.ensemble import assemble, blend, select_weights
from keel.training.families import FINE_TUNED, TEXT_FAMILIES, min_fit_seconds
from keel.training.fit import Candidate, predict, predictions_of, score, suite, warm_text_features
from keel.training.prepare import Prepared, prepare, training_prior
from keel.training.search import SearchResult, SearchSettings, TrialReport, refit, search
from keel.training.suspicion import CHECK as SUSPICION_CHECK
from keel.training.suspicion import Suspicion
from keel.training.suspicion import check as suspicion_check

Step = Callable[[str], None]
TrialHook = Callable[[TrialReport], None]
TRACKING_SHARE = 0.10  # of the budget: triage, refitting the baseline, bootstrap intervals, MLflow, registration
# (with LOGGING_SECONDS, `keel train --budget 20s` on the adult sample ended at 18.3 to 19.9 s in four runs;
# 0.15 alone ended at 20.8 to 23.5 s while logging cost 5 s, before skops stopped importing torch)
THRESHOLD_TAG = "keel.threshold"  # binary with a rare class: P(positive) at or above it is called positive
BASELINE_TAG = "keel.baseline_check"  # on a version: its hold-out score vs the majority/mean baseline
SUSPICION_TAG = "keel.suspicious"  # on a version: promotion refuses it (keel.registry's gate reads it)
LOGGING_SECONDS = 2.5  # logging the chosen model whatever the budget: skops, MLflow's checks (2.4 to 3.2 s here)
MAX_SLOWDOWN = 3.0


@dataclass
class TrainResult:
    """What ``train`` made: every candidate, the best one, and its registered version."""

    data: DatasetVersion
    plan: Plan
    candidates: list[Candidate]
    best: Candidate
    version: ModelVersion
    tracking_uri: str
    parent_run_id: str
    seconds: float
    # text: did the transformer candidates beat TF-IDF? (planning.rules.baseline_verdict)
    verdict: Decision | None = None
    suspicion: Suspicion | None = None  # a score above 0.99 and the drop-column evidence (training.suspicion)
    suspicion_allowed: bool = False  # --allow score.suspicious: promotion will not refuse it
    untrained: dict[str, str] = field(default_factory=dict)  # family -> why it could not train in its share


@dataclass(frozen=True)
class TrainOptions:
    """How this training run differs from keel.yaml's defaults."""

    allow: dict[str, str] | None = None
    resume: bool = False
    hypothesis: str = ""
    started: float | None = None  # time.monotonic() when the command started; the budget counts from it
    engine: Engine | None = None  # where the search trials run (None: here)


def train(
    project: Project,
    options: TrainOptions = TrainOptions(),
    *,
    tracker: Tracker | None = None,
    on_step: Step | None = None,
    on_trial: TrialHook | None = None,
) -> TrainResult:
    """Train every planned family within the budget and register the best one on validation.

    Refuses data whose triage found a blocking problem, unless ``options.allow`` maps that
    check's id (or its check name) to a reason, which is recorded with every run.
    """
    started = options.started if options.started is not None else time.monotonic()
    step = on_step or (lambda _message: None)
    cfg, store = project.config, Store(project.store_path).ensure()
    engine = options.engine or Engine("local")
    if engine.name == "ray":  # before any work: without the extra this is one line, at once
        from keel.engines.ray import require_ray

        require_ray()
    step("snapshotting and triaging the data")
    dataset = snapshot(project.data_path, store, TriageOptions.from_config(cfg))
    allowed = check_blocking(dataset, options.allow or {})
    data = prepare(dataset.load(), cfg, str(project.data_path), dataset.triage)
    check_budget_left(started, cfg.train.budget_seconds)
    if set(data.plan.families) & set(TEXT_FAMILIES):  # a missing extra or encoder is one line, before any work
        from keel.textmodels.models import require_text_extra, resolve_model

        require_text_extra()
        resolve_model(cfg.text.encoder)
    step("connecting to the tracking store")
    if tracker is None:
        from keel.tracking.mlflow_tracker import MlflowTracker

        tracker = MlflowTracker(project.tracking_uri, cfg.name, store.artifacts)
    tags = _lineage(project, dataset, data) | {"keel.hypothesis": options.hypothesis}
    if allowed:
        tags["keel.allowed_checks"] = json.dumps(allowed)
    parent = tracker.start_run("train", tags | {"keel.role": "parent"})
    try:
        settings = SearchSettings(
            f"sqlite:///{store.root.resolve() / 'optuna.db'}",
            f"{cfg.name}|{dataset.digest[:12]}|s{cfg.seed}",
            cfg.seed,
            engine.trial_cpus if engine.name == "ray" else cfg.train.threads,
            options.resume,
            cfg.train.max_trials,
            str(store.root.resolve() / "checkpoints"),
        )
        slow = slowdown()
        end = search_end(started, cfg.train.budget_seconds, slow)
        searcher = _searcher(engine, store)
        skipped: dict[str, str] = {}
        baselines = [  # first: they need no search, and what they cost is then out of the searches' time
            _final(family, None, data, settings, tracker, parent, tags, step, end)
            for family in data.plan.families
            if family == "baseline"
        ]
        with _engine_session(engine):
            logger = _trial_logger(tracker, parent, tags, on_trial)
            searched = _search_all(data, settings, end, step, logger, searcher, skipped, slow)
        for family in data.plan.families:
            result = searched.get(family)
            if result is not None and not result.completed and result.fitted is None and time.monotonic() >= end:
                skipped[family] = "budget too small for this family: no time was left for a fit"
        candidates = baselines + [
            _final(family, searched.get(family), data, settings, tracker, parent, tags, step, end)
            for family in data.plan.families
            if family not in skipped and family != "baseline"
        ]
        ensemble = _ensemble(searched, candidates, data, step)
        if ensemble is not None:
            _track_final(
                tracker,
                ensemble,
                data,
                parent,
                tags,
                "",
                {"weights": ensemble.params["weights"]}
                | {"members": {f: searched[f].best_params for f in ensemble.params["weights"]}}
                | {"rows": {c.family: c.rows for c in candidates if c.family in ensemble.params["weights"]}},
            )
            candidates.append(ensemble)
        untrained = _untrained(candidates, data.plan) | skipped
        best = _best([c for c in candidates if c.family not in untrained], data.plan)
        threshold = decision_threshold(best, data)
        step("checking the chosen model for a suspiciously good score")
        suspicion = suspicion_check(best, candidates, data, cfg.seed, cfg.train.threads)
        guard_tags = _suspicion_tags(suspicion, options.allow or {}, tracker, parent)
        scores = {c.family: c.validation_score for c in candidates}
        verdict = baseline_verdict(scores, data.plan.greater_is_better, untrained)
        if verdict is not None:
            tracker.log_params(parent, {"baseline_verdict": f"{verdict.value}: {verdict.rule}"})
        step(f"logging the {best.family} model")
        _log_model(tracker, best, data, tags | {"keel.family": best.family})
        tracker.log_params(parent, {"plan": json.dumps(data.plan.to_dict()), "best_family": best.family})
        step(f"registering {best.family} as a new version of {cfg.name}")
        extra = guard_tags | ({THRESHOLD_TAG: repr(threshold)} if threshold is not None else {})
        extra |= {BASELINE_TAG: json.dumps(_baseline_check(best, data).to_dict())}
        version = _register(project, best, tags | {"keel.family": best.family} | extra)
    except BaseException:
        tracker.end_run(parent, "FAILED")
        raise
    tracker.end_run(parent)
    return TrainResult(
        dataset,
        data.plan,
        candidates,
        best,
        version,
        project.tracking_uri,
        parent,
        time.monotonic() - started,
        verdict,
        suspicion,
        SUSPICION_CHECK in (options.allow or {}),
        untrained,
    )


def check_budget_left(started: float, budget: float) -> None:
    """One clear line, before any fit, when start-up, reading and triaging the data used the budget."""
    spent = time.monotonic() - started
    if spent < budget:
        return
    need = math.ceil(spent + LOGGING_SECONDS + 5)
    raise ConfigError(
        f"a budget of {budget:g} s is too small for any fit: starting, reading and triaging the data took "
        f"{spent:.1f} s of it.",
        hint=f"Give at least --budget {need}s (a useful search needs more).",
    )


def search_end(started: float, budget: float, slow: float = 1.0) -> float:
    """When the searches must stop for the command to end within ``budget`` seconds of ``started``:
    a share of the budget is kept for the refits and tracking, plus the fixed cost of logging the
    chosen model times ``slow`` (``slowdown()``: other work on the machine slows MLflow's logging
    as much, 2.5 s quiet and 4.5 s with every core busy here), but never more than half the
    budget."""
    return started + budget - min(budget / 2, budget * TRACKING_SHARE + LOGGING_SECONDS * slow)


def slowdown(probe: float = 0.2) -> float:
    """How much slower than its own CPU time this process runs now, between 1 and ``MAX_SLOWDOWN``:
    a busy loop of ``probe`` seconds (scheduling slices make shorter ones noisy), against the CPU time its thread got. About 1 on a
    quiet machine and 2.1 to 2.6 with a busy loop on each of the 2 cores here. (Wall over CPU time since
    launch was biased by imports waiting on the disk: 2 on a quiet machine, which starved LoRA.)"""
    wall_start, cpu_start = time.perf_counter(), time.thread_time()
    while time.perf_counter() - wall_start < probe:
        pass
    cpu = time.thread_time() - cpu_start
    return min(MAX_SLOWDOWN, max(1.0, probe / cpu)) if cpu > 0 else MAX_SLOWDOWN


def _untrained(candidates: list[Candidate], plan: Plan) -> dict[str, str]:
    """Fine-tuned families that did not train meaningfully in their share of the budget: fewer than
    ``MIN_FINE_TUNE_EPOCHS`` epochs, or a validation score no better than the baseline's. They are
    reported as not trained, never chosen, and no evidence in the TF-IDF verdict."""
    baseline = next((c.validation_score for c in candidates if c.family == "baseline"), float("nan"))
    out = {}
    for c in candidates:
        if c.family not in FINE_TUNED:
            continue
        epochs = float(getattr(c.pipeline.steps[-1][1], "epochs_run_", MIN_FINE_TUNE_EPOCHS) or 0.0)
        if epochs < MIN_FINE_TUNE_EPOCHS:
            out[c.family] = f"{epochs:.2f} epochs (< {MIN_FINE_TUNE_EPOCHS}): budget too small for this family"
        elif math.isfinite(baseline) and not is_better(c.validation_score, baseline, plan.greater_is_better):
            out[c.family] = (
                f"validation {c.validation_score:.4f}, no better than the baseline's {baseline:.4f}: budget too "
                "small for this family"
            )
    return out


def decision_threshold(best: Candidate, data: Prepared) -> float | None:
    """For a rare positive class (the plan's metric is average precision): the probability cut that
    maximises F1 on the validation rows (out-of-fold rows when cross-validating is not kept, so the
    training rows' predictions then), with precision, recall and F1 at it on the test rows added to
    the candidate's metrics. None for other plans."""
    if data.plan.metric != "average_precision" or best.test_predictions is None:
        return None
    rows = data.valid if data.valid is not None else data.search_train
    score, y = predict(best.pipeline, data, rows)[:, 1], data.y[rows]
    threshold = best_f1_threshold(y, score)
    called = best.test_predictions[:, 1] >= threshold
    truth = data.y[data.test] == 1
    tp = float(np.sum(called & truth))
    precision = tp / max(1.0, float(called.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    best.metrics |= {
        "threshold": threshold,
        "precision_at_threshold": precision,
        "recall_at_threshold": recall,
        "f1_at_threshold": 2 * precision * recall / max(precision + recall, 1e-12),
    }
    return threshold


def best_f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score at or above which calling rows positive gives the best F1 (ties: the higher cut)."""
    order = np.argsort(-score, kind="mergesort")
    ranked, hits = score[order], (y[order] == 1).astype(np.float64)
    tp = np.cumsum(hits)
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each distinct score
    precision, recall = tp[last] / (last + 1), tp[last] / max(tp[-1], 1.0)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(ranked[last][int(np.argmax(f1))])


def _baseline_check(best: Candidate, data: Prepared) -> Check:
    """The chosen model against the majority/mean baseline on the test rows (``keel promote``
    refuses a version that fails it)."""
    predicted = best.test_predictions
    if predicted is None:
        predicted = predict(best.pipeline, data, data.test)
    plan = data.plan
    return baseline_check(
        plan.metric,
        plan.greater_is_better,
        data.y[data.test],
        predicted,
        training_prior(data),
        resamples=data.config.guard.resamples,
        seed=data.config.seed,
    )


def _suspicion_tags(
    suspicion: Suspicion | None, allow: dict[str, str], tracker: Tracker, parent: str
) -> dict[str, str]:
    """The version tags that make ``keel promote`` refuse a suspiciously good model (not text, not allowed)."""
    if suspicion is None:
        return {}
    tracker.log_params(parent, {"suspicious_score": suspicion.message()[:500]})
    if suspicion.text:
        return {}
    if SUSPICION_CHECK in allow:
        return {SUSPICION_TAG: json.dumps(suspicion.to_dict() | {"allowed": allow[SUSPICION_CHECK]})}
    return {SUSPICION_TAG: json.dumps(suspicion.to_dict())}


def check_blocking(dataset: DatasetVersion, allow: dict[str, str]) -> dict[str, str]:
    """The allowed blocking findings (id -> reason); TrainingError for any other one.
    ``score.suspicious`` is always known: it is checked after training (``keel.training.suspicion``)."""
    blocking = dataset.triage.blocking
    known = {f.id for f in blocking} | {f.check for f in blocking} | {SUSPICION_CHECK}
    unknown = [a for a in allow if a not in known]
    if unknown:
        listed = ", ".join(sorted(f.id for f in blocking)) or "none"
        raise ConfigError(f"--allow {unknown[0]} matches no blocking finding of this data (blocking: {listed}).")
    if any(not reason.strip() for reason in allow.values()):
        raise ConfigError("--allow needs --reason '...': the override is recorded with the runs.")
    allow = {k: v for k, v in allow.items() if k != SUSPICION_CHECK}
    refused = [f for f in blocking if f.id not in allow and f.check not in allow]
    if refused:
        first = refused[0]
        more = f" ({len(refused) - 1} more blocking finding(s))" if len(refused) > 1 else ""
        raise TrainingError(
            f"training refused: {first.message}{more}",
            hint=f"Fix the data or drop the column in keel.yaml; or override with "
            f"--allow {first.id} --reason '...'. `keel analyze` lists every finding.",
        )
    return {f.id: allow.get(f.id, allow.get(f.check, "")) for f in blocking}


def _searcher(engine: Engine, store: Store) -> Callable[..., SearchResult]:
    """``search`` for the local engine; on Ray, the same search with its trials on Ray Tune."""
    if engine.name != "ray":
        return search
    from keel.engines.ray_search import search as ray_search

    def on_ray(*args: Any) -> SearchResult:
        return ray_search(*args, engine=engine, store=store.root)

    return on_ray


def _engine_session(engine: Engine) -> Any:
    """Ray connected (or started) for the search, on the Ray engine; nothing locally."""
    import contextlib

    if engine.name != "ray":
        return contextlib.nullcontext()
    from keel.engines.ray import connected

    return connected(engine)


def _search_all(
    data: Prepared,
    settings: SearchSettings,
    end: float,
    step: Step,
    on_trial: TrialHook,
    run_search: Callable[..., SearchResult] = search,
    not_trained: dict[str, str] | None = None,
    slow: float = 1.0,
) -> dict[str, SearchResult]:
    """Share the time until ``end`` between the families' searches (a fine-tuned family's share is
    kept for its one fit, last). No time is set aside for refits on every row: the search's own
    fit of the best trial is the final model, and the refit runs only if it ends by ``end``
    (``training.search.refit``): more families searched beat 15% more rows. A family
    whose share could not hold even its shortest fit (``training.families.min_fit_seconds``
    times ``slow``, the machine's measured slowdown) goes into ``not_trained`` and its share to
    the others, the costliest first.
    """
    not_trained = {} if not_trained is None else not_trained
    families = [f for f in data.plan.families if f != "baseline"]
    results: dict[str, SearchResult] = {}
    reserved = 0.0
    rows, folds = len(data.search_train), 1 if data.valid is not None else 4
    for i, family in enumerate(families):
        now = time.monotonic()
        pending = [f for f in families[i:] if f not in not_trained]
        available = end - now - reserved
        need = {f: min_fit_seconds(f, rows, folds) * slow for f in pending}
        while pending and max(0.0, available) / len(pending) < max(need[f] for f in pending):
            dropped = max(pending, key=lambda f: need[f])  # its share goes to the families that can fit
            pending.remove(dropped)
            not_trained[dropped] = (
                f"budget too small for this family: one fit on {rows:,} rows needs about {need[dropped]:.1f} s here, "
                f"more than its share of the {max(0.0, available):.1f} s left"
            )
        if family not in pending:
            continue
        share = now + max(0.0, available) / len(pending)
        if family in FINE_TUNED:  # not searched: its share is kept for its one fit, last
            reserved += share - now
            continue
        if family == "embeddings":
            step("embedding the texts")
            why = warm_text_features(family, data, share)
            if why:
                not_trained[family] = why
                continue
        step(f"searching {family}")
        results[family] = run_search(family, data, data.valid, data.search_train, share, settings, on_trial)
    return results


def _final(
    family: str,
    searched: SearchResult | None,
    data: Prepared,
    settings: SearchSettings,
    tracker: Tracker,
    parent: str,
    tags: dict[str, str],
    step: Step,
    end: float | None = None,
) -> Candidate:
    """Refit the family's best parameters, score it on the test rows, track it as a child run
    (a fine-tuned family's one fit stops at ``end``)."""
    step(f"fine-tuning {family}" if family in FINE_TUNED else f"refitting {family}")
    params = searched.best_params if searched else {}
    if searched is not None and searched.rounds:  # cross-validated booster: its mean early-stopped rounds
        params = params | {"cv_rounds": searched.rounds}
    kept = searched.fitted if searched else None
    candidate = refit(family, params, data, data.search_train, data.valid, settings, end, kept=kept)
    _score_test(candidate, data)
    searched_score = searched.best_value if searched else float("nan")
    candidate.validation_score = searched_score if math.isfinite(searched_score) else _validation(candidate, data)
    candidate.trials = searched.trials if searched else 0
    candidate.cut_trials = searched.cut if searched else 0
    recorded = params | replay_keys(candidate.params)
    step(f"tracking {family}")
    _track_final(tracker, candidate, data, parent, tags, searched.study if searched else "", recorded)
    return candidate


def _track_final(
    tracker: Tracker,
    candidate: Candidate,
    data: Prepared,
    parent: str,
    tags: dict[str, str],
    study: str,
    params: dict[str, Any],
) -> None:
    """A final run with the manifest ``keel reproduce`` rebuilds it from (``params``: what refit takes)."""
    final_tags = tags | {"mlflow.parentRunId": parent, "keel.family": candidate.family, "keel.role": "final"}
    manifest_tags = {
        "keel.study": study,
        "keel.params": json.dumps(params),
        "keel.config": data_config_json(data),
        "keel.rows": candidate.rows,
    }
    _track(tracker, candidate, final_tags | manifest_tags)


def _ensemble(
    searched: dict[str, SearchResult], candidates: list[Candidate], data: Prepared, step: Step
) -> Candidate | None:
    """The weighted ensemble of the final pipelines, when selection on validation keeps two or more."""
    predictions = {  # text encoders are left out: an ensemble is exported as one scikit-learn graph
        f: r.predictions for f, r in searched.items() if r.predictions is not None and f not in TEXT_FAMILIES
    }
    if not data.config.train.ensemble or len(predictions) < 2:
        return None
    rows = data.search_train if data.valid is None else data.valid
    plan = data.plan
    weights = select_weights(predictions, data.y[rows], plan.metric, plan.greater_is_better)
    if len(weights) < 2:
        return None
    step(f"weighing an ensemble of {', '.join(weights)}")
    finals = {c.family: c for c in candidates}
    model = assemble([(f, finals[f].pipeline, w) for f, w in weights.items()], plan.classification)
    candidate = Candidate(ENSEMBLE, model, {}, sum(finals[f].fit_seconds for f in weights), {"weights": weights})
    _score_test(candidate, data)
    candidate.validation_score = metric_value(plan.metric, data.y[rows], blend(predictions, weights))
    return candidate


def data_config_json(data: Prepared) -> str:
    """The effective project config (what reproduce needs), as recorded on every final run."""
    return data.config.model_dump_json(exclude={"store", "tracking_uri"})


def _score_test(candidate: Candidate, data: Prepared) -> None:
    """The metric suite on the test rows, with a bootstrap interval of the plan's metric, from one
    prediction, which the candidate keeps (a fine-tuned transformer takes seconds to score the
    test rows on a CPU)."""
    predicted = predict(candidate.pipeline, data, data.test)
    low, high = bootstrap_interval(data.plan.metric, data.y[data.test], predicted)
    metric = data.plan.metric
    candidate.metrics = suite(data, data.test, predicted) | {f"{metric}_ci_low": low, f"{metric}_ci_high": high}
    candidate.test_predictions = predicted


def _validation(candidate: Candidate, data: Prepared) -> float:
    """A validation score for a candidate the search did not score (the baseline, or no trial finished)."""
    if data.valid is None:
        return candidate.metrics[data.plan.metric]  # small data: only the test rows are left out of fitting
    return score(candidate.pipeline, data, data.valid)[data.plan.metric]


def _trial_logger(tracker: Tracker, parent: str, tags: dict[str, str], forward: TrialHook | None) -> TrialHook:
    """Tracking attached by callback: every trial becomes a nested MLflow run."""

    def log(report: TrialReport) -> None:
        run = tracker.start_run(
            f"{report.family} trial {report.number}",
            {
                "mlflow.parentRunId": parent,
                "keel.role": "trial",
                "keel.family": report.family,
                "keel.trial": str(report.number),
                "keel.state": report.state,
                "keel.data_digest": tags["keel.data_digest"],
            },
        )
        tracker.log_params(run, report.params)
        metrics = {"seconds": report.seconds}
        if report.value is not None and math.isfinite(report.value):
            metrics["validation_score"] = report.value
        if report.iterations:
            metrics["iterations"] = float(report.iterations)
        tracker.log_metrics(run, metrics)
        tracker.end_run(run, {"complete": "FINISHED", "pruned": "KILLED"}.get(report.state, "FAILED"))
        if forward is not None:
            forward(report)

    return log


def _lineage(project: Project, dataset: DatasetVersion, data: Prepared) -> dict[str, str]:
    cfg = project.config
    tags = manifest.environment() | {
        "keel.data_digest": dataset.digest,
        "keel.data_source": dataset.source,
        "keel.seed": str(cfg.seed),
        "keel.test_size": str(cfg.split.test_size),
        "keel.task": data.plan.task,
        "keel.metric": data.plan.metric,
        "keel.greater_is_better": str(data.plan.greater_is_better).lower(),
        "keel.target": cfg.target,
        "keel.split": next((d.value for d in data.plan.decisions if d.name == "split"), ""),
    }
    commit = manifest.git_commit(project.root)
    if commit:
        tags["keel.git_commit"] = commit
    return tags


def _track(tracker: Tracker, candidate: Candidate, tags: dict[str, str]) -> None:
    """A final run per family: parameters, test and validation metrics, training curves."""
    run_id = tracker.start_run(candidate.family, tags)
    candidate.run_id = run_id
    try:
        tracker.log_params(run_id, {"family": candidate.family, **candidate.params})
        metrics = candidate.metrics | {"fit_seconds": candidate.fit_seconds, "trials": float(candidate.trials)}
        if math.isfinite(candidate.validation_score):
            metrics["validation_score"] = candidate.validation_score
        if candidate.iterations:
            metrics["iterations"] = float(candidate.iterations)
        if candidate.overfit_iteration:
            metrics["overfit_iteration"] = float(candidate.overfit_iteration)
        tracker.log_metrics(run_id, metrics)
        if candidate.curves:
            tracker.log_curves(run_id, {f"{name}_loss": values for name, values in candidate.curves.items()})
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id)


def _log_model(tracker: Tracker, candidate: Candidate, data: Prepared, tags: dict[str, str]) -> None:
    """The chosen model and what export and reproduction need, on its final run."""
    candidate.model_uri = tracker.log_model(candidate.run_id, candidate.pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        _write_run_files(Path(tmp), candidate, data, tags)
        tracker.log_artifacts(candidate.run_id, Path(tmp), "keel")


def _write_run_files(folder: Path, candidate: Candidate, data: Prepared, tags: dict[str, str]) -> None:
    """What export and reproduction need beside the model: schema, meta, hold-out rows, profile."""
    import pyarrow.parquet as pq

    meta = {
        "family": candidate.family,
        "params": candidate.params,
        "iterations": candidate.iterations,
        "overfit_iteration": candidate.overfit_iteration,
        "target": tags["keel.target"],
        "classes": data.classes,
        "metrics": candidate.metrics,
        "validation_score": candidate.validation_score,
        "threshold": candidate.metrics.get("threshold"),
        "prior": training_prior(data),  # the majority/mean baseline (the promotion gate's baseline check)
        "plan": data.plan.to_dict(),
        "lineage": tags,
    }
    (folder / "model_meta.json").write_text(json.dumps(meta, indent=2, default=str))
    (folder / "schema.json").write_text(json.dumps(data.schema.to_dict(), indent=2))
    (folder / "requirements.txt").write_text(manifest.frozen_requirements())
    pq.write_table(_holdout_table(data), folder / "holdout.parquet")
    (folder / "profile.json").write_text(json.dumps(_profile(candidate, data)))


def _holdout_table(data: Prepared) -> Any:
    """The test rows: canonical inputs, the encoded target, and every other column as it came
    (the golden set is frozen from this table, and a later challenger may use columns that
    this model's triage left out, e.g. ones that were constant until then)."""
    import pyarrow as pa

    table = pa.table(data.rows(data.test) | {"keel_target": data.y[data.test]})
    context = data.context_rows(data.test)
    for name in context.columns:
        values = context[name]
        try:
            column = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
            column = pa.array(values.astype("string"), from_pandas=True)
        table = table.append_column(str(name), column)
    return table


def _profile(candidate: Candidate, data: Prepared) -> dict[str, Any]:
    """Reference profile: training inputs, and predictions on the hold-out rows."""
    kinds = {c.name: c.kind for c in data.schema.columns}
    inputs = build_profile(data.rows(data.train), kinds)
    predicted = predictions_of(candidate.pipeline, data, data.test, candidate.test_predictions)
    out_kinds = {name: ("categorical" if name == LOG_LABEL else "numeric") for name in predicted}
    profile = inputs | build_profile(predicted, out_kinds)
    slices = {c: (kinds[c], data.x[c][data.test]) for c in data.config.evaluate.slices if c in kinds}
    if slices:  # per-slice shares and scores on the hold-out rows (only input columns reach the log)
        profile[SLICES_KEY] = slice_profile(slices, predicted[LOG_SCORE])
    return profile


def _best(candidates: list[Candidate], plan: Plan) -> Candidate:
    """The best on validation (never on the test rows, which only report)."""
    best = candidates[0]
    for candidate in candidates[1:]:
        if is_better(candidate.validation_score, best.validation_score, plan.greater_is_better):
            best = candidate
    if not math.isfinite(best.metrics.get(plan.metric, float("nan"))):
        raise TrainingError(f"no candidate has a valid {plan.metric}; nothing was registered.")
    return best


def _register(project: Project, best: Candidate, tags: dict[str, str]) -> ModelVersion:
    registry = MlflowRegistry(project.tracking_uri)
    metric = tags["keel.metric"]
    keep = (
        "keel.data_digest",
        "keel.seed",
        "keel.test_size",
        "keel.task",
        "keel.metric",
        "keel.greater_is_better",
        "keel.target",
        "keel.family",
        "keel.version",
        "keel.git_commit",
        "keel.split",
        SUSPICION_TAG,
        THRESHOLD_TAG,
    )
    version_tags = {k: tags[k] for k in keep if k in tags} | {"keel.metric_value": repr(best.metrics[metric])}
    return registry.register(project.name, best.model_uri, best.run_id, version_tags)
