"""``keel train | export | promote | rollback | run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli.common import console, fmt, project_of, status

DataOption = Annotated[Path | None, typer.Option("--data", help="Use this data file instead of keel.yaml's.")]
AllowOption = Annotated[list[str] | None, typer.Option("--allow", help="Override a blocking triage check (by id).")]
ReasonOption = Annotated[str, typer.Option(help="Why; recorded with the promotion or the override.")]
RefArgument = Annotated[str | None, typer.Argument(help="NAME@VERSION, VERSION or NAME@ALIAS (default: newest).")]


def register(app: typer.Typer) -> None:
    for name, command in (
        ("train", train),
        ("export", export),
        ("promote", promote),
        ("rollback", rollback),
        ("run", run),
    ):
        app.command(name)(command)


def train(ctx: typer.Context, data: DataOption = None, allow: AllowOption = None, reason: ReasonOption = "") -> None:
    """Train the baseline and LightGBM, track both in MLflow, register the better one."""
    from keel.api.train import train as run_train

    project = project_of(ctx, data)
    with status("training") as step:
        result = run_train(project, allow=_allowed(allow, reason), on_step=step)
    _render_training(result)


def export(ctx: typer.Context, ref: RefArgument = None) -> None:
    """Convert a version's whole pipeline to ONNX, check parity, store the bundle."""
    from keel.api.models import export as run_export

    project = project_of(ctx)
    with status("exporting") as step:
        result = run_export(project, ref, on_step=step)
    _render_export(result)


def promote(
    ctx: typer.Context,
    ref: RefArgument = None,
    force: Annotated[bool, typer.Option(help="Promote even if a check fails (needs --reason).")] = False,
    reason: ReasonOption = "",
) -> None:
    """Make a version the champion (the one `keel serve` serves)."""
    from keel.api.models import promote as run_promote

    change = run_promote(project_of(ctx), ref, force=force, reason=reason)
    _render_change(change)


def rollback(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name (default: the project's).")] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded with the rollback.")] = "",
) -> None:
    """Move the champion back to the previous champion."""
    from keel.api.models import rollback as run_rollback

    _render_change(run_rollback(project_of(ctx), name, reason=reason))


def run(ctx: typer.Context, data: DataOption = None, allow: AllowOption = None, reason: ReasonOption = "") -> None:
    """Analyze, train, export and promote, for the project file."""
    from keel.api.run import run as run_all

    project = project_of(ctx, data)
    with status("running") as step:
        result = run_all(project, allow=_allowed(allow, reason), on_step=step)
    out = console()
    out.print(f"data snapshot [bold]{result.data.short}[/]: {result.data.rows:,} rows")
    _render_training(result.trained)
    _render_export(result.exported)
    if result.promotion is not None:
        _render_change(result.promotion)
    else:
        out.print(f"[yellow]not promoted:[/] {result.refused}")
    summary(project, result.trained.version.ref)


def _allowed(checks: list[str] | None, reason: str) -> dict[str, str]:
    return {check: reason for check in checks or []}


def summary(project: Any, ref: str) -> None:
    """What was made and where to look."""
    store = project.store_path
    out = console()
    out.print("\n[bold]What was made[/]")
    out.print(f"  model version   {ref}")
    out.print(f"  bundle          {store / 'bundles' / project.name}")
    out.print(f"  data snapshots  {store / 'data'}")
    out.print(f"  prediction log  {store / 'predictions' / project.name}  (after `keel serve` traffic)")
    out.print(f"  reports         {store / 'reports'}")
    out.print(f"  runs            mlflow ui --backend-store-uri {project.tracking_uri}")


def _render_training(result: Any) -> None:
    from rich.table import Table

    out = console()
    plan = result.plan
    out.print(f"task [bold]{plan.task}[/], metric [bold]{plan.metric}[/] ({'; '.join(d.rule for d in plan.decisions)})")
    metrics = sorted({k for c in result.candidates for k in c.metrics})
    table = Table("family", *metrics, "fit s", "run", box=None, pad_edge=False)
    for c in result.candidates:
        marker = " *" if c is result.best else ""
        table.add_row(c.family + marker, *(fmt(c.metrics[m]) for m in metrics), f"{c.fit_seconds:.1f}", c.run_id[:8])
    out.print(table)
    out.print(
        f"registered [bold]{result.version.ref}[/] ({result.best.family}, {plan.metric} "
        f"{fmt(result.best.metrics[plan.metric])}), data {result.data.short}"
    )


def _render_export(result: Any) -> None:
    out = console()
    p, lat = result.parity, result.latency
    agreement = f", labels agree {p.label_agreement:.1%}" if p.label_agreement is not None else ""
    out.print(f"exported [bold]{result.version.ref}[/] to {result.bundle}")
    out.print(
        f"  parity: max |native - ONNX| {p.output} {p.max_diff:.2e} <= {p.tolerance:.0e} on {p.rows:,} "
        f"held-out rows{agreement}"
    )
    out.print(
        f"  latency: one row p50 {lat.single_row_p50_ms:.3f} ms, p99 {lat.single_row_p99_ms:.3f} ms; "
        f"batch {lat.batch_rows_per_s:,.0f} rows/s"
    )


def _render_change(change: Any) -> None:
    out = console()
    verb = "promoted" if change.action == "promote" else "rolled back"
    previous = f" (was @{change.previous})" if change.previous else ""
    out.print(f"{verb}: champion is now [bold]{change.model}@{change.version}[/]{previous}")
    for check in change.checks:
        out.print(f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    if change.note:
        out.print(f"  note: {change.note}")
