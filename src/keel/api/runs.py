"""``runs compare``, ``runs dead-end``, ``reproduce``: the experiment record, read back."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from keel.config import Project
from keel.errors import TrainingError
from keel.store import Store
from keel.tracking.runs import FinalRun, RunStore
from keel.training.ensemble import FAMILY as ENSEMBLE
from keel.training.ensemble import assemble
from keel.training.fit import score
from keel.training.prepare import prepare, prepare_recorded
from keel.training.search import SearchSettings, refit


@dataclass(frozen=True)
class Comparison:
    run: FinalRun
    baseline: float
    verdict: str


def compare(project: Project, limit: int = 50) -> list[Comparison]:
    """Every final run with its verdict against the baseline of the same training."""
    finals = RunStore(project.tracking_uri, project.name).finals(limit * 5)
    baselines = {r.parent_id: r.value for r in finals if r.family == "baseline"}
    return [
        Comparison(r, baselines.get(r.parent_id, float("nan")), _verdict(r, baselines.get(r.parent_id)))
        for r in finals
        if r.family != "baseline"
    ][:limit]


def dead_end(project: Project, run: str, why: str) -> str:
    """Record that the idea behind ``run`` was rejected, and why; returns the run id."""
    if not why.strip():
        from keel.errors import ConfigError

        raise ConfigError("--why needs a reason: it tells the next person why not to try this again.")
    store = RunStore(project.tracking_uri, project.name)
    found = store.find(run)
    store.mark_dead_end(found.info.run_id, why.strip())
    return str(found.info.run_id)


@dataclass(frozen=True)
class Reproduction:
    run_id: str
    family: str
    metric: str
    recorded: float
    reproduced: float

    @property
    def difference(self) -> float:
        return self.reproduced - self.recorded


def reproduce(project: Project, run: str) -> Reproduction:
    """Retrain a final run from its manifest (data snapshot, config, seed, parameters) and compare."""
    found = RunStore(project.tracking_uri, project.name).find(run)
    tags = found.data.tags
    if tags.get("keel.role") != "final" or "keel.config" not in tags:
        raise TrainingError(
            f"run {found.info.run_id[:8]} is not a final model run with a manifest.",
            hint="Reproduce a run listed by `keel runs compare`.",
        )
    _, data = prepare_recorded(Store(project.store_path), tags)
    settings = SearchSettings("", "", data.config.seed, data.config.train.threads)
    family, params = tags["keel.family"], json.loads(tags.get("keel.params", "{}"))

    def again(name: str, fitted: dict[str, Any], rows: str) -> Any:  # the final fit, on the recorded rows
        return refit(name, fitted, data, data.search_train, data.valid, settings, rows=rows).pipeline

    if family == ENSEMBLE:  # refit every member, then weigh them as recorded
        rows = params.get("rows", {})
        members = [
            (name, again(name, params["members"][name], rows.get(name, "all")), weight)
            for name, weight in params["weights"].items()
        ]
        pipeline = assemble(members, data.plan.classification)
    else:
        pipeline = again(family, params, tags.get("keel.rows", "all"))
    metric = tags["keel.metric"]
    recorded = float(found.data.metrics.get(metric, math.nan))
    return Reproduction(found.info.run_id, family, metric, recorded, score(pipeline, data, data.test)[metric])


def _verdict(run: FinalRun, baseline: float | None) -> str:
    if baseline is None or math.isnan(run.low):
        return "no baseline to compare"
    better = run.low > baseline if run.greater_is_better else run.high < baseline
    worse = run.high < baseline if run.greater_is_better else run.low > baseline
    return "beats the baseline" if better else ("worse than the baseline" if worse else "not distinguishable")


def plan(project: Project) -> tuple[Any, Any]:
    """The plan ``keel train`` would follow, and its compute estimate, without training."""
    from keel.data.snapshot import snapshot
    from keel.data.triage import TriageOptions
    from keel.planning.rules import estimate_compute
    from keel.schema import CATEGORICAL

    store = Store(project.store_path).ensure()
    dataset = snapshot(project.data_path, store, TriageOptions.from_config(project.config))
    data = prepare(dataset.load(), project.config, dataset.source, dataset.triage)
    encoded = sum(max(len(c.categories), 1) if c.kind == CATEGORICAL else 1 for c in data.schema.columns)
    return data.plan, estimate_compute(len(data.train), encoded, data.plan.families)


@dataclass(frozen=True)
class MemoryPlan:
    """``keel runs memory``: a transformer's GPU memory by part, and what fits a given GPU."""

    parameters: float
    parts: dict[str, float]  # bytes
    total: float  # bytes
    recommendation: str | None = None  # with a GPU size
    method: str | None = None  # the fine-tuning method keel train would pick (training modes)


def memory(
    params: str | None,
    model: str | None,
    precision: str,
    mode: str,
    batch: int,
    seq_len: int,
    vram: float | None = None,
) -> MemoryPlan:
    """The estimate for ``params`` (e.g. 7B) or a local ``model`` directory's parameter count."""
    from keel.errors import ConfigError
    from keel.planning.memory import decide_method, estimate, parse_parameters, recommend

    if (params is None) == (model is None):
        raise ConfigError("give either --params (e.g. 7B) or --model (a local model directory).")
    if model is not None:
        from keel.textmodels.llm import count_parameters
        from keel.textmodels.models import require_text_extra, resolve_model

        require_text_extra()
        count = float(count_parameters(str(resolve_model(model))))
    else:
        count = parse_parameters(str(params))
    result = estimate(count, precision, mode, batch, seq_len)
    if vram is None:
        return MemoryPlan(count, dict(result.parts), result.total)
    training = mode != "inference"
    advice = recommend(count, vram, training=training, batch=batch, seq_len=seq_len)
    method = decide_method(count, "auto", None, vram, batch, seq_len).method if training else None
    return MemoryPlan(count, dict(result.parts), result.total, advice, method)
