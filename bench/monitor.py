"""keel's drift report vs Evidently's data drift report, side by side, on the same files.

    .venv/bin/python bench/monitor.py [--rows 1000000] [--skip-evidently]

A reference of 50,000 "training" rows and a log of ``--rows`` rows x 20 columns (normal,
skewed, discrete, with missing values, categorical) are written once as Parquet under
bench/.data/monitor/. Two cases: no drift (the log is a resample of the reference) and one
column shifted by 0.1 standard deviation. Each tool reads the files and reports: keel from
the reference profile (built at training time, so not timed) and the log, as `keel monitor`
does, then the domain classifier on 5,000 reference rows vs 5,000 logged rows and the
label-free performance estimate (both timed too, and the drift part alone printed beside); Evidently 0.7 (`Report([DataDriftPreset()])`, its defaults) from the two DataFrames,
in its own virtual environment (bench/.venvs/evidently, created on first use). Timed: read
plus report, each in a fresh process (keel best of two, Evidently one run). Printed: seconds, the ratio, and which
columns each tool flags in each case.

Goals (issue 7): 1,000,000 rows x 20 columns in under 5 s, at least 5x faster than
Evidently, with both tools' false alarms on the no-drift case printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".data" / "monitor"
VENV = HERE / ".venvs" / "evidently"
REFERENCE_ROWS = 50_000
SHIFTED = "normal2"

KEEL = """
import json, sys, time
start = time.perf_counter()
import numpy as np
import pyarrow.parquet as pq
from keel.monitoring.domain import DomainLimits, domain_check
from keel.monitoring.drift import Thresholds, report
from keel.monitoring.log import read_log
from keel.monitoring.performance import Target, performance
from keel.profile import load_profile
profile = load_profile(json.load(open(sys.argv[1])))
table = read_log(__import__("pathlib").Path(sys.argv[2]))
drift = report("bench", "1", profile, table, Thresholds())
drift_seconds = time.perf_counter() - start
reference = pq.read_table(sys.argv[3])  # export stores up to monitor.domain_rows (5,000) of these
reference = reference.take(np.random.default_rng(0).choice(reference.num_rows, 5000, replace=False))
kinds = {name: p.kind for name, p in profile.items() if name != "keel_score"}
domain = domain_check(reference, table, kinds, DomainLimits())
estimate = performance(Target("binary", "roc_auc", True, ["0", "1"], {}), table)
print(json.dumps({"seconds": time.perf_counter() - start, "drift_seconds": drift_seconds, "rows": drift.rows,
                  "flagged": [c.column for c in drift.columns if c.status != "ok"],
                  "domain_auc": domain.auc, "domain_status": domain.status,
                  "estimated": estimate.estimated}))
"""

EVIDENTLY = """
import json, sys, time
start = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2]).drop(columns=["keel_ts"])
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - start
flagged, count = [], None
for metric in snapshot.dict()["metrics"]:
    name = metric.get("metric_name", "")
    if name.startswith("DriftedColumnsCount"):
        count = metric["value"]["count"]
    if name.startswith("ValueDrift("):
        config = metric.get("config", {})
        column = config.get("column")
        threshold = config.get("threshold")
        value = metric["value"]
        method = config.get("method", "")
        # p-value methods drift below the threshold, distance methods above it
        drifted = value < threshold if "p_value" in method or "test" in method.lower() else value >= threshold
        if drifted:
            flagged.append(column)
assert count is None or count == len(flagged), (count, flagged)  # our reading agrees with Evidently's own count
print(json.dumps({"seconds": seconds, "flagged": sorted(flagged)}))
"""


def build(rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_drift import as_table, kinds, resample, training  # the generator the tests use

    from keel.profile import build_profile

    WORK.mkdir(parents=True, exist_ok=True)
    cols = training(np.random.default_rng(7))
    features = {k: v for k, v in cols.items()}
    pq.write_table(as_table(features), WORK / "reference.parquet")
    (WORK / "profile.json").write_text(json.dumps(build_profile(features, kinds(features))))
    rng = np.random.default_rng(11)
    quiet = resample(features, rows, rng)
    shifted = dict(quiet)
    shifted[SHIFTED] = quiet[SHIFTED] + 0.1 * np.nanstd(cols[SHIFTED])
    stamps = pa.array(np.full(rows, np.datetime64("2026-11-24T00:00:00", "us")))
    for case, data in (("quiet", quiet), ("shifted", shifted)):
        folder = WORK / case
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.parquet"):
            old.unlink()
        table = as_table(data).append_column("keel_ts", stamps)
        pq.write_table(table, folder / "segment.parquet", row_group_size=131_072)


def run(python: str, script: str, *args: str) -> dict:
    out = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(times: int, python: str, script: str, *args: str) -> dict:
    results = [run(python, script, *args) for _ in range(times)]
    return min(results, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    marker = WORK / f"built-{args.rows}"
    if args.rebuild or not marker.exists():
        build(args.rows)
        for old in WORK.glob("built-*"):
            old.unlink()
        marker.touch()
    if not args.skip_evidently and not (VENV / "bin" / "python").exists():
        print("creating bench/.venvs/evidently (needs the package index)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "evidently==0.7.23", "pandas>=2.2,<3.1", "pyarrow"], check=True)
    print(f"load /proc/loadavg before: {Path('/proc/loadavg').read_text().strip()}")
    results: dict[str, dict] = {}
    for case in ("quiet", "shifted"):
        keel = best_of(
            2, sys.executable, KEEL, str(WORK / "profile.json"), str(WORK / case), str(WORK / "reference.parquet")
        )
        results[f"keel/{case}"] = keel
        print(
            f"keel      {case:8s} {keel['seconds']:6.2f} s  flagged {keel['flagged']}  (drift alone "
            f"{keel['drift_seconds']:.2f} s; domain classifier AUC {keel['domain_auc']:.3f} {keel['domain_status']})",
            flush=True,
        )
        if not args.skip_evidently:
            evidently = best_of(
                1,
                str(VENV / "bin" / "python"),
                EVIDENTLY,
                str(WORK / "reference.parquet"),
                str(WORK / case / "segment.parquet"),
            )
            results[f"evidently/{case}"] = evidently
            print(f"evidently {case:8s} {evidently['seconds']:6.2f} s  flagged {evidently['flagged']}", flush=True)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    print()
    quiet = results["keel/quiet"]
    lines = [f"keel: {args.rows:,} rows x 20 columns in {quiet['seconds']:.2f} s (goal < 5 s)"]
    if "evidently/quiet" in results:
        ratio = results["evidently/quiet"]["seconds"] / quiet["seconds"]
        lines.append(f"Evidently / keel time on the same data: {ratio:.1f}x (goal >= 5x)")
        lines.append(
            f"false alarms on no drift: keel {len(quiet['flagged'])} of 20 columns, "
            f"Evidently {len(results['evidently/quiet']['flagged'])} of 20"
        )
        lines.append(
            f"the {SHIFTED} 0.1 sd shift: keel {'found' if SHIFTED in results['keel/shifted']['flagged'] else 'missed'}, "
            f"Evidently {'found' if SHIFTED in results['evidently/shifted']['flagged'] else 'missed'}"
        )
    print(textwrap.dedent("\n".join(lines)))


if __name__ == "__main__":
    main()
