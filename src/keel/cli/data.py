"""``keel analyze``, ``keel data list|show``, ``keel validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli.common import console, status

VIOLATIONS_EXIT_CODE = 3
data_app = typer.Typer(help="Data snapshots in the store.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
    app.command("validate")(validate)
    app.add_typer(data_app, name="data")


def analyze(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="The column to predict.")] = None,
    time_column: Annotated[str | None, typer.Option(help="Prediction-time column: split by time.")] = None,
    split_column: Annotated[str | None, typer.Option(help="Column marking rows 'train' / 'test'.")] = None,
    test: Annotated[Path | None, typer.Option(help="A separate test file (checked for overlap).")] = None,
    store: Annotated[Path | None, typer.Option(help="Store directory (default: the project's, else ./.keel).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the triage report as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also copy the HTML report here.")] = None,
) -> None:
    """Triage a data set (types, missing values, balance, duplicates, leakage, split) and snapshot it."""
    from keel.api.data import TriageOptions
    from keel.api.data import analyze as run_analyze

    if split_column and test:
        from keel.errors import ConfigError

        raise ConfigError("give either --split-column or --test, not both.")
    project = _project_if_any(ctx)
    options = TriageOptions(target, (), time_column, split_column)
    if project is not None:
        cfg = project.config
        options = TriageOptions(
            target or cfg.target, cfg.drop, time_column or cfg.time_column, split_column or cfg.split_column, cfg.seed
        )
        store = store or project.store_path
    with status("analyzing"):
        version = run_analyze(data, store=store or Path(".keel"), options=options, test=test)
        report = _write_html(version, data.name)
    if html:
        from keel.api.data import copy_report

        copy_report(report, html)
    if as_json:
        print(
            json.dumps(
                {
                    "digest": version.digest,
                    "snapshot": str(version.folder),
                    "report": str(report),
                    "triage": version.triage.to_dict(),
                },
                indent=2,
                default=str,
            )
        )
        return
    render(version, report)


@data_app.command("list")
def list_snapshots(
    ctx: typer.Context, store: Annotated[Path | None, typer.Option(help="Store directory.")] = None
) -> None:
    """List the data snapshots in the store, newest first."""
    from rich.table import Table

    from keel.api.data import snapshots

    table = Table("snapshot", "rows", "columns", "target", "blocking", "created", "source", box=None, pad_edge=False)
    for v in snapshots(_store(ctx, store)):
        target = v.triage.target.name if v.triage.target else "-"
        table.add_row(
            v.short, f"{v.rows:,}", str(v.columns), target, str(len(v.triage.blocking)), v.created_at, v.source
        )
    console().print(table)


@data_app.command("show")
def show(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="Snapshot hash or unique prefix.")],
    store: Annotated[Path | None, typer.Option(help="Store directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the triage report as JSON.")] = False,
) -> None:
    """Show one snapshot's triage report (and rebuild its HTML page)."""
    from keel.api.data import show_snapshot

    version = show_snapshot(_store(ctx, store), digest)
    report = _write_html(version, Path(version.source).name)
    if as_json:
        print(json.dumps(version.triage.to_dict(), indent=2, default=str))
        return
    render(version, report)


def validate(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="New CSV or Parquet file.")],
    against: Annotated[
        str, typer.Option(help="Snapshot hash (prefix), or a model alias such as 'champion'.")
    ] = "champion",
    store: Annotated[Path | None, typer.Option(help="Store directory.")] = None,
) -> None:
    """Check new data against a contract: of a snapshot, or of the model an alias points at."""
    from rich.table import Table

    from keel.api.data import validate as run_validate

    project = _project_if_any(ctx)
    model = project.name if project else None
    report = run_validate(data, store=_store(ctx, store), against=against, model=model)
    out = console()
    if report.ok:
        out.print(f"{report.rows:,} rows of {data} satisfy the contract of {report.against}")
        return
    table = Table("column", "violation", "rows", "examples", box=None, pad_edge=False)
    for v in report.violations:
        table.add_row(v.column, f"{v.check} {v.detail}".strip(), f"{v.count:,}", "; ".join(v.examples))
    out.print(f"{len(report.violations)} violation(s) of the contract of {report.against} in {data}:")
    out.print(table)
    raise typer.Exit(VIOLATIONS_EXIT_CODE)


def render(version: Any, report_path: Path) -> None:
    from rich.table import Table

    out = console()
    triage = version.triage
    out.print(f"[bold]{triage.rows:,} rows × {version.columns} columns[/], {triage.duplicate_rows:,} duplicate rows")
    table = Table("column", "type", "missing", "distinct", "feature", box=None, pad_edge=False)
    for col in triage.columns:
        table.add_row(
            col.name,
            col.semantic,
            f"{col.missing_share:.1%}",
            f"{col.unique:,}",
            "yes" if col.feature else f"no: {col.reason}",
        )
    out.print(table)
    _render_target(out, triage.target)
    if triage.strengths:
        top = ", ".join(f"{s.column} {s.metric} {s.value:.3f}" for s in triage.strengths[:3])
        out.print(f"strongest single columns (5-fold): {top}")
    if triage.split:
        out.print(f"recommended split: [bold]{triage.split.strategy}[/] ({triage.split.reason})")
    styles = {"block": "bold red", "warn": "yellow", "info": "dim"}
    for f in triage.findings:
        out.print(f"[{styles[f.severity]}]{f.severity}[/] {f.id}: {f.message}", markup=True)
    out.print(f"snapshot [bold]{version.short}[/] in {version.folder}")
    out.print(f"report   {report_path}")


def _render_target(out: Any, target: Any) -> None:
    if target is None:
        return
    if target.classes and target.task != "regression":
        total = sum(target.classes.values())
        balance = ", ".join(f"{k} {v / total:.1%}" for k, v in list(target.classes.items())[:10])
        out.print(f"target [bold]{target.name}[/] ({target.task}): {balance}")
    elif target.stats:
        stats = ", ".join(f"{k} {v:,.4g}" for k, v in target.stats.items() if k != "share_at_max")
        out.print(f"target [bold]{target.name}[/] ({target.task}): {stats}")


def _write_html(version: Any, title: str) -> Path:
    from keel.api.data import write_report

    return write_report(version, title)


def _project_if_any(ctx: typer.Context) -> Any:
    from keel.config import PROJECT_FILE, load_project

    chosen = ctx.obj.project if ctx.obj else None
    if chosen is None and not Path(PROJECT_FILE).is_file():
        return None
    return load_project(chosen or Path(PROJECT_FILE))


def _store(ctx: typer.Context, store: Path | None) -> Path:
    if store is not None:
        return store
    project = _project_if_any(ctx)
    return project.store_path if project else Path(".keel")
