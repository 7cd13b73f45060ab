"""keel serve vs MLServer, BentoML, `mlflow models serve` and a bare FastAPI app, side by side.

    .venv/bin/python bench/serve.py [--seconds 10] [--systems keel,mlserver,...] [--rebuild]

One LightGBM model (300 trees, 30 numeric features, binary) is trained once and given to
every server: to keel as its exported ONNX bundle (`keel serve --bundle`), to the others as
the LightGBM booster they load themselves. Each server runs alone, on loopback, in its own
process (MLServer and BentoML in their own virtual environments under bench/.venvs/,
created on first use), with one worker process unless the row says otherwise and one
compute thread per worker (`OMP_NUM_THREADS=1`; the booster's `num_threads=1` where the
server's code is ours to write). The load generator is wrk (`apt-get install wrk`), one
thread, bounded in time, in its own process; its CPU time is reported next to the server's.

Measured per server:
- startup: seconds from spawn to the first correct prediction;
- idle RSS: resident memory of the server's whole process tree after one request;
- p50 / p99 latency of single-row requests at concurrency 1;
- requests/s of single-row requests at concurrency 32;
- rows/s of 100-row batches at concurrency 8;
- errors (non-2xx and socket errors) in all of the above, and RSS after the load.

keel validates every row against its schema, returns the model version and logs every
prediction to Parquet during all of this; the other servers do none of it.

Goals (issue 6): keel first on every row of the table; at least 4x MLServer's single-row
requests/s at concurrency 32; p50 under 0.5 ms and p99 under 5 ms at concurrency 1; at
least 60,000 rows/s with 100-row batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".data" / "serve"
VENVS = HERE / ".venvs"
FEATURES = [f"f{i:02d}" for i in range(30)]
MODEL = "bench"
BATCH = 100
ANCHOR_PACKAGES = {
    "mlserver": ["mlserver==1.7.1", "mlserver-lightgbm==1.7.1", "uvloop<0.22", "lightgbm>=4.7,<4.8", "numpy<2.5"],
    "bentoml": ["bentoml>=1.4,<1.4.40", "lightgbm>=4.7,<4.8", "numpy<2.5", "pandas"],
}


# -- the model and each server's files ---------------------------------------------------


def build() -> None:
    """Train the one model; write keel's bundle and every anchor's model files under WORK."""
    import lightgbm as lgb
    import mlflow.lightgbm
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    from keel.data.infer import infer_roles, infer_schema
    from keel.exporting.bundle import write_bundle
    from keel.exporting.onnx_convert import convert_pipeline
    from keel.exporting.parity import check_parity, measure_latency
    from keel.features.build import build_pipeline
    from keel.profile import build_profile

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    x, y = make_classification(n_samples=20_000, n_features=30, n_informative=12, random_state=0)
    frame = pd.DataFrame(x.astype(np.float32), columns=FEATURES)
    labels = np.where(y == 1, "yes", "no")
    train, test = frame.iloc[:16_000], frame.iloc[16_000:].reset_index(drop=True)
    import polars as pl

    schema = infer_schema(train, infer_roles(pl.from_pandas(train)))
    model = lgb.LGBMClassifier(n_estimators=300, num_leaves=31, learning_rate=0.05, n_jobs=1, verbose=-1)
    pipeline = build_pipeline(schema, model).fit(train, y[:16_000])  # keel fits class indices
    onnx_model, schema = convert_pipeline(pipeline, schema, classification=True)
    holdout = {c: test[c].to_numpy(np.float32) for c in FEATURES}
    parity = check_parity(pipeline, onnx_model, schema, holdout, True, 1e-5)
    assert parity.passed, parity
    latency = measure_latency(onnx_model, schema, holdout)
    kinds = {c: "numeric" for c in FEATURES}
    documents = {
        "schema.json": schema.to_dict(),
        "metadata.json": {"model": MODEL, "version": "1", "task": "binary", "classes": ["no", "yes"]},
        "profile.json": build_profile({c: train[c].to_numpy(np.float32) for c in FEATURES}, kinds),
        "parity.json": {"parity": parity.to_dict(), "latency": latency.to_dict()},
    }
    write_bundle(WORK / "bundle", onnx_model, documents)
    (WORK / "keel").mkdir()
    (WORK / "keel" / "keel.yaml").write_text(f"name: {MODEL}\ndata: ../rows.parquet\ntarget: label\n")
    test.assign(label=labels[16_000:]).to_parquet(WORK / "rows.parquet")

    booster = pipeline.steps[-1][1].booster_
    booster.save_model(str(WORK / "model.txt"))
    mlflow.lightgbm.save_model(booster, str(WORK / "mlflow-model"))
    (WORK / "mlserver").mkdir()
    shutil.copy(WORK / "model.txt", WORK / "mlserver" / "model.txt")
    settings = {
        "name": MODEL,
        "implementation": "mlserver_lightgbm.LightGBMModel",
        "parameters": {"uri": "./model.txt"},
    }
    (WORK / "mlserver" / "model-settings.json").write_text(json.dumps(settings))
    (WORK / "bentoml").mkdir()
    (WORK / "bentoml" / "service.py").write_text(BENTO_SERVICE.format(model=WORK / "model.txt"))
    (WORK / "fastapi_app.py").write_text(FASTAPI_APP.format(model=WORK / "model.txt"))
    expected = pipeline.predict_proba(test.iloc[:BATCH])[:, 1]
    rows = {"rows": test.iloc[:BATCH].to_numpy().tolist(), "expected": expected.tolist()}
    (WORK / "rows.json").write_text(json.dumps(rows))
    print(
        f"built: 300 trees x 30 features; ONNX parity {parity.max_diff:.1e}; in-process ONNX Runtime "
        f"single row p50 {latency.single_row_p50_ms:.3f} ms, "
        f"{latency.batch_rows_per_s:,.0f} rows/s in batches"
    )


BENTO_SERVICE = """
import bentoml
import lightgbm as lgb
import numpy as np


@bentoml.service(workers=1)
class Bench:
    def __init__(self):
        self.booster = lgb.Booster(model_file="{model}")

    @bentoml.api
    def predict(self, rows: list[list[float]]) -> list[float]:
        return self.booster.predict(np.asarray(rows, dtype=np.float32), num_threads=1).tolist()
"""

FASTAPI_APP = """
import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
booster = lgb.Booster(model_file="{model}")


class Rows(BaseModel):
    rows: list[list[float]]


@app.get("/health")
def health():
    return {{"ok": True}}


@app.post("/predict")
def predict(body: Rows):
    return {{"predictions": booster.predict(np.asarray(body.rows, dtype=np.float32), num_threads=1).tolist()}}
"""


# -- the servers ----------------------------------------------------------------------------


@dataclass
class System:
    name: str
    command: list[str]
    cwd: Path
    ready: str  # GET path that answers 200 when the server is up
    path: str  # POST path of a prediction
    body: Any  # rows -> request body (JSON-able)
    scores: Any  # response JSON -> P(yes) per row
    env: dict[str, str] = field(default_factory=dict)


def _v2_columns(rows: list[list[float]]) -> dict[str, Any]:
    inputs = [
        {"name": name, "shape": [len(rows), 1], "datatype": "FP32", "data": [r[i] for r in rows]}
        for i, name in enumerate(FEATURES)
    ]
    return {"inputs": inputs}


def _v2_matrix(rows: list[list[float]]) -> dict[str, Any]:
    flat = [v for r in rows for v in r]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP32", "data": flat}]}


def _keel_scores(reply: dict[str, Any]) -> list[float]:
    probabilities = next(o for o in reply["outputs"] if o["name"] == "probabilities")["data"]
    return probabilities[1::2]


def systems(port: int) -> dict[str, System]:
    python = sys.executable
    keel = [python, "-m", "keel", "--project", str(WORK / "keel"), "serve", "--bundle", str(WORK / "bundle")]
    fastapi = [python, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    port_args = ["--port", str(port)]
    rows_body = lambda rows: {"rows": rows}  # noqa: E731
    frame_body = lambda rows: {"dataframe_split": {"columns": FEATURES, "data": rows}}  # noqa: E731
    return {
        "keel": System(
            "keel",
            [*keel, *port_args],
            WORK,
            "/v2/health/ready",
            f"/v2/models/{MODEL}/infer",
            _v2_columns,
            _keel_scores,
        ),
        "keel-2w": System(
            "keel-2w",
            [*keel, *port_args, "--workers", "2"],
            WORK,
            "/v2/health/ready",
            f"/v2/models/{MODEL}/infer",
            _v2_columns,
            _keel_scores,
        ),
        "mlserver": System(
            "mlserver",
            [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", "."],
            WORK / "mlserver",
            "/v2/health/ready",
            f"/v2/models/{MODEL}/infer",
            _v2_matrix,
            lambda reply: reply["outputs"][0]["data"],
            {
                "MLSERVER_HTTP_PORT": str(port),
                "MLSERVER_GRPC_PORT": str(port + 1),
                "MLSERVER_METRICS_PORT": str(port + 2),
            },
        ),
        "bentoml": System(
            "bentoml",
            [str(VENVS / "bentoml" / "bin" / "bentoml"), "serve", "service:Bench", "--host", "127.0.0.1", *port_args],
            WORK / "bentoml",
            "/readyz",
            "/predict",
            rows_body,
            lambda reply: reply,
        ),
        "mlflow": System(
            "mlflow",
            [
                *[str(Path(python).with_name("mlflow")), "models", "serve", "-m", str(WORK / "mlflow-model")],
                *["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"],
            ],
            WORK,
            "/ping",
            "/invocations",
            frame_body,
            lambda reply: reply["predictions"],
        ),
        "fastapi": System("fastapi", fastapi, WORK, "/health", "/predict", rows_body, lambda r: r["predictions"]),
        "fastapi-2w": System(
            "fastapi-2w",
            [*fastapi, "--workers", "2"],
            WORK,
            "/health",
            "/predict",
            rows_body,
            lambda r: r["predictions"],
        ),
    }


def ensure_venv(name: str) -> None:
    python = VENVS / name / "bin" / "python"
    if python.exists():
        return
    print(f"creating bench/.venvs/{name} (needs the package index; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES[name]], check=True)


# -- measuring ----------------------------------------------------------------------------


def post(url: str, body: bytes, timeout: float = 10) -> Any:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def wrk(url: str, body: bytes, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run; requests/s, latency percentiles (ms), errors, wrk's own CPU seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(script.name)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        result[f"p{pct}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (int(errors.group(1)) if errors else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    result["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def measure(system: System, port: int, seconds: float, rows: list[list[float]], expected: list[float]) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"} | system.env
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = str(Path(system.command[0]).parent) + os.pathsep + env["PATH"]  # mlflow runs `uvicorn` by name
    base = f"http://127.0.0.1:{port}"
    single = json.dumps(system.body(rows[:1])).encode()
    batch = json.dumps(system.body(rows[:BATCH])).encode()
    logfile = open(WORK / f"{system.name}.log", "w")  # noqa: SIM115
    start = time.perf_counter()
    process = subprocess.Popen(
        system.command, cwd=system.cwd, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        reply = None
        while time.perf_counter() - start < 180:
            if process.poll() is not None:
                raise RuntimeError(f"{system.name} exited with {process.returncode}; see {logfile.name}")
            try:
                urllib.request.urlopen(base + system.ready, timeout=2).read()
                reply = post(base + system.path, batch)
                break
            except OSError:
                time.sleep(0.05)
        if reply is None:
            raise RuntimeError(f"{system.name} did not answer within 180 s; see {logfile.name}")
        startup = time.perf_counter() - start
        got = [float(v) for v in system.scores(reply)]
        worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
        for _ in range(50):  # warm up
            post(base + system.path, single)
        idle = rss_mb(process.pid)
        cpu0 = cpu_seconds(process.pid)
        c1 = wrk(base + system.path, single, 1, seconds)
        cpu1 = cpu_seconds(process.pid)
        c32 = wrk(base + system.path, single, 32, seconds)
        cpu32 = cpu_seconds(process.pid)
        batched = wrk(base + system.path, batch, 8, seconds)
        cpu_b = cpu_seconds(process.pid)
        return {
            "system": system.name,
            "startup_s": startup,
            "idle_rss_mb": idle,
            "loaded_rss_mb": rss_mb(process.pid),
            "max_abs_diff": worst,
            "c1_p50_ms": c1["p50_ms"],
            "c1_p99_ms": c1["p99_ms"],
            "c32_rps": c32["rps"],
            "batch_rows_s": batched["rps"] * BATCH,
            "errors": c1["errors"] + c32["errors"] + batched["errors"],
            "server_cpu_share": {
                "c1": (cpu1 - cpu0) / seconds,
                "c32": (cpu32 - cpu1) / seconds,
                "batch": (cpu_b - cpu32) / seconds,
            },
            "wrk_cpu_share": {
                "c1": c1["wrk_cpu_s"] / seconds,
                "c32": c32["wrk_cpu_s"] / seconds,
                "batch": batched["wrk_cpu_s"] / seconds,
            },
        }
    finally:
        stop(process)
        logfile.close()


def stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def soak(port: int, seconds: float, rows: list[list[float]]) -> dict:
    """keel alone under single-row load at concurrency 32 for ``seconds``, in one-minute slices:
    errors per slice and RSS after each (issue 6: no error, RSS growth under 10 %)."""
    system = systems(port)["keel"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    base = f"http://127.0.0.1:{port}"
    single = json.dumps(system.body(rows[:1])).encode()
    with open(WORK / "soak.log", "w") as logfile:
        process = subprocess.Popen(
            system.command, cwd=system.cwd, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    post(base + system.path, single)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("keel did not start; see bench/.data/serve/soak.log") from None
                    time.sleep(0.05)
            for _ in range(50):
                post(base + system.path, single)
            idle = rss_mb(process.pid)
            slices = []
            left = seconds
            while left > 0:
                length = min(60, left)
                run = wrk(base + system.path, single, 32, length)
                left -= length
                slices.append(
                    {
                        "seconds": length,
                        "rps": run["rps"],
                        "errors": run["errors"],
                        "p99_ms": run["p99_ms"],
                        "rss_mb": rss_mb(process.pid),
                    }
                )
                print(
                    f"   {seconds - left:5.0f} s: {run['rps']:,.0f} req/s, p99 {run['p99_ms']:.2f} ms, "
                    f"{run['errors']} errors, RSS {slices[-1]['rss_mb']:.1f} MB",
                    flush=True,
                )
        finally:
            stop(process)
    first, last = slices[0]["rss_mb"], slices[-1]["rss_mb"]
    return {
        "seconds": seconds,
        "idle_rss_mb": idle,
        "rss_after_first_minute_mb": first,
        "rss_at_end_mb": last,
        "growth_vs_idle": last / idle - 1,
        "growth_after_first_minute": last / first - 1,
        "errors": sum(s["errors"] for s in slices),
        "requests": sum(s["rps"] * s["seconds"] for s in slices),
        "slices": slices,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| server | startup s | idle RSS MB | p50 ms c=1 | p99 ms c=1 | req/s c=32 | rows/s 100-row | errors | server CPU c=32 | wrk CPU c=32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['system']} | {r['startup_s']:.1f} | {r['idle_rss_mb']:.0f} | {r['c1_p50_ms']:.3f} | "
            f"{r['c1_p99_ms']:.2f} | {r['c32_rps']:,.0f} | {r['batch_rows_s']:,.0f} | {r['errors']} | "
            f"{r['server_cpu_share']['c32']:.2f} | {r['wrk_cpu_share']['c32']:.2f} |"
        )
    return "\n".join(lines)


def verdict(results: list[dict]) -> list[str]:
    by = {r["system"]: r for r in results}
    keel = by.get("keel")
    if keel is None:
        return []
    out = []
    others = [r for r in results if not r["system"].startswith("keel")]
    single_worker = [r for r in others if not r["system"].endswith("-2w")]
    checks = [
        ("c1_p50_ms", min, "p50 c=1"),
        ("c1_p99_ms", min, "p99 c=1"),
        ("c32_rps", max, "req/s c=32"),
        ("batch_rows_s", max, "rows/s batches"),
        ("idle_rss_mb", min, "idle RSS"),
        ("startup_s", min, "startup"),
    ]
    for key, best, label in checks:
        if single_worker:
            rival = best(single_worker, key=lambda r, k=key: r[k])
            ok = best(keel[key], rival[key]) == keel[key]
            out.append(
                f"{label}: keel {keel[key]:,.3f} vs best other {rival['system']} {rival[key]:,.3f} -> "
                f"{'keel first' if ok else 'NOT first'}"
            )
    if "mlserver" in by:
        ratio = keel["c32_rps"] / by["mlserver"]["c32_rps"]
        out.append(f"req/s c=32 vs MLServer: {ratio:.1f}x (goal >= 4x)")
    out.append(f"p50 {keel['c1_p50_ms']:.3f} ms (goal < 0.5), p99 {keel['c1_p99_ms']:.2f} ms (goal < 5)")
    out.append(f"100-row batches {keel['batch_rows_s']:,.0f} rows/s (goal >= 60,000)")
    if "keel-2w" in by and "fastapi-2w" in by:
        ratio = by["keel-2w"]["c32_rps"] / by["fastapi-2w"]["c32_rps"]
        out.append(
            f"two workers each, req/s c=32: keel {by['keel-2w']['c32_rps']:,.0f} vs FastAPI "
            f"{by['fastapi-2w']['c32_rps']:,.0f} ({ratio:.1f}x)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--systems", default="keel,keel-2w,mlserver,bentoml,mlflow,fastapi,fastapi-2w")
    parser.add_argument("--port", type=int, default=18_400)
    parser.add_argument("--rebuild", action="store_true", help="train the model and write the files again")
    parser.add_argument("--soak", type=float, default=0, help="instead: keel alone at concurrency 32 for this many s")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/serve.py needs wrk as the load generator: apt-get install wrk")
    if args.rebuild or not (WORK / "rows.json").exists():
        build()
    sample = json.loads((WORK / "rows.json").read_text())
    if args.soak:
        result = soak(args.port, args.soak, sample["rows"])
        (WORK / "soak.json").write_text(json.dumps(result, indent=1))
        print(
            f"soak {args.soak:.0f} s at c=32: {result['requests']:,.0f} requests, {result['errors']} errors; RSS "
            f"{result['idle_rss_mb']:.1f} MB idle -> {result['rss_after_first_minute_mb']:.1f} after the first minute "
            f"-> {result['rss_at_end_mb']:.1f} at the end ({100 * result['growth_vs_idle']:+.1f}% vs idle, "
            f"{100 * result['growth_after_first_minute']:+.1f}% after the first minute; goal: no error, growth < 10%)"
        )
        return
    chosen = args.systems.split(",")
    for name in ("mlserver", "bentoml"):
        if name in chosen:
            ensure_venv(name)
    print(f"load /proc/loadavg before: {Path('/proc/loadavg').read_text().strip()}")
    results = []
    every = systems(args.port)
    for name in chosen:
        print(f"-- {name}", flush=True)
        try:
            result = measure(every[name], args.port, args.seconds, sample["rows"], sample["expected"])
        except Exception as exc:  # one server failing must not lose the others' numbers
            print(f"   failed: {exc}")
            continue
        results.append(result)
        print(textwrap.indent(json.dumps(result, indent=1), "   "), flush=True)
        time.sleep(2)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    print()
    for line in verdict(results):
        print(line)


if __name__ == "__main__":
    main()
