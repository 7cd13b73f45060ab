"""``keel monitor``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.common import console, project_of

DRIFT_EXIT_CODE = 10


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)


def monitor(
    ctx: typer.Context,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"Exit {DRIFT_EXIT_CODE} when a column alerts (for schedulers).")
    ] = False,
) -> None:
    """Compare logged inputs and predictions with the training profile (PSI per column)."""
    from rich.table import Table

    from keel.api.monitor import monitor as run_monitor

    report, path = run_monitor(project_of(ctx))
    out = console()
    table = Table("column", "PSI", "status", "missing ref", "missing now", box=None, pad_edge=False)
    for col in report.columns:
        style = {"alert": "bold red", "warn": "yellow"}.get(col.status, "")
        table.add_row(
            col.column,
            f"{col.psi:.3f}",
            f"[{style}]{col.status}[/]" if style else col.status,
            f"{col.missing_reference:.1%}",
            f"{col.missing_current:.1%}",
        )
    out.print(f"{report.rows:,} logged predictions of [bold]{report.model}@{report.version}[/] vs the training profile")
    out.print(table)
    moved = report.moved
    if moved:
        out.print("moved: " + ", ".join(f"{c.column} ({c.status}, PSI {c.psi:.2f})" for c in moved))
    else:
        out.print("no column moved")
    out.print(f"report: {path}")
    if fail_on_drift and report.alerts:
        raise typer.Exit(DRIFT_EXIT_CODE)
