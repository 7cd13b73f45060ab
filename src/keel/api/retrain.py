"""``retrain``: a challenger from the newest data, through the same gate as ``keel promote``.

One run: check the cooldown; with ``trigger='drift'``, run the monitor and stop unless it
alerts; take the configured window of the data (``retrain.window_rows``, newest by the
time column); leave out every row of the frozen golden set (so the gate's golden score
stays a held-out score); train, export, and hand the version to ``promote`` with the
newest-labelled-window check added. The champion moves only if the gate passes; there is
no force here. Every decision is recorded by the registry like a manual one.

Schedule it with cron, for example every night at 02:00::

    0 2 * * * cd /srv/model && keel retrain --trigger drift >> .keel/retrain.log 2>&1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keel.api.models import export, promote
from keel.api.monitor import monitor
from keel.api.train import TrainOptions, train
from keel.config import Project
from keel.data.load import load_table
from keel.errors import ConfigError, DataError, MonitorError, RegistryError
from keel.registry.champion import CHAMPION, AliasChange, PromotionRefused
from keel.registry.champion import history as champion_history
from keel.registry.golden import TARGET as GOLDEN_TARGET
from keel.registry.golden import load as load_golden
from keel.registry.mlflow_registry import MlflowRegistry
from keel.store import Store

Step = Callable[[str], None]
TRIGGERS = ("schedule", "drift")


@dataclass(frozen=True)
class RetrainResult:
    action: str  # skipped | promoted | refused | awaiting approval
    reason: str
    champion: str | None  # the champion version after this run
    challenger: str | None = None
    change: AliasChange | None = None
    rows: int = 0  # rows in the training window, golden rows left out
    golden_excluded: int = 0
    golden_candidate: int = 0  # newest labelled rows kept out of training as the new golden set (--refresh-golden)
    monitor_report: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "change"}
        return out | {"decision": None if self.change is None else self.change.to_dict()}


def retrain(
    project: Project,
    *,
    data: Path | str | None = None,
    trigger: str = "schedule",
    on_step: Step | None = None,
    now: datetime | None = None,
    refresh_golden: bool | None = None,
) -> RetrainResult:
    """Train a challenger on the newest data and let the promotion gate decide (see module doc)."""
    started = time.monotonic()
    step = on_step or (lambda _message: None)
    if trigger not in TRIGGERS:
        raise ConfigError(f"--trigger {trigger!r} is not known.", hint=f"Use one of: {', '.join(TRIGGERS)}.")
    registry = MlflowRegistry(project.tracking_uri)
    registry.get(project.name)
    champion = registry.aliases(project.name).get(CHAMPION)
    if champion is None:
        raise RegistryError(
            f"model '{project.name}' has no champion to retrain against.",
            hint="Train, export and promote a first model: `keel train && keel export && keel promote`.",
        )
    waiting = _cooldown(champion_history(registry, project.name), project.config.retrain.cooldown_hours, now)
    if waiting:
        return RetrainResult("skipped", waiting, champion, seconds=time.monotonic() - started)
    report_path = None
    if trigger == "drift":
        step("checking the champion's prediction log for drift")
        try:
            report, path = monitor(project)
        except MonitorError as exc:
            return RetrainResult("skipped", f"no drift verdict: {exc}", champion, seconds=time.monotonic() - started)
        report_path = str(path)
        if not (report.alerting or any(w.alerting for w in report.windows)):
            reason = f"the monitor raised no alert over {report.rows:,} logged predictions ({path.name})"
            return RetrainResult("skipped", reason, champion, monitor_report=report_path)
    settings = project.config.retrain
    refresh = settings.refresh_golden if refresh_golden is None else refresh_golden
    step("taking the newest window of the data, golden rows left out")
    window, rows, excluded, candidate = _window_file(
        project, registry, Path(data) if data else project.data_path, refresh
    )
    budget = settings.budget_seconds or project.config.train.budget_seconds
    trained = train(
        project.with_data(window).with_budget(budget),
        TrainOptions(hypothesis=f"retrain ({trigger}): {rows:,} newest rows, {excluded:,} golden rows left out"),
        on_step=step,
    )
    version = trained.version
    step(f"exporting {version.ref}")
    export(project, version.ref, on_step=step)
    step(f"asking the gate: {version.ref} vs champion {project.name}@{champion}")
    common: dict[str, Any] = {
        "challenger": version.version,
        "rows": rows,
        "golden_excluded": excluded,
        "golden_candidate": 0 if candidate is None else len(candidate),
        "monitor_report": report_path,
    }
    try:
        change = promote(
            project,
            version.ref,
            reason=f"keel retrain --trigger {trigger}" + (" --refresh-golden" if refresh else ""),
            recent=True,
            golden_candidate=candidate,
            golden_source=f"the newest {0 if candidate is None else len(candidate):,} labelled rows of {data or project.data_path}",
            refusal_hint=f"The champion stays. `keel evaluate {version.ref}` shows the challenger in full; "
            f"to overrule the gate, `keel promote {version.ref} --force --reason '...'` (recorded).",
            hold=settings.approval == "required",
        )
    except PromotionRefused as refused:
        return RetrainResult(
            "refused", str(refused), champion, change=refused.change, seconds=time.monotonic() - started, **common
        )
    if change.action == "awaiting approval":
        reason = (
            f"{version.ref} passed every check and awaits approval (retrain.approval: required): "
            f"`keel approve {version.ref} --reason '...'` starts its rollout"
        )
        return RetrainResult(
            "awaiting approval", reason, champion, change=change, seconds=time.monotonic() - started, **common
        )
    reason = f"{version.ref} passed every check and is the champion (was {champion})"
    return RetrainResult(
        "promoted", reason, version.version, change=change, seconds=time.monotonic() - started, **common
    )


def _cooldown(events: list[dict[str, Any]], hours: float, now: datetime | None) -> str:
    """Why retraining must wait, or '' when it may run."""
    changes = [e for e in events if e.get("action") in ("promote", "rollback") and e.get("at")]
    if not changes or hours <= 0:
        return ""
    last = changes[-1]
    at = datetime.strptime(last["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    ready = at + timedelta(hours=hours)
    moment = now or datetime.now(UTC)
    if moment >= ready:
        return ""
    return (
        f"cooldown: the champion changed at {last['at']} ({last['action']} of version {last['version']}); "
        f"retraining waits {hours:g} h, until {ready.strftime('%Y-%m-%dT%H:%M:%SZ')} (retrain.cooldown_hours)"
    )


def _window_file(
    project: Project, registry: MlflowRegistry, source: Path, refresh: bool = False
) -> tuple[Path, int, int, Any]:
    """The newest ``retrain.window_rows`` rows of ``source`` without the golden set's rows,
    written to the store for training (and its snapshot); with the row counts, and, with
    ``refresh``, the newest labelled rows kept out of training as the candidate golden set."""
    frame = load_table(source)
    cfg = project.config
    if cfg.time_column and cfg.time_column in frame.columns:
        frame = frame.sort_values(cfg.time_column, kind="stable")
    if cfg.retrain.window_rows:
        frame = frame.tail(cfg.retrain.window_rows)
    store = Store(project.store_path).ensure()
    golden = load_golden(registry, store, project.name)
    excluded = 0
    if golden is not None:
        keep = ~_in_golden(frame, golden[0])
        excluded = int((~keep).sum())
        frame = frame[keep]
    candidate = None
    if refresh:
        frame, candidate = _golden_candidate(frame, cfg, 0 if golden is None else len(golden[0]))
    if len(frame) == 0:
        raise DataError(
            f"no rows left to retrain on from {source} after taking the window and leaving out the golden set.",
            hint="Pass newer data with --data, or raise retrain.window_rows in keel.yaml.",
        )
    path = store.root / "retrain" / f"{project.name}-{time.strftime('%Y%m%dT%H%M%S')}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path, len(frame), excluded, candidate


def _golden_candidate(frame: Any, cfg: Any, current: int) -> tuple[Any, Any]:
    """(the rows left to train on, the newest labelled rows as a golden set): as many as
    ``retrain.golden_rows`` (default: the current golden set's size), at most a quarter of the
    labelled rows, at least 50."""
    labelled = frame[frame[cfg.target].notna()]
    wanted = cfg.retrain.golden_rows or current or len(labelled) // 5
    size = min(wanted, len(labelled) // 4)
    if size < 50:
        raise DataError(
            f"--refresh-golden needs at least 50 newest labelled rows to spare; the window has {len(labelled):,} "
            "labelled rows.",
            hint="Pass more labelled data with --data, or retrain without --refresh-golden.",
        )
    chosen = labelled.tail(size)
    rest = frame.drop(index=chosen.index)
    golden = chosen.drop(columns=[cfg.target]).reset_index(drop=True)
    target = chosen[cfg.target].reset_index(drop=True)
    from keel.planning.rules import decide_task

    regression = decide_task(labelled[cfg.target], cfg.task).value == "regression"
    golden[GOLDEN_TARGET] = target.astype("float64") if regression else target.astype(str)
    return rest, golden


def _in_golden(frame: Any, golden: Any) -> Any:
    """Rows of ``frame`` whose inputs equal a golden row's (numbers compared as float32, as the
    models see them; categories as text)."""
    import pandas as pd

    columns = [c for c in golden.columns if c != GOLDEN_TARGET and c in frame.columns]
    if not columns:
        return pd.Series(False, index=frame.index).to_numpy()

    def canonical(part: Any) -> Any:
        out = {}
        for c in columns:
            numeric = pd.api.types.is_numeric_dtype(golden[c]) and not pd.api.types.is_bool_dtype(golden[c])
            out[c] = (
                pd.to_numeric(part[c], errors="coerce").astype("float32")
                if numeric
                else part[c].astype("string").fillna("").astype(str)
            )
        return pd.DataFrame(out)

    seen = set(pd.util.hash_pandas_object(canonical(golden), index=False).tolist())
    return pd.util.hash_pandas_object(canonical(frame), index=False).isin(seen).to_numpy()
