"""``keel analyze``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from keel.cli.common import console, status


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)


def analyze(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="The column to predict.")] = None,
    store: Annotated[Path | None, typer.Option(help="Store directory (default: the project's, else ./.keel).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the triage report as JSON.")] = False,
) -> None:
    """Triage a data set and store it as a content-addressed snapshot."""
    from keel.api.data import analyze as run_analyze
    from keel.config import PROJECT_FILE, load_project

    drop: tuple[str, ...] = ()
    project_file = ctx.obj.project or (Path(PROJECT_FILE) if Path(PROJECT_FILE).is_file() else None)
    if project_file is not None:
        project = load_project(project_file)
        drop = project.config.drop
        store = store or project.store_path
        target = target or project.config.target
    with status("analyzing"):
        version = run_analyze(data, target=target, store=store or Path(".keel"), drop=drop)
    if as_json:
        print(
            json.dumps(
                {"digest": version.digest, "snapshot": str(version.file.parent), "triage": version.triage.to_dict()},
                indent=2,
            )
        )
        return
    _render(version)


def _render(version: object) -> None:
    from rich.table import Table

    out = console()
    report = version.triage  # type: ignore[attr-defined]
    out.print(
        f"[bold]{report.rows:,} rows × {len(report.columns) + (1 if report.target else 0)} columns[/], "
        f"{report.duplicate_rows:,} duplicate rows"
    )
    table = Table("column", "type", "dtype", "missing", "distinct", "feature", box=None, pad_edge=False)
    for col in report.columns:
        table.add_row(
            col.name,
            col.semantic,
            col.dtype,
            f"{col.missing_share:.1%}",
            f"{col.unique:,}",
            "yes" if col.feature else f"no: {col.reason}",
        )
    out.print(table)
    if report.target:
        target = report.target
        if target.classes:
            total = sum(target.classes.values())
            balance = ", ".join(f"{k} {v / total:.1%}" for k, v in target.classes.items())
            out.print(
                f"target [bold]{target.name}[/]: {balance}" + (f"; {target.missing} missing" if target.missing else "")
            )
        elif target.stats:
            out.print(f"target [bold]{target.name}[/]: " + ", ".join(f"{k} {v:,.3g}" for k, v in target.stats.items()))
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"snapshot [bold]{version.short}[/] in {version.file.parent}")  # type: ignore[attr-defined]
