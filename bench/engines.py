"""The local engine vs Ray on this machine, side by side: batch scoring and search trials.

    .venv/bin/python bench/engines.py [--rows 3000000] [--trials 16] [--private-network]

Ray listens on every interface; ``--private-network`` re-runs this script inside
``unshare -n`` with only loopback up (root), as the tests do. Ray runs here as a local
instance on every core (``engine.num_cpus`` unset), started by each command.

1. **Batch scoring.** The adult example's champion (LightGBM, exported to ONNX) scores
   ``--rows`` rows (the adult data set repeated): ``keel predict`` on one Parquet file
   locally, ``keel predict --engine ray`` on the same rows as 8 Parquet files (Ray Data
   reads them in parallel). Each is one CLI process, start to finish, Ray's start-up
   included; the outputs are compared (labels equal, probabilities within 1e-6).
2. **Search.** ``keel train`` on the full adult data set (48,842 rows) with
   ``train.max_trials`` LightGBM trials: locally (one trial at a time, two threads) and on
   Ray (two trials at a time, one thread each), same seed. Printed: the command's wall time,
   the search's own span (first trial start to last trial end, from the Optuna study), the
   best validation score, and, to show what "within noise" means, the local engine with
   two more seeds.

Printed: seconds, the overhead ratio Ray / local for each, /proc/loadavg, and the machine's
busy CPU seconds during each command (from /proc/stat: Ray's workers are not child processes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".data" / "engines"
ADULT = ROOT.parent / "shared" / "datasets" / "adult.parquet"
EXAMPLE = ROOT / "examples" / "adult"
KEEL = [sys.executable, "-m", "keel"]


def busy_seconds() -> float:
    """CPU seconds this machine has spent busy (all processes: Ray's workers are not our children)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def keel(*args: str, cwd: Path) -> tuple[float, float, str]:
    """Run the CLI; (wall seconds, machine CPU seconds meanwhile, stdout)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    before = busy_seconds()
    start = time.perf_counter()
    result = subprocess.run([*KEEL, *args], cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    cpu = busy_seconds() - before
    if result.returncode != 0:
        raise SystemExit(f"keel {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}")
    return wall, cpu, result.stdout


def project(name: str, data: str, train: dict) -> Path:
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = yaml.safe_load((EXAMPLE / "keel.yaml").read_text())
    config.pop("engine", None)
    config["data"] = data
    config["train"] |= train
    (folder / "keel.yaml").write_text(yaml.safe_dump(config))
    return folder


def scoring(rows: int) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = project("scoring", str(ADULT), {"families": ["lightgbm"], "budget_seconds": 30})
    for command in (("train",), ("export",), ("promote",)):
        keel(*command, cwd=folder)
    adult = pq.read_table(ADULT).drop(["income", "split"])
    repeated = pa.concat_tables([adult] * (rows // adult.num_rows + 1)).slice(0, rows)
    pq.write_table(repeated, folder / "big.parquet", row_group_size=131_072)
    parts = folder / "parts"
    parts.mkdir()
    step = -(-rows // 8)
    for i in range(8):
        pq.write_table(repeated.slice(i * step, step), parts / f"part-{i}.parquet", row_group_size=131_072)
    del adult, repeated

    local = keel("predict", "big.parquet", "-o", "local.parquet", cwd=folder)
    on_ray = keel("predict", "parts", "-o", "scored", "--engine", "ray", cwd=folder)
    ours = pa.concat_tables(pq.read_table(f) for f in sorted((folder / "scored").glob("*.parquet")))
    theirs = pq.read_table(folder / "local.parquet")
    same_labels = ours["prediction"].equals(theirs["prediction"])
    column = next(n for n in theirs.column_names if n.startswith("probability_"))
    delta = float(np.abs(ours[column].to_numpy() - theirs[column].to_numpy()).max())
    return {"local": local[:2], "ray": on_ray[:2], "same_labels": same_labels, "max_delta": delta}


def search(trials: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    runs = [("local", 42), ("ray", 42), ("local", 7), ("local", 1234)]
    for engine, seed in runs:
        folder = project(f"search-{engine}-{seed}", str(ADULT), {"families": ["lightgbm"], "budget_seconds": 900})
        config = yaml.safe_load((folder / "keel.yaml").read_text())
        config["seed"] = seed
        config["train"] |= {"max_trials": trials, "ensemble": False}
        (folder / "keel.yaml").write_text(yaml.safe_dump(config))
        wall, cpu, _ = keel("train", "--engine", engine, cwd=folder)
        storage = f"sqlite:///{folder / '.keel' / 'optuna.db'}"
        (summary,) = [s for s in optuna.get_all_study_summaries(storage) if "|lightgbm|" in s.study_name]
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        finished = [t for t in study.trials if t.state.is_finished()]
        span = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
        out[f"{engine} seed {seed}"] = {
            "wall": wall,
            "cpu": cpu,
            "span": span,
            "trials": len(finished),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in finished),
            "best": study.best_value,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--private-network", action="store_true", help="run inside unshare -n (root)")
    parser.add_argument("--only", choices=["scoring", "search"], help="run one of the two parts")
    args = parser.parse_args()
    if args.private_network:
        again = [a for a in sys.argv[1:] if a != "--private-network"]
        command = " ".join([sys.executable, str(Path(__file__).resolve()), *again])
        raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"]))
    import ray

    print(
        f"Ray {ray.__version__}, {os.cpu_count()} cores; load /proc/loadavg: {Path('/proc/loadavg').read_text().strip()}"
    )
    if args.only != "search":
        print_scoring(args.rows)
    if args.only != "scoring":
        print_search(args.trials)
    print(f"\nload /proc/loadavg after: {Path('/proc/loadavg').read_text().strip()}")


def print_scoring(rows: int) -> None:
    scored = scoring(rows)
    (lw, lc), (rw, rc) = scored["local"], scored["ray"]
    print(f"\nbatch scoring, {rows:,} rows (one CLI process each, start-up included)")
    print(f"  {'engine':<8} {'wall s':>8} {'CPU s':>8} {'rows/s':>12}")
    print(f"  {'local':<8} {lw:>8.1f} {lc:>8.1f} {rows / lw:>12,.0f}")
    print(f"  {'ray':<8} {rw:>8.1f} {rc:>8.1f} {rows / rw:>12,.0f}")
    print(f"  overhead ratio ray / local: {rw / lw:.2f}x wall")
    print(f"  same labels: {scored['same_labels']}; max |delta probability|: {scored['max_delta']:.1e}")
    print(json.dumps(scored, default=str), file=sys.stderr)


def print_search(trials: int) -> None:
    found = search(trials)
    print(f"\nsearch, {trials} LightGBM trials on adult (48,842 rows), keel train start to finish")
    print(f"  {'run':<18} {'wall s':>8} {'CPU s':>8} {'search s':>9} {'trials':>7} {'pruned':>7} {'best AUC':>9}")
    for name, r in found.items():
        print(
            f"  {name:<18} {r['wall']:>8.1f} {r['cpu']:>8.1f} {r['span']:>9.1f} {r['trials']:>7} {r['pruned']:>7} "
            f"{r['best']:>9.4f}"
        )
    local, on_ray = found["local seed 42"], found["ray seed 42"]
    spread = [r["best"] for name, r in found.items() if name.startswith("local")]
    per_trial = (on_ray["span"] - local["span"]) / trials
    fixed = (on_ray["wall"] - on_ray["span"]) - (local["wall"] - local["span"])
    print(f"  Ray's cost here: {fixed:+.1f} s once (start-up), {per_trial:+.2f} s per trial on 2 cores")
    print(
        f"  overhead ratio ray / local: {on_ray['wall'] / local['wall']:.2f}x wall, {on_ray['span'] / local['span']:.2f}x search"
    )
    print(
        f"  best score, same seed: ray {on_ray['best']:.4f} vs local {local['best']:.4f} "
        f"(delta {on_ray['best'] - local['best']:+.4f}); local across 3 seeds: {min(spread):.4f}..{max(spread):.4f}"
    )
    print(json.dumps(found, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
