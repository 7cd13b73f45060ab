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
from keel.monitoring.drift import DriftReport, Thresholds, report
from keel.monitoring.log import read_log
from keel.profile import load_profile
from keel.schema import LOG_TIME
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
) -> tuple[DriftReport, Path]:
    """Drift of every input column and the predictions over [since, until) (default: the whole
    log), and, with ``window`` (``30m``, ``6h``, ``1d``, ``1w``), of each window in it; the
    report is saved as JSON and as HTML with plots beside it (same name, ``.html``). Windows
    with fewer than ``monitor.min_rows`` rows are skipped."""
    start, end = _instant(since, "--since"), _instant(until, "--until")  # bad options fail first
    step = _window(window)
    store = Store(project.store_path)
    bundle = load_alias(store, project.name, alias)
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
    limits = Thresholds(
        settings.psi_warn, settings.psi_alert, settings.min_psi, settings.alpha, settings.prediction_sigmas
    )
    profile = load_profile(bundle.profile)
    importance = bundle.metadata.get("importance")  # bundles exported before it was measured: None
    overall = report(bundle.model, bundle.version, profile, table, limits, _iso(start), _iso(end), importance)
    windows = []
    if step is not None:
        for lo, part in _windows(table, step):
            if part.num_rows >= settings.min_rows:
                windows.append(
                    report(bundle.model, bundle.version, profile, part, limits, _iso(lo), _iso(lo + step), importance)
                )
    result = replace(overall, windows=windows)
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
        "alerts": [
            {
                "start": w.start,
                "end": w.end,
                "columns": [{"column": c.column, "psi": c.psi, "status": c.status} for c in w.alerts],
                "prediction": None
                if w.prediction is None
                else {"sigmas": w.prediction.sigmas, "alert": w.prediction.alert},
            }
            for w in alerting
        ],
    }
    try:
        response = httpx.post(url, json=payload, timeout=10)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code < 300 else f"HTTP {response.status_code}"


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
