"""``keel monitor``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from keel.cli.common import console, project_of

DRIFT_EXIT_CODE = 10


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)


def monitor(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="Only predictions from this time (ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Only predictions before this time (ISO 8601, UTC).")] = None,
    window: Annotated[str | None, typer.Option(help="Also report each window of this length: 30m, 6h, 1d, 1w.")] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"Exit {DRIFT_EXIT_CODE} when a column or the predictions alert (for schedulers).")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option(help="POST a JSON summary here when something alerts (default: monitor.webhook_url).")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="CSV or Parquet of serving.id_column and the target: measure performance per window."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Compare logged inputs and predictions with the training profile: PSI and Jensen-Shannon
    distance per column against a threshold calibrated for the sample size, unseen categories,
    new nulls, the mean prediction on training's control chart, a domain classifier over all
    columns, and performance: estimated from confidences, measured when --labels arrive."""
    import json

    from keel.api.monitor import monitor as run_monitor
    from keel.api.monitor import notify

    project = project_of(ctx)
    report, path = run_monitor(project, since=since, until=until, window=window, labels=labels)
    alerting = report.alerting or any(w.alerting for w in report.windows)
    if as_json:
        console().print_json(json.dumps(report.to_dict()))
    else:
        _print(report, path)
    url = webhook or project.config.monitor.webhook_url
    if url and alerting:
        problem = notify(url, report, path)
        err = console(stderr=True)
        err.print(f"webhook: not delivered to {url} ({problem})" if problem else f"webhook: alert sent to {url}")
    if fail_on_drift and alerting:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _print(report: Any, path: Any) -> None:
    from rich.table import Table

    out = console()
    span = f" from {report.start or 'the start'} to {report.end or 'now'}" if report.start or report.end else ""
    out.print(
        f"{report.rows:,} logged predictions of [bold]{report.model}@{report.version}[/]{span} vs the training profile"
    )
    table = Table(
        "column",
        "PSI",
        "p",
        "chance",
        "JS dist",
        "status",
        "importance",
        "missing ref/now",
        "notes",
        box=None,
        pad_edge=False,
    )
    for col in report.columns:
        style = {"alert": "bold red", "warn": "yellow", "drift": "cyan"}.get(col.status, "")
        table.add_row(
            col.column,
            f"{col.psi:.4f}",
            f"{col.p_value:.2g}",
            f"{col.chance_threshold:.4f}",
            f"{col.js_distance:.3f}",
            f"[{style}]{col.status}[/]" if style else col.status,
            "" if col.importance is None else f"{col.importance:.1%}",
            f"{col.missing_reference:.1%} / {col.missing_current:.1%}",
            "; ".join(col.notes),
        )
    out.print(table)
    shift = report.prediction
    if shift is not None:
        out.print(f"{shift.describe()}: {'[bold red]alert[/]' if shift.alert else 'ok'}")
    if report.domain is not None:
        status = report.domain.status
        out.print(f"{report.domain.describe()}: {'[bold red]alert[/]' if status == 'alert' else status}")
    for moved_meaning in report.embeddings:
        status = moved_meaning.status
        out.print(f"{moved_meaning.describe()}: {'[bold red]alert[/]' if status == 'alert' else status}")
    if report.embedding_note:
        out.print(report.embedding_note)
    perf = report.performance
    if perf is not None and (perf.estimated or perf.metric or perf.estimate_hidden):
        verdict = " [bold red]decayed[/]" if report.performance.decayed else ""
        out.print(f"performance: {report.performance.describe()}{verdict}")
    for group in report.slices:
        if group.shifted or group.value is not None:
            line = f"  slice {group.column}={group.group}: {group.rows:,} rows ({group.share_current:.1%}, "
            line += f"training {group.share_reference:.1%})"
            if group.sigmas is not None:
                line += f", mean score {group.mean_current:.4f} ({group.sigmas:+.1f} SE)"
            if group.value is not None:
                line += f", {group.metric} {group.value:.4f} on {group.labelled:,} labelled"
            out.print(line + (" [yellow]shifted[/]" if group.shifted else ""))
    moved = report.moved
    out.print(
        "moved: " + ", ".join(f"{c.column} ({c.status}, PSI {c.psi:.3f})" for c in moved)
        if moved
        else "no column moved beyond chance"
    )
    for w in report.windows:
        flagged = ", ".join(c.column for c in w.moved) or "none"
        pred = "" if w.prediction is None else f", mean prediction {w.prediction.sigmas:+.1f} SE"
        if w.domain is not None:
            pred += f", domain AUC {w.domain.auc:.3f}"
        for e in w.embeddings:
            pred += f", {e.column} embedding distance {e.distance:.4f} ({e.status})"
        perf = w.performance
        if perf is not None and perf.value is not None:
            pred += f", {perf.metric} {perf.value:.3f} [{perf.low:.3f}, {perf.high:.3f}]"
        mark = " [bold red]ALERT[/]" if w.alerting else ""
        out.print(f"  {w.start} .. {w.end}: {w.rows:,} rows, moved: {flagged}{pred}{mark}")
    if report.tests:
        out.print(
            f"alerts: a run where nothing changed alerts with probability at most {report.false_alarm_rate:.0%}: "
            f"{report.tests} tests, each alerting below p {report.alert_alpha:.2g}"
        )
    out.print(f"report: {path.with_suffix('.html')} (JSON: {path.name})")
