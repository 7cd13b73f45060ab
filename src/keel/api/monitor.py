"""``monitor``: the champion's prediction log against its reference profile, per time window."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keel.api.serving import load_alias
from keel.config import Project
from keel.errors import ConfigError, MonitorError
from keel.monitoring.domain import DomainLimits, domain_check
from keel.monitoring.drift import DriftReport, Thresholds, family_alpha, report
from keel.monitoring.embedding import EmbeddingLimits, text_embedding_drift
from keel.monitoring.log import read_log
from keel.monitoring.performance import LOG_TRUTH, Target, performance
from keel.monitoring.slices import SLICES_KEY, slice_drift
from keel.profile import load_profile
from keel.schema import LOG_ID, LOG_TIME
from keel.store import Store, atomic_write_bytes, atomic_write_json

WINDOW = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def monitor(
    project: Project,
    *,
    alias: str = "champion",
    since: str | None = None,
    until: str | None = None,
    window: str | None = None,
    labels: Path | str | None = None,
) -> tuple[DriftReport, Path]:
    """Drift of every input column and the predictions over [since, until) (default: the whole
    log), and, with ``window`` (``30m``, ``6h``, ``1d``, ``1w``), of each window in it; the
    report is saved as JSON and as HTML with plots beside it (same name, ``.html``). Windows
    with fewer than ``monitor.min_rows`` rows are skipped.

    Each report also has the domain classifier's verdict (bundles with a reference sample)
    and the label-free performance estimate; with ``labels`` (a CSV or Parquet file of the
    ``serving.id_column`` and the target), the measured metric with its interval, joined by id.
    """
    start, end = _instant(since, "--since"), _instant(until, "--until")  # bad options fail first
    step = _window(window)
    store = Store(project.store_path)
    bundle = load_alias(store, project.name, alias)
    truth = read_labels(project, labels) if labels is not None else None
    table = read_log(store.predictions_dir(project.name), bundle.version)
    if table is not None:
        table = _between(table, start, end)
    rows = 0 if table is None else table.num_rows
    settings = project.config.monitor
    if rows < settings.min_rows:
        span = f" between {since or 'the start'} and {until or 'now'}" if since or until else ""
        raise MonitorError(
            f"only {rows} predictions of {bundle.model}@{bundle.version} are logged{span}; drift needs at least "
            f"{settings.min_rows}.",
            hint="Send more traffic to the server, widen --since/--until, or lower monitor.min_rows in keel.yaml.",
        )
    if truth is not None:
        table = join_labels(table, truth, project.config.serving.id_column or "")
    profile = load_profile(bundle.profile)
    importance = bundle.metadata.get("importance")  # bundles exported before it was measured: None
    reference = _reference(bundle)
    kinds = {c.name: c.kind for c in bundle.schema.columns}
    parts = []
    if step is not None:
        parts = [(lo, part) for lo, part in _windows(table, step) if part.num_rows >= settings.min_rows]
    tests = _tests_per_report(bundle, profile, table, reference is not None, truth is not None, settings)
    alert_alpha = family_alpha(settings.false_alarm_rate, tests * (1 + len(parts)))
    limits = Thresholds(
        settings.psi_warn,
        settings.psi_alert,
        settings.min_psi,
        settings.alpha,
        settings.prediction_sigmas,
        min(alert_alpha, settings.alpha),
    )
    target = target_of(project, bundle, limits.alert_alpha)
    domain = DomainLimits(
        settings.domain_auc_drift,
        settings.domain_auc_alert,
        settings.alpha,
        settings.domain_rows,
        project.config.seed,
        limits.alert_alpha,
    )
    slices = bundle.profile.get(SLICES_KEY, {})
    meaning = EmbeddingLimits(
        settings.embedding_distance_drift,
        settings.embedding_distance_alert,
        settings.alpha,
        min(settings.domain_rows, 2000),
        project.config.seed,
        limits.alert_alpha,
    )
    encoder = bundle.metadata.get("encoder")  # transformer bundles: their own encoder

    def one(part: Any, lo: datetime | None, hi: datetime | None) -> DriftReport:
        drift = report(bundle.model, bundle.version, profile, part, limits, _iso(lo), _iso(hi), importance)
        embedded: list[Any] = []
        note = ""
        if settings.embedding_drift:
            embedded, note = text_embedding_drift(reference, part, kinds, encoder, meaning)
        classified = None if reference is None else domain_check(reference, part, kinds, domain)
        return replace(
            drift,
            performance=performance(target, part, shifted=_strong_shift(drift, classified)),
            domain=classified,
            slices=slice_drift(slices, part, target, settings.prediction_sigmas),
            embeddings=embedded,
            embedding_note=note,
        )

    overall = one(table, start, end)
    windows = [one(part, lo, lo + step) for lo, part in parts] if step is not None else []
    result = replace(overall, windows=windows, tests=tests * (1 + len(parts)), alert_alpha=limits.alert_alpha)
    path = store.reports_dir() / f"monitor-{bundle.model}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    atomic_write_json(path, result.to_dict())
    from keel.monitoring.report import render_html

    page = render_html(result, settings.min_psi, settings.prediction_sigmas)
    atomic_write_bytes(path.with_suffix(".html"), page.encode())
    return result, path


def notify(url: str, result: DriftReport, report_path: Path) -> str | None:
    """POST a JSON summary of an alerting report to ``url``; the error text, or None when delivered."""
    import httpx

    alerting = [w for w in (result.windows or [result]) if w.alerting]
    payload: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "rows": result.rows,
        "report": str(report_path),
        "false_alarm_rate": result.false_alarm_rate,
        "alerts": [
            {
                "start": w.start,
                "end": w.end,
                "columns": [{"column": c.column, "psi": c.psi, "status": c.status} for c in w.alerts],
                "prediction": None
                if w.prediction is None
                else {"sigmas": w.prediction.sigmas, "alert": w.prediction.alert},
                "domain": None if w.domain is None else {"auc": w.domain.auc, "status": w.domain.status},
                "decayed": []
                if w.performance is None
                else [
                    {"metric": m.metric, "value": m.value, "reference": m.reference}
                    for m in w.performance.watched
                    if m.decayed
                ],
            }
            for w in alerting
        ],
    }
    try:
        response = httpx.post(url, json=payload, timeout=10)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code < 300 else f"HTTP {response.status_code}"


def _tests_per_report(
    bundle: Any, profile: dict[str, Any], table: Any, domain: bool, labels: bool, settings: Any
) -> int:
    """How many alerting tests one report runs: each profiled input column in the log, the
    prediction chart, the domain classifier, text embedding drift, and each watched metric."""
    from keel.evaluation.watched import watched_names
    from keel.schema import LOG_LABEL, LOG_SCORE, TEXT

    columns = [c for c in profile if c not in (LOG_SCORE, LOG_LABEL) and c in table.column_names]
    texts = [c for c in bundle.schema.columns if c.kind == TEXT] if settings.embedding_drift else []
    decay = len(watched_names(bundle.metadata["task"], bundle.metadata["metric"])) if labels else 0
    return len(columns) + 1 + int(domain) + len(texts) + decay


def _strong_shift(drift: DriftReport, domain: Any) -> str:
    """Why the window's inputs moved too far for a label-free estimate ('' when they did not)."""
    if domain is not None and domain.status == "alert":
        return f"the domain classifier tells the window from the hold-out (AUC {domain.auc:.3f})"
    if drift.alerts:
        return f"column(s) {', '.join(c.column for c in drift.alerts[:3])} moved (PSI >= alert)"
    return ""


def target_of(project: Project, bundle: Any, alert_alpha: float) -> Target:
    meta = bundle.metadata
    from keel.planning.rules import LOWER_IS_BETTER

    measured = meta.get("reference_performance") or {}
    return Target(
        task=meta["task"],
        metric=meta["metric"],
        greater_is_better=meta["metric"] not in LOWER_IS_BETTER,
        classes=meta.get("classes"),
        reference={k: float(v) for k, v in meta.get("metrics", {}).items() if isinstance(v, int | float)},
        estimated_reference=meta.get("estimated_reference") or {},
        drop=project.config.monitor.performance_drop,
        resamples=project.config.guard.resamples,
        seed=project.config.seed,
        threshold=meta.get("threshold"),
        measured_reference=measured.get("watched", {}),
        estimate_error=measured.get("estimate_error", {}),
        alert_alpha=alert_alpha,
        max_estimate_error=project.config.monitor.max_estimate_error,
    )


def _reference(bundle: Any) -> Any:
    """The bundle's held-out sample as a pyarrow Table (None for bundles without one)."""
    import pyarrow.parquet as pq

    file = bundle.reference_file
    return None if file is None else pq.read_table(file)


def read_labels(project: Project, path: Path | str) -> Any:
    """The labels file as a table of (id, target), checked: the id column configured and
    present, the target present, every id once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from keel.data.load import load_table

    id_column = project.config.serving.id_column
    target = project.config.target
    if not id_column:
        raise ConfigError(
            "--labels needs serving.id_column in keel.yaml: the request field that identifies a row.",
            hint="Set serving.id_column, send that field with every request (the server logs it as keel_id), "
            "then join labels on it.",
        )
    frame = load_table(Path(path))
    missing = [c for c in (id_column, target) if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"labels file {path} lacks column(s) {', '.join(missing)}.",
            hint=f"It needs the id column '{id_column}' and the target '{target}'; it has: "
            f"{', '.join(map(str, frame.columns))}.",
        )
    table = pa.table({"id": pa.array(frame[id_column].astype(str).to_numpy()), LOG_TRUTH: frame[target].to_numpy()})
    counts = pc.value_counts(table["id"])
    repeated = [item["values"] for item in counts.to_pylist() if item["counts"] > 1]
    if repeated:
        raise MonitorError(
            f"labels file {path} has {len(repeated):,} id(s) more than once (e.g. {', '.join(repeated[:3])}).",
            hint="Keep one label per id.",
        )
    return table


def join_labels(table: Any, truth: Any, id_column: str) -> Any:
    """The log with a keel_truth column: each row's label by its logged id, null where none came."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if LOG_ID not in table.column_names:
        raise MonitorError(
            f"the prediction log has no ids, so labels cannot be joined (serving.id_column is '{id_column}').",
            hint="Restart the server after setting serving.id_column, and send that field with each request.",
        )
    position = pc.index_in(table[LOG_ID], value_set=truth["id"])
    joined = pc.take(truth[LOG_TRUTH], position)
    if joined.null_count == len(joined):
        raise MonitorError(
            f"none of the {len(truth):,} labels matches a logged id in this range.",
            hint="Check that the labels' ids are the values sent in the requests, and --since/--until.",
        )
    return table.append_column(LOG_TRUTH, pa.chunked_array([joined]) if isinstance(joined, pa.Array) else joined)


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a date or time.", hint="Use ISO 8601: 2026-11-24 or 2026-11-24T06:00."
        ) from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _window(text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"--window {text!r} is not a duration.", hint="Use a number and m, h, d or w: 30m, 6h, 1d, 1w."
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _between(table: Any, start: datetime | None, end: datetime | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    stamps = table[LOG_TIME]
    mask = None
    for bound, op in ((start, pc.greater_equal), (end, pc.less)):
        if bound is not None:
            test = op(stamps, pa.scalar(bound, type=stamps.type))
            mask = test if mask is None else pc.and_(mask, test)
    return table if mask is None else table.filter(mask)


def _windows(table: Any, step: timedelta) -> list[tuple[datetime, Any]]:
    """Consecutive windows of ``step`` from the first logged row, each with its rows (one sort,
    then slices: a thousand windows over a million rows cost one pass, not a thousand)."""
    import numpy as np
    import pyarrow.compute as pc

    micros = table[LOG_TIME].cast("int64").to_numpy(zero_copy_only=False)
    order = np.argsort(micros, kind="stable")
    table, micros = table.take(order), micros[order]
    width = int(step / timedelta(microseconds=1))
    first = int(micros[0])
    edges = np.arange(first, int(micros[-1]) + width + 1, width)
    cuts = np.searchsorted(micros, edges, side="left")
    start = pc.min(table[LOG_TIME]).as_py()
    return [
        (start + i * step, table.slice(int(lo), int(hi - lo))) for i, (lo, hi) in enumerate(itertools.pairwise(cuts))
    ]
