"""``keel plan``, ``keel estimate-memory``, ``keel runs compare|dead-end``, ``keel reproduce``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.common import console, fmt, parse_duration, project_of

runs_app = typer.Typer(help="The experiment record: compare runs, mark dead ends.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("estimate-memory")(estimate_memory)
    app.command("reproduce")(reproduce)
    app.add_typer(runs_app, name="runs")


def plan(
    ctx: typer.Context, budget: Annotated[str | None, typer.Option(help="Wall-clock budget, e.g. 60s.")] = None
) -> None:
    """Show the plan `keel train` would follow: every decision and the rule behind it."""
    from rich.table import Table

    from keel.api.runs import plan as make_plan

    project = project_of(ctx)
    if budget:
        project = project.with_budget(parse_duration(budget))
    if project.config.task == "generation":
        from keel.api.generation import plan_generation

        rows = plan_generation(project).decisions(project)
        generation = Table("decision", "value", "rule", box=None, pad_edge=False)
        for row in rows:
            generation.add_row(*row)
        console().print(generation)
        return
    the_plan, compute = make_plan(project)
    table = Table("decision", "value", "rule", box=None, pad_edge=False)
    for d in (*the_plan.decisions, compute):
        table.add_row(d.name, d.value, d.rule)
    console().print(table)


def estimate_memory(
    params: Annotated[str | None, typer.Option(help="Parameter count, e.g. 7B or 350M.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Or a local model directory: its parameters are counted (text extra).")
    ] = None,
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16, int8 or int4.")] = "bf16",
    mode: Annotated[str, typer.Option(help="inference, full, lora or qlora.")] = "inference",
    batch: Annotated[int, typer.Option(help="Sequences per step.")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 2048,
    vram: Annotated[float | None, typer.Option(help="GPU memory in GiB: recommend the strategy that fits.")] = None,
) -> None:
    """GPU memory for transformer inference or fine-tuning, by part, and what fits a given GPU;
    with --vram, the fine-tuning method `keel train` (task: generation) would choose."""
    from rich.table import Table

    from keel.api.runs import memory as plan_memory

    gib = 2**30
    result = plan_memory(params, model, precision, mode, batch, seq_len, vram)
    table = Table("part", "GiB", box=None, pad_edge=False)
    for name, size in result.parts.items():
        table.add_row(name, f"{size / gib:.2f}")
    table.add_row("total", f"{result.total / gib:.2f}")
    out = console()
    out.print(f"{result.parameters / 1e9:g}B parameters, {mode} at {precision}, batch {batch} x {seq_len} tokens")
    out.print(table)
    if vram is not None:
        out.print(f"recommended for {vram:g} GiB: {result.recommendation}")
        if result.method is not None:
            out.print(f"keel train (task: generation, llm.method: auto) would fine-tune with {result.method}")


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 30,
    markdown: Annotated[bool, typer.Option(help="Print a markdown table.")] = False,
) -> None:
    """Final runs of every training: hypothesis, metric with its interval, verdict against the baseline."""
    from keel.api.runs import compare as run_compare

    rows = run_compare(project_of(ctx), limit)
    header = ["run", "family", "hypothesis", "metric", "value", "95% interval", "baseline", "verdict"]
    lines = []
    for c in rows:
        r = c.run
        verdict = f"dead end: {r.dead_end}" if r.dead_end else c.verdict
        lines.append(
            [
                r.run_id[:8],
                r.family,
                r.hypothesis or "-",
                r.metric,
                fmt(r.value),
                f"{fmt(r.low)} to {fmt(r.high)}",
                fmt(c.baseline),
                verdict,
            ]
        )
    if markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    from rich.table import Table

    table = Table(*header, box=None, pad_edge=False)
    for line in lines:
        table.add_row(*line)
    console().print(table)


@runs_app.command("dead-end")
def dead_end(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    why: Annotated[str, typer.Option(help="Why the idea is rejected.")],
) -> None:
    """Record a rejected idea on its run so nobody repeats it."""
    from keel.api.runs import dead_end as mark

    run_id = mark(project_of(ctx), run, why)
    console().print(f"run {run_id[:8]} marked as a dead end: {why}")


def reproduce(ctx: typer.Context, run: Annotated[str, typer.Argument(help="Run id or a unique prefix.")]) -> None:
    """Retrain a final run from its manifest and report the metric difference."""
    from keel.api.runs import reproduce as run_reproduce

    result = run_reproduce(project_of(ctx), run)
    console().print(
        f"run {result.run_id[:8]} ({result.family}): recorded {result.metric} {result.recorded:.6f}, "
        f"reproduced {result.reproduced:.6f}, difference {result.difference:+.2e}"
    )
