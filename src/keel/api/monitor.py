"""``monitor``: the champion's prediction log against its reference profile."""

from __future__ import annotations

import time
from pathlib import Path

from keel.api.serving import load_alias
from keel.config import Project
from keel.errors import MonitorError
from keel.monitoring.drift import DriftReport, compare
from keel.monitoring.log import read_log
from keel.profile import load_profile
from keel.store import Store, atomic_write_json


def monitor(project: Project, *, alias: str = "champion") -> tuple[DriftReport, Path]:
    """PSI of every input column and the predictions; the report is also saved as JSON."""
    store = Store(project.store_path)
    bundle = load_alias(store, project.name, alias)
    table = read_log(store.predictions_dir(project.name), bundle.version)
    rows = 0 if table is None else table.num_rows
    settings = project.config.monitor
    if rows < settings.min_rows:
        raise MonitorError(
            f"only {rows} predictions of {bundle.model}@{bundle.version} are logged; drift needs at least "
            f"{settings.min_rows}.",
            hint="Send more traffic to the server, or lower monitor.min_rows in keel.yaml.",
        )
    columns = compare(load_profile(bundle.profile), table, settings.psi_warn, settings.psi_alert)
    report = DriftReport(bundle.model, bundle.version, rows, columns)
    path = store.reports_dir() / f"monitor-{bundle.model}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    atomic_write_json(path, report.to_dict())
    return report, path
