"""Does `keel train --budget B` end within B + max(10%, 3 s), quiet and with every core busy?

For each data set and budget, a fresh project runs the real CLI (`python -m keel train --budget
Bs`), timed from launch to exit, once on a quiet machine and once with a CPU hog (a busy Python
loop) on every core. Data: adult (48,842 rows), bank_marketing (45,211) and a 300,000-row
tiling of adult (rows repeated with their numeric columns jittered, so the snapshot is new).
Prints the wall time, the promise, what `keel train` said, and /proc/loadavg; the table in
docs/training.md comes from this script.

    .venv/bin/python bench/budget.py [--budgets 30 60 120] [--data adult bank tiled] [--loads quiet loaded]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
SETS = {"adult": ("adult.parquet", "income", ["split"]), "bank": ("bank_marketing.parquet", "y", [])}


def tiled(folder: Path, rows: int = 300_000) -> Path:
    """adult repeated to ``rows`` rows, numeric columns jittered (a new snapshot, not a cached one)."""
    frame = pd.read_parquet(DATA / "adult.parquet").drop(columns=["split"])
    rng = np.random.default_rng(0)
    out = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    for name in ("age", "fnlwgt", "hours-per-week"):
        out[name] = out[name] + rng.normal(0, 1, rows)
    path = folder / "adult_tiled.parquet"
    out.to_parquet(path)
    return path


def project(folder: Path, data: Path, target: str, drop: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keel.yaml").write_text(
        f"name: budget-bench\ndata: {data}\ntarget: {target}\ndrop: {drop}\nseed: 1\ntrain:\n  budget_seconds: 30\n"
    )
    return folder


def hogs(count: int) -> list[subprocess.Popen[bytes]]:
    """One busy loop per core (the load a laptop running other work puts on keel)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def run(folder: Path, budget: int) -> tuple[float, str, int]:
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "keel", "train", "--budget", f"{budget}s"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=budget * 20 + 300,
    )
    wall = time.monotonic() - started
    said = re.search(r"([\d.]+) s of a [\d.]+ s budget", done.stdout)
    cut = re.search(r"cut by the budget: ([^:]*)", done.stdout)
    note = (f"said {said.group(1)} s" if said else done.stderr.strip()[-120:]) + (
        f"; cut: {cut.group(1)}" if cut else ""
    )
    return wall, note, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 60, 120])
    parser.add_argument("--data", nargs="+", default=["adult", "bank", "tiled"])
    parser.add_argument("--loads", nargs="+", default=["quiet", "loaded"])
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent", file=sys.stderr)
        return 0
    cores = os.cpu_count() or 1
    failures = 0
    print(f"{'data':8} {'load':7} {'budget':>6} {'wall s':>7} {'limit':>6} {'ratio':>6}  ok   loadavg  note")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {name: (DATA / file, target, drop) for name, (file, target, drop) in SETS.items()}
        if "tiled" in args.data:
            paths["tiled"] = (tiled(root), "income", [])
        for name in args.data:
            data, target, drop = paths[name]
            for load in args.loads:
                for budget in args.budgets:
                    folder = project(root / f"{name}-{load}-{budget}", data, target, drop)
                    busy = hogs(cores) if load == "loaded" else []
                    try:
                        time.sleep(1.0 if busy else 0.0)
                        wall, note, code = run(folder, budget)
                    finally:
                        for hog in busy:
                            hog.kill()
                            hog.wait()
                    limit = budget + max(0.1 * budget, 3.0)
                    ok = code == 0 and wall <= limit
                    failures += not ok
                    loadavg = Path("/proc/loadavg").read_text().split()[0]
                    print(
                        f"{name:8} {load:7} {budget:6d} {wall:7.1f} {limit:6.1f} {wall / budget:6.2f}  "
                        f"{'yes' if ok else 'NO ':3}  {loadavg:7}  {note}",
                        flush=True,
                    )
    print(f"\n{failures} run(s) past the promise")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
