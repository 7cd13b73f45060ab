"""Drift of logged inputs and predictions against the reference profile (PSI per column).

| PSI | status |
|---|---|
| below ``psi_warn`` (0.1) | ok |
| ``psi_warn`` to ``psi_alert`` (0.25) | warn |
| ``psi_alert`` and above | alert |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from keel.monitoring.log import column_values
from keel.profile import ColumnProfile, drift_of


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    psi: float
    status: str
    rows: int
    missing_reference: float
    missing_current: float


@dataclass(frozen=True)
class DriftReport:
    model: str
    version: str
    rows: int
    columns: list[ColumnDrift]

    @property
    def moved(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.status != "ok"]

    @property
    def alerts(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.status == "alert"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(profile: dict[str, ColumnProfile], table: Any, warn: float, alert: float) -> list[ColumnDrift]:
    """PSI of every profiled column present in the log, most drifted first."""
    out = []
    for name, reference in profile.items():
        if name not in table.column_names:
            continue
        drift = drift_of(reference, column_values(table, name, reference.kind))
        status = "alert" if drift.psi >= alert else "warn" if drift.psi >= warn else "ok"
        out.append(ColumnDrift(name, drift.psi, status, drift.rows, drift.missing_reference, drift.missing_current))
    return sorted(out, key=lambda c: -c.psi)
