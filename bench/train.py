"""keel train vs FLAML vs AutoGluon vs default LightGBM, side by side, same splits, same budget.

    .venv/bin/python bench/train.py [--budget 60] [--datasets adult,bank_marketing,...] [--systems keel,lightgbm,flaml,autogluon]

Each data set from ../shared/datasets gets one seeded 80/20 split (stratified for
classification), written once under bench/.data/train/ and used by every system. Each
system runs in its own process (FLAML and AutoGluon in their own virtual environments
under bench/.venvs/, created on first use) and reports: test metric (ROC AUC or RMSE),
fit seconds, single-row predict latency (median of 200 calls, each system's own
predict path; for keel the exported ONNX bundle with input validation, as served), and
peak RSS. bank_marketing is used without ``duration`` (it leaks the label).

Goals (issue 4): keel at least as good as FLAML on every data set, within 0.3% AUC / 2%
RMSE of AutoGluon, single-row predict at least 10x faster than AutoGluon's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
WORK = HERE / ".data" / "train"
DATASETS = {  # name: (target, task, dropped columns)
    "adult": ("income", "binary", ["split"]),
    "bank_marketing": ("y", "binary", ["duration"]),
    "credit_g": ("class", "binary", []),
    "california_housing": ("median_house_value", "regression", []),
    "diamonds": ("price", "regression", []),
}
VENVS = {
    "flaml": ["flaml[automl]", "pyarrow", "setuptools<81"],
    "autogluon": ["torch==2.13.0", "autogluon.tabular", "pyarrow", "setuptools<81"],
}

PRELUDE = """
import json, resource, sys, time
import numpy as np, pandas as pd
spec = json.loads(sys.argv[1])
train = pd.read_parquet(spec["train"]); test = pd.read_parquet(spec["test"])
target, task, budget = spec["target"], spec["task"], spec["budget"]
X, y = train.drop(columns=[target]), train[target]
Xt, yt = test.drop(columns=[target]), test[target]
def metric(pred):
    from sklearn.metrics import roc_auc_score, root_mean_squared_error
    if task == "binary":
        positive = sorted(y.astype(str).unique())[1]
        return float(roc_auc_score((yt.astype(str) == positive).astype(int), pred))
    return float(root_mean_squared_error(yt, pred))
def latency(call):
    call(); times = []
    for _ in range(200):
        start = time.perf_counter(); call(); times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)
def done(score, fit_seconds, one_row_ms, note=""):
    print(json.dumps({"metric": score, "fit_seconds": fit_seconds, "one_row_ms": one_row_ms, "note": note,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

LIGHTGBM = (
    PRELUDE
    + """
import lightgbm as lgb
for frame in (X, Xt):
    for c in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            frame[c] = frame[c].astype("category")
for c in Xt.columns:
    if isinstance(X[c].dtype, pd.CategoricalDtype):
        Xt[c] = pd.Categorical(Xt[c], categories=X[c].cat.categories)
start = time.perf_counter()
model = (lgb.LGBMClassifier if task == "binary" else lgb.LGBMRegressor)(verbose=-1, n_jobs=2, random_state=0)
model.fit(X, y.astype(str) if task == "binary" else y)
fit = time.perf_counter() - start
pred = model.predict_proba(Xt)[:, 1] if task == "binary" else model.predict(Xt)
one = Xt.iloc[:1]
done(metric(pred), fit, latency(lambda: model.predict(one)))
"""
)

FLAML = (
    PRELUDE
    + """
from flaml import AutoML
automl = AutoML()
start = time.perf_counter()
automl.fit(X, y.astype(str) if task == "binary" else y, task="classification" if task == "binary" else "regression",
           time_budget=budget, metric="roc_auc" if task == "binary" else "rmse", seed=0, verbose=0, n_jobs=2)
fit = time.perf_counter() - start
pred = automl.predict_proba(Xt)[:, 1] if task == "binary" else automl.predict(Xt)
one = Xt.iloc[:1]
done(metric(pred), fit, latency(lambda: automl.predict(one)), note=automl.best_estimator)
"""
)

AUTOGLUON = (
    PRELUDE
    + """
import tempfile
from autogluon.tabular import TabularPredictor
path = tempfile.mkdtemp()
start = time.perf_counter()
predictor = TabularPredictor(label=target, eval_metric="roc_auc" if task == "binary" else "root_mean_squared_error",
                             path=path, verbosity=0).fit(train, presets="medium_quality", time_limit=budget)
fit = time.perf_counter() - start
if task == "binary":
    proba = predictor.predict_proba(Xt)
    pred = proba[sorted(proba.columns.astype(str))[1] if proba.columns.dtype == object else proba.columns[1]]
else:
    pred = predictor.predict(Xt)
one = Xt.iloc[:1]
done(metric(np.asarray(pred)), fit, latency(lambda: predictor.predict(one)), note=predictor.model_best)
"""
)

KEEL = (
    PRELUDE
    + """
import os, tempfile, yaml, keel
from pathlib import Path
from keel.api.serving import load_alias
from keel.serving.predictor import Predictor
from keel.store import Store
root = Path(tempfile.mkdtemp())
(root / "keel.yaml").write_text(yaml.safe_dump({
    "name": "bench", "data": spec["train"], "target": target, "seed": 0,
    "split": {"test_size": 0.1}, "train": {"budget_seconds": budget, "threads": 2}}))
project = keel.load_project(root)
start = time.perf_counter()
result = keel.train(project)
fit = time.perf_counter() - start
keel.export(project, result.version.ref)
keel.promote(project, result.version.ref)
predictor = Predictor(load_alias(Store(project.store_path), "bench"))
out = predictor.predict(predictor.schema.frame_to_arrays(Xt))
if task == "binary":
    positive = sorted(y.astype(str).unique())[1]
    pred = out.probabilities[:, predictor.classes.index(positive)]
else:
    pred = out.score
row = json.loads(Xt.iloc[:1].to_json(orient="records"))
one = lambda: predictor.predict(predictor.schema.rows_to_arrays(row))
done(metric(pred), fit, latency(one), note=result.best.family)
"""
)

CODE = {"keel": KEEL, "lightgbm": LIGHTGBM, "flaml": FLAML, "autogluon": AUTOGLUON}


def split(name: str) -> dict[str, str]:
    """One seeded 80/20 split per data set, written once and shared by every system."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    target, task, dropped = DATASETS[name]
    folder = WORK / name
    if not (folder / "test.parquet").is_file():
        frame = pd.read_parquet(SHARED / f"{name}.parquet").drop(columns=dropped)
        stratify = frame[target] if task == "binary" else None
        train, test = train_test_split(frame, test_size=0.2, random_state=0, stratify=stratify)
        folder.mkdir(parents=True, exist_ok=True)
        train.reset_index(drop=True).to_parquet(folder / "train.parquet")
        test.reset_index(drop=True).to_parquet(folder / "test.parquet")
    return {
        "train": str(folder / "train.parquet"),
        "test": str(folder / "test.parquet"),
        "target": target,
        "task": task,
    }


def python_for(system: str) -> str:
    if system not in VENVS:
        return sys.executable
    venv = HERE / ".venvs" / system
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *VENVS[system]], check=True)
    return str(python)


def run(system: str, spec: dict[str, object]) -> dict[str, object]:
    env = os.environ | {
        "OMP_NUM_THREADS": "2",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "ignore",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [python_for(system), "-c", textwrap.dedent(CODE[system]), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else "failed", "wall": wall}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--systems", default="keel,lightgbm,flaml,autogluon")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"bench: {SHARED} is absent; the benchmark needs ../shared/datasets.")
    systems = args.systems.split(",")
    results: dict[str, dict[str, dict[str, object]]] = {}
    print(f"budget {args.budget:g} s per system; loadavg {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(
        f"{'data set':20} {'system':10} {'metric':>10} {'fit s':>7} {'wall s':>7} {'1-row ms':>9} {'peak MB':>8}  note"
    )
    for name in args.datasets.split(","):
        spec = split(name) | {"budget": args.budget}
        results[name] = {}
        for system in systems:
            r = results[name][system] = run(system, spec)
            if "error" in r:
                print(f"{name:20} {system:10} error: {r['error']}")
                continue
            print(
                f"{name:20} {system:10} {r['metric']:10.4f} {r['fit_seconds']:7.1f} {r['wall']:7.1f} "
                f"{r['one_row_ms']:9.3f} {r['peak_rss_mb']:8.0f}  {r.get('note', '')}"
            )
        print(f"{'':20} keel rank: {rank(results[name], DATASETS[name][1])}")
    goals(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def rank(row: dict[str, dict[str, object]], task: str) -> str:
    scored = {s: r["metric"] for s, r in row.items() if "metric" in r}
    if "keel" not in scored:
        return "-"
    order = sorted(scored, key=lambda s: scored[s], reverse=task == "binary")
    return f"{order.index('keel') + 1} of {len(order)}"


def goals(results: dict[str, dict[str, dict[str, object]]]) -> None:
    print("goals:")
    for name, row in results.items():
        task = DATASETS[name][1]
        keel, flaml, ag = row.get("keel", {}), row.get("flaml", {}), row.get("autogluon", {})
        if "metric" not in keel:
            continue
        parts = []
        if "metric" in flaml:
            ok = keel["metric"] >= flaml["metric"] if task == "binary" else keel["metric"] <= flaml["metric"]
            parts.append(f"vs FLAML {'ok' if ok else 'MISSED'}")
        if "metric" in ag:
            gap = (ag["metric"] - keel["metric"]) if task == "binary" else (keel["metric"] / ag["metric"] - 1)
            limit = 0.003 if task == "binary" else 0.02
            parts.append(f"vs AutoGluon {gap:+.4f} ({'ok' if gap <= limit else 'MISSED'})")
            ratio = ag["one_row_ms"] / keel["one_row_ms"]
            parts.append(f"1-row predict {ratio:.0f}x faster than AutoGluon ({'ok' if ratio >= 10 else 'MISSED'})")
        print(f"  {name}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
