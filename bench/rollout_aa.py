"""A/A rollouts: how often the rollout checks roll back a challenger that is the champion itself.

For each data set: train and promote one model, start a real ``keel serve`` on 127.0.0.1 and
a load generator (4 threads, rows drawn at random from the data, each with an id and, for half
of them, a label that "arrives" in a labels file), then run ``--runs`` A/A rollouts one after
another (``keel rollout start --aa``: the champion against itself) with the plan
``shadow:6s,canary:50%:6s,full`` looked at every second. Every check runs (errors, latency,
agreement, score drift, the labelled metric), so a rolled-back run is a false rollback.

Prints each data set's false rollbacks, their rate with a 95% Clopper-Pearson upper bound,
and the nominal ``rollout.false_rollback_rate`` (0.05), plus the smallest p-value each check
saw over all looks (the Bonferroni share each test had to beat). ``--busy N`` adds N
processes spinning on the CPU during the rollouts (the machine has 2 cores).

    .venv/bin/python bench/rollout_aa.py [--runs 20] [--busy 1] [--json bench/.data/rollout_aa.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "datasets"
CASES = {  # name: (target, columns left out, rows)
    "adult": ("income", ["split"], 4000),
    "california_housing": ("median_house_value", [], 4000),
}
PLAN = "shadow:6s,canary:50%:6s,full"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spin() -> None:
    while True:
        pass


def _project(directory: Path, name: str, port: int) -> tuple[Path, pd.DataFrame]:
    target, dropped, rows = CASES[name]
    frame = pd.read_parquet(DATA / f"{name}.parquet").drop(columns=dropped).sample(rows, random_state=0)
    frame = frame.reset_index(drop=True)
    frame.to_parquet(directory / "data.parquet")
    config = {
        "name": name.replace("_", "-"),
        "data": "data.parquet",
        "target": target,
        "seed": 0,
        "train": {"families": ["lightgbm"], "budget_seconds": 20},
        "serving": {"port": port, "id_column": "row_id", "reload_poll_seconds": 0.5, "log_flush_seconds": 0.5},
        "rollout": {"interval_seconds": 1.0, "min_requests": 50},
    }
    (directory / "keel.yaml").write_text(yaml.safe_dump(config))
    return directory, frame


def _keel(directory: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "keel", *args], cwd=directory, check=True, capture_output=True)


def _load(url: str, frame: pd.DataFrame, target: str, stop: threading.Event, counts: Counter) -> None:
    import httpx

    features = frame.drop(columns=[target])
    features.insert(0, "row_id", [str(i) for i in range(len(frame))])
    features = features.astype(object).where(features.notna(), None)  # JSON null for a missing value
    rows = features.to_dict("records")
    rng = random.Random(threading.get_ident())
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                reply = client.post(f"{url}/predict", json={"rows": [rows[rng.randrange(len(rows))]]})
            except httpx.HTTPError:
                if stop.is_set():  # the server is going down at the end
                    return
                raise
            counts[reply.status_code] += 1


def run_case(name: str, runs: int, busy: int, workdir: Path) -> dict:
    from keel.api.rollout import drive, start
    from keel.config import load_project

    port = _port()
    directory, frame = _project(workdir / name, name, port)
    target = CASES[name][0]
    _keel(directory, "train")
    _keel(directory, "export")
    _keel(directory, "promote")
    labels = directory / "labels.csv"
    half = frame.iloc[::2]
    pd.DataFrame({"row_id": [str(i) for i in half.index], target: half[target]}).to_csv(labels, index=False)
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "--port", str(port)],
        cwd=directory,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop, counts = threading.Event(), Counter()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        threads = [
            threading.Thread(target=_load, args=(f"http://127.0.0.1:{port}", frame, target, stop, counts))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for spinner in spinners:
            spinner.start()
        project = load_project(directory)
        outcomes, smallest = [], {}
        for i in range(runs):
            state = start(project, "1", PLAN, labels=labels, aa=True)
            began = time.monotonic()
            state = drive(project)
            failed = [c["name"] for c in state.get("checks", []) if not c["passed"]]
            for event in state.get("events", []):
                if event["action"] == "rollout rollback":
                    failed = failed or [event["why"][:60]]
            outcomes.append({"status": state["status"], "failed": failed, "seconds": time.monotonic() - began})
            print(f"  {name} run {i + 1}: {state['status']} {failed or ''} ({time.monotonic() - began:.0f} s)")
            for check in state.get("checks", []):
                p = check.get("numbers", {}).get("p_value")
                if p is not None:
                    smallest[check["name"]] = min(p, smallest.get(check["name"], 1.0))
        alpha = state["tests"] and project.config.rollout.false_rollback_rate / state["tests"]
    finally:
        stop.set()
        for spinner in spinners:
            spinner.terminate()
        server.terminate()
        server.wait(30)
    rolled = sum(o["status"] != "complete" for o in outcomes)
    return {
        "case": name,
        "runs": runs,
        "false_rollbacks": rolled,
        "upper95": _upper(rolled, runs),
        "per_test_alpha": alpha,
        "smallest_p_last_look": smallest,
        "requests": dict(counts),
        "outcomes": outcomes,
    }


def _wait(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server at {url} did not come up")


def _upper(k: int, n: int) -> float:
    from scipy.stats import beta

    return 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", type=int, default=0, help="CPU-spinning processes during the rollouts")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    results = []
    with tempfile.TemporaryDirectory(prefix="keel-aa-") as tmp:
        for name in args.cases:
            (Path(tmp) / name).mkdir()
            results.append(run_case(name, args.runs, args.busy, Path(tmp)))
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)
    print(f"\nA/A rollouts, plan {PLAN}, looks every 1 s, busy processes: {args.busy}")
    print(f"{'case':20} {'runs':>5} {'rolled back':>12} {'rate':>7} {'95% upper':>10} {'nominal':>8}  requests")
    for r in results:
        rate = r["false_rollbacks"] / r["runs"]
        print(
            f"{r['case']:20} {r['runs']:>5} {r['false_rollbacks']:>12} {rate:>7.1%} {r['upper95']:>10.1%} "
            f"{0.05:>8.0%}  {r['requests']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
