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
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@contextmanager
def status(message: str) -> Iterator[Any]:
    """A spinner on stderr whose text each step updates: ``with status(..) as step: step('...')``."""
    err = console(stderr=True)
    with err.status(message) as spinner:

        def step(text: str) -> None:
            spinner.update(f"{text}...")

        yield step


def fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
