"""Entry point: global options, command registration, and the one error path.

Every KeelError becomes one line on stderr and its exit code; anything else
becomes one 'internal error' line (exit 70). ``--debug`` adds the traceback.
Command modules import keel.api lazily, so ``keel serve`` never loads training code.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from keel._version import __version__
from keel.errors import KeelError

app = typer.Typer(
    name="keel",
    help="From a data set to a guarded production model, and keeping it healthy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class Options:
    debug: bool = False
    project: Path | None = None


def _version(value: bool) -> None:
    if value:
        print(f"keel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    project: Annotated[
        Path | None, typer.Option("--project", "-p", help="Project file or its directory (default: ./keel.yaml).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = Options(debug=debug, project=project)


def _register() -> None:
    from keel.cli import data, models, monitoring, rollout, runs, serving

    for module in (data, models, runs, serving, rollout, monitoring):
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    import click

    if argv is None:  # the process's own entry point, not a call from Python
        # At exit the interpreter's last garbage collections walk every object that mlflow,
        # pandas, sklearn and friends created: 0.75 s after `keel history`, 1.65 s after
        # `keel train` (measured). Frozen objects are skipped; files and connections are
        # closed by their owners and by the atexit handlers, which still run.
        atexit.register(gc.freeze)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _quiet_libraries(debug)
    _register()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="keel", standalone_mode=False)
        return result if isinstance(result, int) else 0  # click returns an Exit's code here
    except KeelError as exc:
        return _fail(str(exc), exc.exit_code, debug)
    except (click.exceptions.Exit, typer.Exit) as exc:  # typer 0.29 vendors its own click: its Exit is not click's
        return int(getattr(exc, "exit_code", 0) or 0)
    except (click.Abort, typer.Abort, KeyboardInterrupt):
        return _fail("interrupted.", 130, False)
    except OSError as exc:  # a file or folder the user named (or the disk) refused: say which, and why
        where = f" '{exc.filename}'" if exc.filename else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return _fail(
            f"cannot use{where}: {reason}. Check the path, its folder's permissions and the free disk space.", 3, debug
        )
    except Exception as exc:  # the CLI never shows a bare traceback without --debug
        usage: Any = exc
        if callable(getattr(usage, "show", None)) and isinstance(getattr(usage, "exit_code", None), int):
            usage.show()  # a usage error (bad option, missing argument), from click or typer's vendored click
            return int(usage.exit_code)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(
            f"internal error: {type(exc).__name__}: {first} (run with --debug for the traceback, and please report it)",
            70,
            debug,
        )


def _fail(message: str, code: int, debug: bool) -> int:
    from rich.console import Console

    if debug:
        import traceback

        traceback.print_exc()
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", style="bold red", markup=False, highlight=False)
    return code


def _quiet_libraries(debug: bool) -> None:
    """Process-wide settings for the CLI process only (the library sets nothing)."""
    for key, value in (
        ("MLFLOW_DISABLE_TELEMETRY", "true"),
        ("DO_NOT_TRACK", "true"),
        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
        ("GIT_PYTHON_REFRESH", "quiet"),
    ):
        os.environ.setdefault(key, value)
    if debug:
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "skl2onnx", "urllib3", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(mlflow|sklearn|lightgbm|skops)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
