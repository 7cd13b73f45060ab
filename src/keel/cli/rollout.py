"""``keel rollout start | run | status | pause | resume | abort``: progressive delivery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli.common import console, project_of

ROLLED_BACK_EXIT_CODE = 5  # as a refused promotion: the challenger did not make it
NameArgument = Annotated[str | None, typer.Argument(help="Model name (default: the project's).")]
ReasonOption = Annotated[str, typer.Option(help="Why; recorded in `keel history`.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the rollout's final state as JSON.")]


def register(app: typer.Typer) -> None:
    rollout = typer.Typer(
        help="Shadow, canary and ramp that advance by themselves and roll back by themselves on online evidence."
    )
    for name, command in (
        ("start", start),
        ("run", run),
        ("status", show),
        ("pause", pause),
        ("resume", resume),
        ("abort", abort),
    ):
        rollout.command(name)(command)
    app.add_typer(rollout, name="rollout")
    app.command("approve")(approve)


def start(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="NAME@VERSION or VERSION to roll out (default: newest).")] = None,
    plan: Annotated[
        str | None,
        typer.Option(help="Steps, e.g. shadow:10m,canary:5%:10m,canary:25%:10m,full (default: rollout.plan)."),
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="The server whose /metrics the checks read (default: serving host:port).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Labels as they arrive (id column and target): adds the metric check.")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="POST every step change here as JSON.")] = None,
    force: Annotated[bool, typer.Option(help="Start although the offline gate failed (needs --reason).")] = False,
    reason: ReasonOption = "",
    aa: Annotated[
        bool, typer.Option("--aa", help="A/A: roll the champion out against itself (measures false rollbacks).")
    ] = False,
    detach: Annotated[bool, typer.Option(help="Record it and return; drive it with `keel rollout run`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout of a version that passed the offline gate, and drive it to its end."""
    from keel.api.rollout import start as begin

    project = project_of(ctx)
    state = begin(project, ref, plan, server=server, labels=labels, webhook=webhook, force=force, reason=reason, aa=aa)
    if detach and as_json:
        _print_json(state)
        return
    out = console(stderr=as_json)
    steps = ", ".join(_step(s) for s in state["plan"])
    out.print(f"rollout of [bold]{state['model']}@{state['version']}[/] against @{state['champion']}: {steps}")
    if detach:
        out.print(f"recorded; drive it with `keel rollout run {state['model']}`")
        return
    _drive(ctx, state["model"], as_json)


def approve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION that `keel retrain` held for approval.")],
    reason: Annotated[str, typer.Option(help="Why it may go out; recorded with who approved it.")] = "",
    plan: Annotated[str | None, typer.Option(help="Rollout steps (default: rollout.plan).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels as they arrive: adds the metric check.")] = None,
    detach: Annotated[bool, typer.Option(help="Record it and return; drive it with `keel rollout run`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Approve a challenger that passed the gate (retrain.approval: required) and start its rollout."""
    from keel.api.rollout import approve as grant

    state = grant(project_of(ctx), ref, reason, plan, labels=labels)
    console(stderr=as_json).print(
        f"approved [bold]{state['model']}@{state['version']}[/]; rollout: {', '.join(_step(s) for s in state['plan'])}"
    )
    if not detach:
        _drive(ctx, state["model"], as_json)
    elif as_json:
        _print_json(state)


def run(ctx: typer.Context, name: NameArgument = None, as_json: JsonOption = False) -> None:
    """Drive the model's rollout to its end (after `start --detach`, or after the controller was killed)."""
    _drive(ctx, name, as_json)


def _print_json(state: dict[str, Any]) -> None:
    import json

    print(json.dumps(state, indent=2, default=str))


def _drive(ctx: typer.Context, name: str | None, as_json: bool = False) -> None:
    from keel.api.rollout import drive

    out = console(stderr=as_json)  # progress to stderr when stdout is the JSON

    def changed(state: dict[str, Any], happened: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        out.print(f"{stamp} {happened}")
        for check in state.get("checks", []):
            if not check["passed"]:
                out.print(f"         [red]{check['name']}[/]: {check['detail']}")

    state = drive(project_of(ctx), name, on_change=changed)
    if as_json:
        _print_json(state)
    _outcome(state, as_json)


def _outcome(state: dict[str, Any], as_json: bool = False) -> None:
    out = console(stderr=as_json)
    ref = f"{state['model']}@{state['version']}"
    if state["status"] == "complete":
        out.print(f"[green]{ref} rolled out to full traffic[/]")
        return
    why = state["events"][-1]["why"] if state.get("events") else ""
    out.print(f"[red]{ref} {state['status']}[/]: {why}")
    raise typer.Exit(ROLLED_BACK_EXIT_CODE)


def show(
    ctx: typer.Context,
    name: NameArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole state as JSON.")] = False,
) -> None:
    """The rollout's step, its traffic, its last checks and its step changes."""

    from rich.table import Table

    from keel.api.rollout import plan_of, status, step_elapsed

    state = status(project_of(ctx), name)
    if as_json:
        _print_json(state)
        return
    out = console()
    steps = plan_of(state)
    index = min(state["step"], len(steps) - 1)
    out.print(
        f"[bold]{state['model']}@{state['version']}[/] against @{state['champion']}: {state['status']}, "
        f"step {index + 1}/{len(steps)} ({steps[index].describe()}, {step_elapsed(state):.0f} s in), "
        f"{state.get('looks', 0)} looks"
    )
    if state.get("server_error"):
        out.print(f"[yellow]cannot read the server: {state['server_error']}[/]")
    table = Table("check", "verdict", "evidence", box=None)
    for check in state.get("checks", []):
        enough = check.get("numbers", {}).get("enough", True)
        verdict = "FAIL" if not check["passed"] else ("ok" if enough else "waiting")
        table.add_row(check["name"], verdict, check["detail"])
    if state.get("checks"):
        out.print(table)
    for event in state.get("events", []):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))
        out.print(f"  {when}  {event['action']}" + (f"  ({event['why']})" if event.get("why") else ""))


def pause(
    ctx: typer.Context, name: NameArgument = None, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Hold the current step's traffic; it does not advance (a failing check still rolls back)."""
    from keel.api.rollout import pause as hold

    _said(hold(project_of(ctx), name, reason), as_json, "paused")


def resume(
    ctx: typer.Context, name: NameArgument = None, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Let a paused rollout go on."""
    from keel.api.rollout import resume as go_on

    _said(go_on(project_of(ctx), name, reason), as_json, "resumed")


def abort(
    ctx: typer.Context, name: NameArgument = None, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Stop the rollout now: the challenger's traffic is removed, the champion stays."""
    from keel.api.rollout import abort as stop

    state = stop(project_of(ctx), name, reason)
    if as_json:
        _print_json(state)
        return
    console().print(f"aborted the rollout of {state['model']}@{state['version']}; champion stays @{state['champion']}")


def _said(state: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        _print_json(state)
        return
    console().print(f"{verb} the rollout of {state['model']}@{state['version']} at step {state['step'] + 1}")


def _step(step: dict[str, Any]) -> str:
    from keel.api.rollout import Step

    return Step(**step).describe()
