"""Measured false-alarm rates of every monitoring statistic on quiet windows of real data.

A quiet window is one where nothing changed: the reference (what export stores: the profile,
the hold-out sample, the hold-out predictions and their measured metrics) and the window are
disjoint random draws from one pool of rows, so both sides carry sampling error, as in
production. Each trial draws a fresh reference and a fresh window, so the rates are over
references too, not conditional on one lucky reference.

Data: adult, bank_marketing, electricity (binary), california_housing, diamonds
(regression), each with a LightGBM fitted once on 5,000 other rows; sms_spam for text.
Sizes: small (reference 2,000 rows, window 200) and large (reference 5,000, window 5,000).

For each statistic it prints how often quiet windows gave p below 0.05 and 0.01 (a
calibrated test: about 5% and 1%), how often the default rules flagged ("drift": p below
``monitor.alpha`` 0.001 and an effect floor) and alerted (an effect floor and p below the
family-wise share of ``monitor.false_alarm_rate`` 0.01), and how often a whole run (one
window, every test together) alerted, against its nominal 1%. The prediction chart is also
scored as it was before this change (the reference mean taken as exact, 2 sigma).

    .venv/bin/python bench/false_alarms.py [--trials 50] [--json bench/.data/false_alarms.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "datasets"
CASES = {  # file: (target, task, columns left out)
    "adult": ("income", "binary", ["split"]),
    "bank_marketing": ("y", "binary", []),
    "electricity": ("class", "binary", ["t_index", "day_index"]),
    "california_housing": ("median_house_value", "regression", []),
    "diamonds": ("price", "regression", []),
}
SIZES = {"small": (2000, 200), "large": (5000, 5000)}
TEXT_SIZES = {"small": (1000, 200), "large": (2000, 2000)}
FIT_ROWS = 5000
FALSE_ALARM_RATE = 0.01


def load_case(name: str, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, str], str]:
    """The pool of rows (inputs), the model's outputs on them, the truth, the kinds, the task."""
    import lightgbm as lgb

    target, task, dropped = CASES[name]
    frame = pd.read_parquet(DATA / f"{name}.parquet").drop(columns=dropped)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    y_raw = frame.pop(target)
    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(frame[c]) else "categorical" for c in frame.columns}
    features = frame.copy()
    for c, kind in kinds.items():
        if kind == "categorical":
            features[c] = features[c].astype("string").fillna("").astype("category")
    fit, pool = slice(0, FIT_ROWS), slice(FIT_ROWS, None)
    if task == "binary":
        classes = sorted(y_raw.astype(str).unique())
        y = (y_raw.astype(str) == classes[1]).to_numpy().astype(np.int64)
        model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=31, verbose=-1, n_jobs=2)
        model.fit(features.iloc[fit], y[fit])
        out = model.predict_proba(features.iloc[pool])[:, 1]
    else:
        y = y_raw.to_numpy(dtype=np.float64)
        model = lgb.LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=31, verbose=-1, n_jobs=2)
        model.fit(features.iloc[fit], y[fit])
        out = model.predict(features.iloc[pool])
    return frame.iloc[pool].reset_index(drop=True), out, y[pool], kinds, task


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Text and categories as pandas categories, for LightGBM (the benches' shared encoding)."""
    out = frame.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype("string").fillna("").astype("category")
    return out


def arrays_of(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for c, kind in kinds.items():
        if kind == "numeric":
            out[c] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[c] = frame[c].astype("string").fillna("").to_numpy(dtype=object)
    return out


def table_of(arrays: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({c: pa.array(v, type=pa.string()) if v.dtype == object else pa.array(v) for c, v in arrays.items()})


def tabular_trials(name: str, trials: int, seed: int, out: dict[str, list]) -> None:
    from keel.evaluation.watched import watched_bootstrap, watched_names
    from keel.monitoring.domain import DomainLimits, domain_check
    from keel.monitoring.drift import Thresholds, family_alpha, report
    from keel.monitoring.performance import LOG_TRUTH, Target, performance
    from keel.profile import build_profile, load_profile
    from keel.schema import LOG_SCORE

    pool, scores, truth, kinds, task = load_case(name, seed)
    metric = "roc_auc" if task == "binary" else "rmse"
    rng = np.random.default_rng(seed)
    for size, (n, m) in SIZES.items():
        for _ in range(trials):
            order = rng.permutation(len(pool))
            ref, win = order[:n], order[n : n + m]
            ref_arrays, win_arrays = arrays_of(pool.iloc[ref], kinds), arrays_of(pool.iloc[win], kinds)
            profile = load_profile(build_profile(ref_arrays | {LOG_SCORE: scores[ref]}, kinds | {LOG_SCORE: "numeric"}))
            tests = len(kinds) + 1 + 1 + len(watched_names(task, metric))
            alert_alpha = family_alpha(FALSE_ALARM_RATE, tests)
            limits = Thresholds(alert_alpha=alert_alpha)
            window = table_of(win_arrays | {LOG_SCORE: scores[win]})
            drift = report("bench", "1", profile, window, limits)
            key = f"{size}"
            for c in drift.columns:
                if c.column != LOG_SCORE:
                    out.setdefault(f"column PSI|{key}", []).append(
                        {"case": name, "p": c.p_value, "flag": c.status != "ok", "alert": c.status == "alert"}
                    )
            chart = drift.prediction
            assert chart is not None
            old = (chart.mean_current - chart.mean_reference) / (chart.std_reference / math.sqrt(m))
            out.setdefault(f"prediction chart|{key}", []).append(
                {"case": name, "p": chart.p_value, "flag": chart.alert, "alert": chart.alert, "old": abs(old) > 2}
            )
            domain = domain_check(
                table_of(ref_arrays), table_of(win_arrays), kinds, DomainLimits(alert_alpha=alert_alpha, seed=seed)
            )
            assert domain is not None
            out.setdefault(f"domain classifier|{key}", []).append(
                {"case": name, "p": domain.p_value, "flag": domain.status != "ok", "alert": domain.status == "alert"}
            )
            predicted_ref = np.column_stack([1 - scores[ref], scores[ref]]) if task == "binary" else scores[ref]
            measured = watched_bootstrap(task, metric, truth[ref], predicted_ref, resamples=100, seed=seed)
            base = Target(
                task, metric, task == "binary", ["0", "1"] if task == "binary" else None, {},
                resamples=100, seed=seed, measured_reference={k: v.to_dict() for k, v in measured.items()},
                alert_alpha=alert_alpha,
            )  # fmt: skip
            labelled = window.append_column(
                LOG_TRUTH, pa.array(truth[win].astype(str) if task == "binary" else truth[win])
            )
            exact = performance(replace_drop(base, 0.0), labelled)
            default = performance(base, labelled)
            assert exact is not None and default is not None
            for strict, loose in zip(exact.watched, default.watched, strict=True):
                out.setdefault(f"decay {strict.metric}|{key}", []).append(
                    {"case": name, "p": strict.p_value, "flag": loose.decayed, "alert": loose.decayed}
                )
            run_alert = drift.alerting or domain.status == "alert" or default.decayed
            out.setdefault(f"whole run (one window)|{key}", []).append(
                {"case": name, "p": math.nan, "flag": run_alert, "alert": run_alert}
            )
        print(f"  {name} {size}: done", file=sys.stderr, flush=True)


def replace_drop(target, drop: float):
    from dataclasses import replace

    return replace(target, drop=drop)


def text_trials(trials: int, seed: int, out: dict[str, list]) -> None:
    """Length and vocabulary PSI, and the mean-embedding distance, on sms_spam."""
    from keel.monitoring.drift import Thresholds, report
    from keel.monitoring.embedding import EmbeddingLimits, embedding_drift
    from keel.profile import build_profile, load_profile
    from keel.textmodels.models import DEFAULT_ENCODER, text_extra_installed

    texts = pd.read_parquet(DATA / "sms_spam.parquet")["text"].astype(str).to_numpy(dtype=object)
    vectors = None
    if text_extra_installed():
        cache = HERE / ".data" / "false_alarms" / "sms_embeddings.npy"
        if cache.is_file():
            vectors = np.load(cache)
        else:
            from keel.monitoring.embedding import _embed

            started = time.perf_counter()
            vectors = _embed(DEFAULT_ENCODER, list(texts))
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
            print(f"  embedded {len(texts):,} texts in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rng = np.random.default_rng(seed)
    for size, (n, m) in TEXT_SIZES.items():
        for _ in range(trials):
            order = rng.permutation(len(texts))
            ref, win = order[:n], order[n : n + m]
            profile = load_profile(build_profile({"text": texts[ref]}, {"text": "text"}))
            alert_alpha = FALSE_ALARM_RATE / 2  # the column and the embedding test
            drift = report("bench", "1", profile, table_of({"text": texts[win]}), Thresholds(alert_alpha=alert_alpha))
            column = drift.columns[0]
            out.setdefault(f"text length+vocabulary|{size}", []).append(
                {
                    "case": "sms_spam",
                    "p": column.p_value,
                    "flag": column.status != "ok",
                    "alert": column.status == "alert",
                }
            )
            if vectors is not None:
                moved = embedding_drift(
                    "text",
                    vectors[ref],
                    vectors[win],
                    DEFAULT_ENCODER,
                    EmbeddingLimits(alert_alpha=alert_alpha, seed=seed),
                )
                out.setdefault(f"text embedding|{size}", []).append(
                    {
                        "case": "sms_spam",
                        "p": moved.p_value,
                        "flag": moved.status != "ok",
                        "alert": moved.status == "alert",
                    }
                )
        print(f"  sms_spam {size}: done", file=sys.stderr, flush=True)


def summarise(out: dict[str, list]) -> list[dict]:
    rows = []
    for key, items in out.items():
        statistic, size = key.split("|")
        p = np.array([i["p"] for i in items], dtype=np.float64)
        has_p = np.isfinite(p).any()
        row = {
            "statistic": statistic,
            "size": size,
            "tests": len(items),
            "cases": sorted({i["case"] for i in items}),
            "p<0.05": float(np.mean(p < 0.05)) if has_p else None,
            "p<0.01": float(np.mean(p < 0.01)) if has_p else None,
            "flagged": float(np.mean([i["flag"] for i in items])),
            "alerted": float(np.mean([i["alert"] for i in items])),
        }
        if "old" in items[0]:
            row["old 2-sigma chart"] = float(np.mean([i["old"] for i in items]))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="quiet windows per data set and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=HERE / ".data" / "false_alarms.json")
    args = parser.parse_args()
    out: dict[str, list] = {}
    started = time.perf_counter()
    for name in CASES:
        tabular_trials(name, args.trials, args.seed, out)
    text_trials(args.trials * len(CASES), args.seed, out)
    rows = summarise(out)
    print(f"\n{args.trials} quiet windows per data set and size ({time.perf_counter() - started:.0f} s)\n")
    print(
        "| statistic | size | tests | p < 0.05 | p < 0.01 | flagged | alerted | before: 2-sigma chart, reference exact |"
    )
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "" if v is None else f"{v:.1%}"  # noqa: E731
    for r in rows:
        print(
            f"| {r['statistic']} | {r['size']} | {r['tests']:,} | {fmt(r['p<0.05'])} | {fmt(r['p<0.01'])} | "
            f"{fmt(r['flagged'])} | {fmt(r['alerted'])} | {fmt(r.get('old 2-sigma chart'))} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "trials": args.trials}, indent=2))


if __name__ == "__main__":
    main()
