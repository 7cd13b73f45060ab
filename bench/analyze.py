"""keel analyze vs ydata-profiling (minimal mode), side by side on the same 1,000,000 x 50 file.

    .venv/bin/python bench/analyze.py [--rows 1000000] [--skip-ydata]

The data is nycflights13 (../shared/datasets) tiled to ``--rows`` rows, with numeric columns
perturbed and extra columns derived until there are 50; it is cached under bench/.data/.
Each tool runs in its own process from the same Parquet file: load, analyse, write an HTML
report. ydata-profiling pins older pandas/numpy, so it gets its own virtual environment in
bench/.venvs/ydata (created on first use; needs network to the package index).

Targets (issue 3): keel under 20 s, peak memory under 3x the in-memory data size, and at
least 10x faster than ydata-profiling's minimal mode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "datasets" / "nycflights13.parquet"
YDATA_VENV = HERE / ".venvs" / "ydata"
YDATA_PIN = "ydata-profiling==4.18.4"

# Runs inside a child process: prints one JSON line with its own timings and memory.
CHILD_PRELUDE = """
import json, resource, sys, time
def rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
"""
KEEL_CHILD = (
    CHILD_PRELUDE
    + """
import pandas, sklearn, pyarrow, matplotlib  # imports are not the work being measured
from keel.api.data import analyze
from keel.data.triage import TriageOptions
from keel.data.report import render_html
base = rss_mb(); start = time.perf_counter(); cpu = time.process_time()
version = analyze(sys.argv[1], store=sys.argv[2], options=TriageOptions(target="arr_delay"))
page = render_html(version.triage, title="bench", digest=version.digest)
open(sys.argv[3], "w").write(page)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "base_rss_mb": base,
                  "peak_rss_mb": peak, "findings": [f.id for f in version.triage.findings if f.severity != "info"]}))
"""
)
YDATA_CHILD = (
    CHILD_PRELUDE
    + """
import pandas
from ydata_profiling import ProfileReport
base = rss_mb(); start = time.perf_counter(); cpu = time.process_time()
frame = pandas.read_parquet(sys.argv[1])
ProfileReport(frame, minimal=True, progress_bar=False).to_file(sys.argv[3])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "base_rss_mb": base,
                  "peak_rss_mb": peak}))
"""
)


def build_data(rows: int, columns: int = 50) -> Path:
    """nycflights13 tiled to ``rows`` rows and widened to ``columns`` columns (cached)."""
    out = HERE / ".data" / f"flights_{rows}x{columns}.parquet"
    if out.is_file():
        return out
    if not SHARED.is_file():
        sys.exit(f"bench: {SHARED} is absent; the benchmark needs ../shared/datasets.")
    rng = np.random.default_rng(0)
    base = pd.read_parquet(SHARED)
    frame = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).iloc[:rows].copy()
    numeric = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c]) and c != "arr_delay"]
    for c in numeric:  # perturb so the tiles are not exact copies
        frame[c] = frame[c] + rng.normal(scale=0.01, size=rows)
    categorical = ["carrier", "origin", "dest", "tailnum"]
    i = 0
    while frame.shape[1] < columns:
        source = numeric[i % len(numeric)] if i % 3 else categorical[i % len(categorical)]
        name = f"{source}_v{i}"
        if source in numeric:
            frame[name] = frame[source] * rng.uniform(0.5, 2) + rng.normal(size=rows)
        else:
            frame[name] = frame[source].astype("str") + f"_{i % 5}"
        i += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out)
    return out


def in_memory_mb(path: Path) -> float:
    frame = pd.read_parquet(path)
    return float(frame.memory_usage(deep=True).sum() / 2**20)


def ensure_ydata() -> Path:
    python = YDATA_VENV / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(YDATA_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", YDATA_PIN, "pyarrow<26", "setuptools<81"], check=True
        )
    return python


def run_child(python: str, code: str, data: Path, work: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)  # a fresh store: a reused snapshot would measure nothing
    work.mkdir(parents=True)
    env = os.environ | {"OMP_NUM_THREADS": "2", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-c", textwrap.dedent(code), str(data), str(work / "store"), str(work / "r.html")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"bench: child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-ydata", action="store_true")
    args = parser.parse_args()
    data = build_data(args.rows)
    size = in_memory_mb(data)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"data: {data.name}, {args.rows:,} rows x 50 columns, {size:,.0f} MB in memory (pandas); "
        f"loadavg before {' '.join(load)}"
    )
    work = HERE / ".data" / "work"
    keel = run_child(sys.executable, KEEL_CHILD, data, work / "keel")
    rows = [("keel analyze", keel)]
    if not args.skip_ydata:
        rows.append(("ydata-profiling minimal", run_child(str(ensure_ydata()), YDATA_CHILD, data, work / "ydata")))
    print(f"{'tool':26} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12} {'added MB':>9} {'added/data':>11}")
    for name, r in rows:
        added = r["peak_rss_mb"] - r["base_rss_mb"]
        print(
            f"{name:26} {r['seconds']:8.1f} {r['cpu_seconds']:8.1f} {r['peak_rss_mb']:12,.0f} {added:9,.0f} "
            f"{added / size:10.2f}x"
        )
    print(f"keel findings: {', '.join(keel['findings'])}")
    print(
        f"targets: keel {keel['seconds']:.1f} s (< 20 s: {'yes' if keel['seconds'] < 20 else 'NO'}); peak memory "
        f"added {(keel['peak_rss_mb'] - keel['base_rss_mb']) / size:.2f}x data (< 3x: "
        f"{'yes' if keel['peak_rss_mb'] - keel['base_rss_mb'] < 3 * size else 'NO'}); whole process peak "
        f"{keel['peak_rss_mb'] / size:.2f}x data"
    )
    if len(rows) == 2:
        ratio = rows[1][1]["seconds"] / keel["seconds"]
        print(
            f"ratio: keel is {ratio:.1f}x faster than ydata-profiling minimal (target >= 10x: "
            f"{'yes' if ratio >= 10 else 'NO'})"
        )
    print(f"loadavg after {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
