"""Helpers shared by the command modules: the project, consoles, progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from keel.config import Project, load_project


def project_of(ctx: typer.Context, data: Path | None = None) -> Project:
    """The project named by --project (or ./keel.yaml), with an optional --data override."""
    project = load_project(ctx.obj.project if ctx.obj else None)
    return project.with_data(data) if data else project


def console(stderr: bool = False) -> Any:
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160  # piped output: do not squeeze tables into 80 columns
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


@contextmanager
def status(message: str) -> Iterator[Any]:
    """A spinner on stderr whose text each step updates: ``with status(..) as step: step('...')``."""
    err = console(stderr=True)
    with err.status(message) as spinner:

        def step(text: str) -> None:
            spinner.update(f"{text}...")

        yield step


def process_started() -> float:
    """When this process started, on the ``time.monotonic`` clock: a budget counts from the moment
    the user pressed enter, imports included (psutil's creation time is the kernel's)."""
    import time

    try:
        import psutil

        age = time.time() - psutil.Process().create_time()
    except Exception:  # no /proc: count from now
        return time.monotonic()
    return time.monotonic() - max(0.0, min(age, 60.0))


def fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '2m' or '1h'; ConfigError otherwise."""
    import math

    from keel.errors import ConfigError

    value = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:])
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"'{text}' is not a duration.", hint="Use e.g. --budget 60s, 5m or 1h.") from None
    if not math.isfinite(seconds):
        raise ConfigError(f"a training budget must be a finite duration, got {text}.", hint="Use e.g. --budget 60s.")
    if seconds <= 0:
        raise ConfigError(f"a training budget must be positive, got {text}.", hint="Use e.g. --budget 60s.")
    return seconds


@contextmanager
def training_progress(budget: float, started: float) -> Iterator[tuple[Any, Any]]:
    """A bar over the time budget whose text shows the current step and the best score so far."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console(stderr=True), transient=True
    ) as bar:
        task = bar.add_task("training", total=budget)
        best: dict[str, str] = {}

        def step(text: str) -> None:
            bar.update(task, description=text, completed=min(time.monotonic() - started, budget))

        def trial(report: Any) -> None:
            if report.best is not None:
                best[report.family] = f"{report.best:.4f}"
            so_far = ", ".join(f"{family} {value}" for family, value in best.items())
            step(f"{report.family} trial {report.number} ({report.state}); best so far: {so_far}")

        yield step, trial
