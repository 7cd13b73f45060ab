"""``keel serve | predict``: these commands import nothing of the training stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli.common import console, project_of


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("predict")(predict)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from keel.yaml, 8000).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes on the one port (each with one ONNX Runtime thread).")
    ] = 1,
    bundle: Annotated[
        Path | None,
        typer.Option(help="Serve this exported bundle directory instead of the registry's champion (no hot swap)."),
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="local, or ray: replicas on Ray Serve (default: keel.yaml).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="A running Ray cluster, ray://HEAD:10001.")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="Ray Serve replicas of the server (Ray engine).")] = 1,
) -> None:
    """Serve the champion's ONNX bundle over HTTP: POST /predict, the Open Inference Protocol v2
    (/v2/...), /metrics; swaps to a new champion on promote or rollback without a restart."""
    from keel.api.serving import serve as run_serve
    from keel.config import resolve_engine

    project = project_of(ctx)
    chosen = resolve_engine(project.config.engine, engine, address)
    processes = f"{replicas} Ray Serve replica(s)" if chosen.name == "ray" else f"{workers} worker(s)"

    def ready(url: str, served: Any) -> None:
        follows = "a fixed bundle, no hot swap" if bundle else "follows the champion alias"
        console(stderr=True).print(
            f"serving [bold]{served.model}@{served.version}[/] on {url} with {processes} "
            f"(POST /predict, /v2/models/{served.model}/infer, GET /health, /metrics); {follows}; Ctrl-C stops"
        )

    run_serve(
        project,
        host=host,
        port=port,
        workers=workers,
        bundle_dir=bundle,
        on_ready=ready,
        engine=chosen,
        replicas=replicas,
    )


def predict(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help="CSV or Parquet file (Ray: a Parquet file, directory or glob).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (.parquet or .csv; Ray: a directory).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="local, or ray: score on Ray Data (default: keel.yaml).")] = None,
    address: Annotated[str | None, typer.Option(help="A running Ray cluster, ray://HEAD:10001.")] = None,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Add the scored rows to the prediction log (keel monitor reads it).")
    ] = True,
) -> None:
    """Score a file in batch with the champion's ONNX bundle; the rows go to the prediction log
    (route 'batch') unless --no-log."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keel.api.serving import predict_file
    from keel.config import resolve_engine

    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("scoring", total=None)
        project = project_of(ctx)
        result = predict_file(
            project,
            data,
            output,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            engine=resolve_engine(project.config.engine, engine, address),
            log=log,
        )
    rate = result.rows / max(result.seconds, 1e-9)
    console().print(
        f"scored {result.rows:,} rows with [bold]{result.model}@{result.version}[/] in "
        f"{result.seconds:.2f} s ({rate:,.0f} rows/s) -> {result.output}" + ("; logged for keel monitor" if log else "")
    )
