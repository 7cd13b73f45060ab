"""``keel train | evaluate | export | promote | rollback | history | run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli.common import console, fmt, parse_duration, process_started, project_of, status, training_progress

DataOption = Annotated[Path | None, typer.Option("--data", help="Use this data file instead of keel.yaml's.")]
AllowOption = Annotated[list[str] | None, typer.Option("--allow", help="Override a blocking triage check (by id).")]
ReasonOption = Annotated[str, typer.Option(help="Why; recorded with the promotion or the override.")]
BudgetOption = Annotated[str | None, typer.Option(help="Wall-clock budget, e.g. 60s or 5m (default: keel.yaml).")]
HypothesisOption = Annotated[str, typer.Option(help="What this run tries; recorded and shown by `keel runs compare`.")]
RefArgument = Annotated[str | None, typer.Argument(help="NAME@VERSION, VERSION or NAME@ALIAS (default: newest).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the decision as JSON (checks and all).")]
EngineOption = Annotated[
    str | None, typer.Option("--engine", help="local, or ray: search trials on Ray Tune (default: keel.yaml).")
]
AddressOption = Annotated[
    str | None, typer.Option("--address", help="A running Ray cluster, ray://HEAD:10001 (default: start one here).")
]


def register(app: typer.Typer) -> None:
    aliases = typer.Typer(
        help="Canary and shadow traffic, and the kill switch (disabled): point an alias at an exported version, or remove it."
    )
    aliases.command("set")(alias_set)
    aliases.command("remove")(alias_remove)
    app.add_typer(aliases, name="alias")
    for name, command in (
        ("train", train),
        ("evaluate", evaluate),
        ("export", export),
        ("promote", promote),
        ("rollback", rollback),
        ("history", history),
        ("retrain", retrain),
        ("run", run),
    ):
        app.command(name)(command)


def train(
    ctx: typer.Context,
    data: DataOption = None,
    allow: AllowOption = None,
    reason: ReasonOption = "",
    budget: BudgetOption = None,
    hypothesis: HypothesisOption = "",
    resume: Annotated[bool, typer.Option(help="Continue the last (killed) search: its trials are kept.")] = False,
    engine: EngineOption = None,
    address: AddressOption = None,
) -> None:
    """Baselines, then a budgeted search per family, every run tracked; the best on validation is registered.
    With task: generation, supervised fine-tuning of llm.model on the conversations instead."""
    from keel.api.train import train as run_train

    project = project_of(ctx, data)
    if project.config.task == "generation":
        _train_generation(project, budget, resume)
        return
    _project, result = _with_progress(
        run_train, ctx, data, budget, allow, reason, hypothesis, resume, engine=engine, address=address
    )
    _render_training(result)


def retrain(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option("--data", help="The data to retrain on (default: keel.yaml's), newest rows last.")
    ] = None,
    trigger: Annotated[
        str, typer.Option(help="schedule: always train a challenger; drift: only when the monitor alerts.")
    ] = "schedule",
    refresh_golden: Annotated[
        bool | None,
        typer.Option(
            "--refresh-golden/--keep-golden",
            help="Keep the newest labelled rows out of training and judge (and, if their labels pass the "
            "quality check, replace) the golden set with them (default: retrain.refresh_golden).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a challenger on the newest window of data (golden rows left out), export it, and let
    the promotion gate decide: golden set, slices, the newest labelled rows and their label
    quality, parity, latency.
    Waits out retrain.cooldown_hours after any champion change. Exit 0 when promoted or
    skipped, 5 when the gate refused (the champion stays)."""

    from keel.api.retrain import retrain as run_retrain
    from keel.errors import RegistryError

    project = project_of(ctx)
    with status("retraining") as step:
        result = run_retrain(project, data=data, trigger=trigger, on_step=step, refresh_golden=refresh_golden)
    out = console()
    if as_json:
        out.print_json(json.dumps(result.to_dict(), default=str))
    else:
        if result.action == "skipped":
            out.print(f"skipped: {result.reason}")
        else:
            out.print(
                f"challenger {project.name}@{result.challenger}: trained on {result.rows:,} rows "
                f"({result.golden_excluded:,} golden rows left out"
                + (
                    f", {result.golden_candidate:,} newest kept out as the new golden set"
                    if result.golden_candidate
                    else ""
                )
                + f") in {result.seconds:.0f} s"
            )
            if result.change is not None:
                _render_change(result.change)
    if result.action == "refused":
        raise typer.Exit(RegistryError.exit_code)


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
    as_json: JsonOption = False,
) -> None:
    """Make a version the champion (the one `keel serve` serves)."""
    from keel.api.models import PromotionRefused
    from keel.api.models import promote as run_promote

    try:
        change = run_promote(project_of(ctx), ref, force=force, reason=reason)
    except PromotionRefused as refused:
        _render_change(refused.change, as_json)  # the decision first; the error line and exit code follow
        raise
    _render_change(change, as_json)


def rollback(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name (default: the project's).")] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded with the rollback.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Move the champion back to the previous champion."""
    from keel.api.models import rollback as run_rollback

    _render_change(run_rollback(project_of(ctx), name, reason=reason), as_json)


def evaluate(
    ctx: typer.Context,
    ref: RefArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON.")] = False,
) -> None:
    """Full metric suite with intervals, slices and fairness gaps, sanity checks, HTML report, model card."""

    from rich.table import Table

    from keel.api.evaluate import evaluate as run_evaluate

    with status("evaluating"):
        result = run_evaluate(project_of(ctx), ref)
    ev = result.data
    if as_json:
        payload = {
            "model": ev.ref,
            "suite": ev.suite.to_dict(),
            "slices": ev.slices.to_dict(),
            "checks": [c.__dict__ for c in ev.checks],
            "report": str(result.report),
            "card": str(result.card),
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    out = console()
    out.print(f"[bold]{ev.ref}[/] ({ev.family}, {ev.task}) on {ev.suite.rows:,} hold-out rows")
    checks = Table("check", "status", "detail", box=None)
    colour = {"pass": "green", "warn": "yellow", "fail": "red", "info": "dim"}
    for c in ev.checks:
        checks.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
    out.print(checks)
    metrics = Table("metric", "value", "95% interval", box=None)
    for name, value in ev.suite.metrics.items():
        metrics.add_row(
            f"[bold]{name}[/]" if name == ev.metric else name,
            fmt(value),
            f"{fmt(ev.suite.low[name])} to {fmt(ev.suite.high[name])}",
        )
    out.print(metrics)
    if ev.slices.groups:
        slices = Table("slice", "rows", ev.metric, "95% interval", box=None)
        for g in ev.slices.groups:
            slices.add_row(f"{g.column}={g.group}", f"{g.rows:,}", fmt(g.metric), f"{fmt(g.low)} to {fmt(g.high)}")
        out.print(slices)
        for column, gaps in ev.slices.fairness.items():
            out.print(
                f"fairness by {column}: demographic parity difference {gaps['demographic_parity_difference']:.3f}, "
                f"equalized odds difference {gaps['equalized_odds_difference']:.3f}"
            )
    if ev.champion and "comparison" in ev.champion:
        out.print(f"against champion {ev.champion['ref']}: {ev.champion['comparison']}")
    out.print(f"report: {result.report}\nmodel card: {result.card}")
    if any(c.status == "fail" for c in ev.checks):
        raise typer.Exit(1)


def history(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name (default: the project's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON.")] = False,
) -> None:
    """Every promotion, refusal and rollback: who, when, why, and the checks."""

    from rich.table import Table

    from keel.api.models import history as model_history

    events = model_history(project_of(ctx), name)
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    out = console()
    if not events:
        out.print("no promotions yet: `keel promote` makes the first champion.")
        return
    table = Table("when", "action", "version", "was", "by", "checks", "reason / note", box=None)
    for e in events:
        checks = ", ".join(f"{n} {'ok' if ok else 'FAIL'}" for n, ok in e.get("checks", [])) or "-"
        why = " · ".join(t for t in (e.get("reason", ""), e.get("note", "")) if t) or "-"
        table.add_row(e["at"], e["action"], e["version"], e.get("previous") or "-", e.get("by", "?"), checks, why)
    out.print(table)
    out.print(f"[dim]full evidence: the run artifacts named in each event (keel/decisions/); {len(events)} events[/]")


def alias_set(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="canary, shadow or disabled.")],
    ref: RefArgument = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Send canary traffic to a version, shadow every request with it, or disable it at once (the
    kill switch: a disabled champion's requests go to the champion before it). The server follows."""
    from keel.api.models import set_alias

    change = set_alias(project_of(ctx), alias, ref, reason=reason)
    if as_json:
        print(json.dumps(change.to_dict(), default=str))
        return
    was = f" (was @{change.previous})" if change.previous else ""
    console().print(f"{alias} is now [bold]{change.model}@{change.version}[/]{was}")


def alias_remove(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="canary, shadow or disabled.")],
    name: Annotated[str | None, typer.Argument(help="Model name (default: the project's).")] = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Stop canary or shadow traffic, or turn the kill switch off."""
    from keel.api.models import remove_alias

    change = remove_alias(project_of(ctx), alias, name, reason=reason)
    if as_json:
        print(json.dumps(change.to_dict(), default=str))
        return
    console().print(f"removed {alias} (was {change.model}@{change.version})")


def run(
    ctx: typer.Context,
    data: DataOption = None,
    allow: AllowOption = None,
    reason: ReasonOption = "",
    budget: BudgetOption = None,
    hypothesis: HypothesisOption = "",
) -> None:
    """Analyze, train, export and promote, for the project file. Exit 5 when the gate refused
    the promotion (everything before it is kept, and the champion stays)."""
    from keel.api.run import run as run_all
    from keel.errors import RegistryError

    project, result = _with_progress(run_all, ctx, data, budget, allow, reason, hypothesis, False)
    out = console()
    out.print(f"data snapshot [bold]{result.data.short}[/]: {result.data.rows:,} rows")
    _render_training(result.trained)
    _render_export(result.exported)
    if result.promotion is not None:
        _render_change(result.promotion)
    else:
        out.print(f"[yellow]not promoted:[/] {result.refused}")
    summary(project, result.trained.version.ref)
    if result.promotion is None:
        raise typer.Exit(RegistryError.exit_code)


def _with_progress(
    call: Any,
    ctx: typer.Context,
    data: Path | None,
    budget: str | None,
    allow: list[str] | None,
    reason: str,
    hypothesis: str,
    resume: bool,
    *,
    engine: str | None = None,
    address: str | None = None,
) -> tuple[Any, Any]:
    """Run a training verb (train, run) under a progress bar over its budget; the budget counts from now."""
    from keel.api.train import TrainOptions
    from keel.config import resolve_engine

    started = process_started()
    project = project_of(ctx, data)
    if budget:
        project = project.with_budget(parse_duration(budget))
    chosen = resolve_engine(project.config.engine, engine, address)
    options = TrainOptions(_allowed(allow, reason), resume, hypothesis, started, chosen)
    with training_progress(project.config.train.budget_seconds, started) as (step, trial):
        return project, call(project, options, on_step=step, on_trial=trial)


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


def _train_generation(project: Any, budget: str | None, resume: bool) -> None:
    from rich.table import Table

    from keel.api.generation import train_generation

    if budget:
        project = project.with_budget(parse_duration(budget))
    with status("fine-tuning") as step:
        result = train_generation(project, on_step=step, resume=resume)
    out = console()
    out.print(f"method  [bold]{result.method}[/]: {result.rule}")
    table = Table("metric", "value", box=None, pad_edge=False)
    for name in ("perplexity_before", "perplexity", "exact_match", "token_f1", "eval_loss"):
        if name in result.metrics:
            table.add_row(name, fmt(result.metrics[name]))
    out.print(table)
    share = result.trainable_parameters / max(result.parameters, 1)
    out.print(
        f"trained {result.trainable_parameters:,} of {result.parameters:,} parameters ({share:.2%}) on "
        f"{result.train_rows:,} conversations, {result.held_out_rows:,} held out, in {result.seconds:.1f} s"
    )
    out.print(f"saved   {result.output}" + (f"\nmerged  {result.merged}" if result.merged else ""))
    out.print(f"run     {result.run_id[:8]} (mlflow ui --backend-store-uri {result.tracking_uri})")


def _render_training(result: Any) -> None:
    from rich.table import Table

    out = console()
    plan = result.plan
    decisions = Table("decision", "value", "rule", box=None, pad_edge=False, title="plan", title_justify="left")
    for d in plan.decisions:
        decisions.add_row(d.name, d.value, d.rule)
    out.print(decisions)
    m = plan.metric
    table = Table(
        "family",
        "trials",
        f"validation {m}",
        f"test {m}",
        "95% interval",
        "iterations",
        "fit s",
        "run",
        box=None,
        pad_edge=False,
    )
    for c in result.candidates:
        marker = " *" if c is result.best else ""
        interval = f"{fmt(c.metrics[m + '_ci_low'])} to {fmt(c.metrics[m + '_ci_high'])}"
        overfit = f" (diverges after {c.overfit_iteration})" if c.overfit_iteration else ""
        table.add_row(
            c.family + marker,
            str(c.trials),
            fmt(c.validation_score),
            fmt(c.metrics[m]),
            interval,
            f"{c.iterations or '-'}{overfit}",
            f"{c.fit_seconds:.1f}",
            c.run_id[:8],
        )
    out.print(table)
    from keel.api.train import FINE_TUNED  # these always fit without the validation rows

    held = [c.family for c in result.candidates if c.rows == "train" and c.family not in FINE_TUNED]
    if held:
        out.print(
            f"[yellow]{', '.join(held)}: final model fit without the validation rows[/]: a refit on every row "
            "would have passed the budget (a larger --budget refits)"
        )
    cut = [c for c in result.candidates if c.cut or c.cut_trials]
    if cut:
        listed = "; ".join(
            f"{c.family} ({c.trials} trial(s){f', {c.cut_trials} stopped at the deadline' if c.cut_trials else ''}"
            f"{', its final fit stopped at the deadline' if c.cut and not c.cut_trials else ''})"
            for c in cut
        )
        out.print(
            f"[yellow]cut by the budget[/]: {listed}: each kept its best fit so far (a larger --budget trains longer)"
        )
    for family, why in result.untrained.items():
        out.print(f"[yellow]{family} not trained[/]: {why}")
    if result.suspicion is not None:
        s = result.suspicion
        if s.text or result.suspicion_allowed:
            out.print(f"[yellow]suspiciously good[/]: {s.message()}" + (" (allowed: recorded)" if not s.text else ""))
        else:
            out.print(
                f"[red]suspiciously good[/]: {s.message()}. `keel promote` will refuse this version; if the score "
                "is real, retrain with --allow score.suspicious --reason '...' (recorded)"
            )
    if result.verdict is not None:
        colour = "green" if result.verdict.value == "beaten" else "yellow"
        out.print(f"[{colour}]TF-IDF baseline {result.verdict.value}[/]: {result.verdict.rule}")
    out.print(
        f"registered [bold]{result.version.ref}[/] ({result.best.family}, test {m} {fmt(result.best.metrics[m])}), "
        f"data {result.data.short}, {result.seconds:.1f} s of a {plan.budget_seconds:g} s budget"
    )


def _render_export(result: Any) -> None:
    out = console()
    p, lat = result.parity, result.latency
    agreement = f", labels agree {p.label_agreement:.1%}" if p.label_agreement is not None else ""
    out.print(f"exported [bold]{result.version.ref}[/] to {result.bundle}")
    reference = "PyTorch" if p.output == "logits" else "native"
    out.print(
        f"  parity: max |{reference} - ONNX| {p.output} {p.max_diff:.2e} <= {p.tolerance:.0e} on {p.rows:,} "
        f"held-out rows{agreement}"
    )
    q = result.quantization
    if q:
        verdict = "[green]kept[/]" if q["accepted"] else "[yellow]refused, fp32 kept[/]"
        out.print(
            f"  int8: {verdict}: accuracy {q['fp32_accuracy']:.4f} -> {q['int8_accuracy']:.4f} (drop "
            f"{q['accuracy_drop']:+.4f}, budget {q['budget']:.4f}), {q['fp32_bytes'] / 2**20:.0f} -> "
            f"{q['int8_bytes'] / 2**20:.0f} MB"
        )
    batch32 = f", 32 rows p50 {lat.batch32_p50_ms:.2f} ms" if lat.batch32_p50_ms is not None else ""
    out.print(
        f"  latency: one row p50 {lat.single_row_p50_ms:.3f} ms, p99 {lat.single_row_p99_ms:.3f} ms{batch32}; "
        f"batch {lat.batch_rows_per_s:,.0f} rows/s"
    )


def _render_change(change: Any, as_json: bool = False) -> None:
    from rich.table import Table

    if as_json:
        print(json.dumps(change.to_dict(), default=str))
        return
    out = console()
    if change.action == "refused":
        out.print(f"[red]refused[/]: {change.model}@{change.version}; champion stays @{change.previous or 'none'}")
    elif change.action == "awaiting approval":
        ref = f"{change.model}@{change.version}"
        out.print(
            f"[yellow]awaiting approval[/]: {ref} passed the gate; champion stays @{change.previous}. "
            f"`keel approve {ref} --reason '...'` starts its rollout"
        )
    else:
        verb = "promoted" if change.action == "promote" else "rolled back"
        previous = f" (was @{change.previous})" if change.previous else ""
        out.print(f"{verb}: champion is now [bold]{change.model}@{change.version}[/]{previous}")
    if change.checks:
        table = Table("check", "verdict", "evidence", box=None)
        for check in change.checks:
            table.add_row(check.name, "pass" if check.passed else "[red]FAIL[/]", check.detail)
        out.print(table)
    if change.note:
        out.print(f"  note: {change.note}")
