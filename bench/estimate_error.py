"""How far the label-free performance estimate is from the measured metric, on windows whose
labels are known, and whether hiding it under strong shift (as ``keel monitor`` does) hides
the windows where it is wrong.

- electricity, time-ordered: a LightGBM on days 0-149 (its last fifth held out, as export
  does), then every week from day 150 on (336 rows each): real covariate and concept drift.
- adult and bank_marketing: random windows of 500 rows from rows the model never saw (no
  shift).

Per window: the estimated and the measured accuracy and ROC AUC, and the monitor's verdict
on the inputs (a column at alert, or the domain classifier at alert: the estimate is then
withheld). Printed: the hold-out's own estimate error (what export stores and the report
shows beside the estimate), then the mean and worst absolute error over the windows where
the estimate is shown and where it is withheld.

    .venv/bin/python bench/estimate_error.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "datasets"
sys.path.insert(0, str(HERE))

from false_alarms import arrays_of, encode, table_of  # noqa: E402


def study(name: str, x: pd.DataFrame, y: np.ndarray, train: np.ndarray, holdout: np.ndarray, windows: list) -> dict:
    import lightgbm as lgb

    from keel.evaluation.metrics import binary_auc, estimated_metrics
    from keel.evaluation.watched import estimate_error
    from keel.monitoring.domain import DomainLimits, domain_check
    from keel.monitoring.drift import Thresholds, family_alpha, report
    from keel.profile import build_profile, load_profile

    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(x[c]) else "categorical" for c in x.columns}
    encoded = encode(x)
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, verbose=-1, n_jobs=2)
    model.fit(encoded.iloc[train], y[train])
    score = model.predict_proba(encoded)[:, 1]
    held = estimate_error("binary", y[holdout], score[holdout], 10)
    profile = load_profile(build_profile(arrays_of(x.iloc[train], kinds), kinds))
    reference = table_of(arrays_of(x.iloc[holdout], kinds))
    limits = Thresholds(alert_alpha=family_alpha(0.01, len(kinds) + 3))
    rows = []
    for label, index in windows:
        estimated = estimated_metrics("binary", score[index])
        measured = {"accuracy": float(np.mean((score[index] >= 0.5) == y[index]))}
        if len(np.unique(y[index])) == 2:
            measured["roc_auc"] = binary_auc(y[index], score[index])
        part = table_of(arrays_of(x.iloc[index], kinds))
        drift = report("bench", "1", profile, part, limits)
        domain = domain_check(reference, part, kinds, DomainLimits(alert_alpha=limits.alert_alpha))
        hidden = bool(drift.alerts) or (domain is not None and domain.status == "alert")
        rows.append(
            {
                "window": label,
                "hidden": hidden,
                "errors": {k: estimated[k] - measured[k] for k in measured if k in estimated},
            }
        )
    summary = {"case": name, "held_out": held, "windows": len(rows)}
    for shown in (True, False):
        part = [r for r in rows if r["hidden"] != shown]
        key = "shown" if shown else "withheld"
        summary[key] = {
            "windows": len(part),
            **{
                metric: {
                    "mean_abs": float(np.mean([abs(r["errors"][metric]) for r in part if metric in r["errors"]])),
                    "worst": float(np.max([abs(r["errors"][metric]) for r in part if metric in r["errors"]])),
                }
                for metric in ("accuracy", "roc_auc")
                if any(metric in r["errors"] for r in part)
            },
        }
    return summary


def main() -> None:
    results = []
    elec = pd.read_parquet(DATA / "electricity.parquet").sort_values("t_index").reset_index(drop=True)
    y = elec.pop("class").to_numpy()
    day = elec.pop("day_index").to_numpy()
    x = elec.drop(columns=["t_index"])
    first = np.flatnonzero(day < 150)
    cut = int(0.8 * len(first))
    weeks = [
        (f"days {d}-{d + 6}", np.flatnonzero((day >= d) & (day < d + 7))) for d in range(150, int(day.max()) - 6, 7)
    ]
    results.append(study("electricity (weekly, time-ordered)", x, y, first[:cut], first[cut:], weeks))
    rng = np.random.default_rng(0)
    for name, target, positive in (("adult", "income", ">50K"), ("bank_marketing", "y", "yes")):
        frame = pd.read_parquet(DATA / f"{name}.parquet").drop(columns=["split"], errors="ignore")
        labels = frame.pop(target).astype(str).str.strip(".").eq(positive).to_numpy().astype(np.int64)
        order = rng.permutation(len(frame))
        train, holdout, rest = order[:15000], order[15000:19000], order[19000:]
        windows = [(f"random {i}", rest[i * 500 : (i + 1) * 500]) for i in range(40)]
        results.append(study(f"{name} (random windows)", frame, labels, train, holdout, windows))
    print(
        "| case | hold-out windows: accuracy error (mean, worst) | windows shown: accuracy error (mean, worst); AUC | withheld (strong shift): accuracy error; AUC |"
    )
    print("|---|---|---|---|")
    for r in results:
        held = r["held_out"]["accuracy"]

        def cell(part: dict) -> str:
            if not part["windows"]:
                return "none"
            acc, auc = part.get("accuracy", {}), part.get("roc_auc", {})
            return (
                f"{part['windows']}: {acc.get('mean_abs', float('nan')):.3f}, {acc.get('worst', float('nan')):.3f}; "
                f"{auc.get('mean_abs', float('nan')):.3f}, {auc.get('worst', float('nan')):.3f}"
            )

        print(
            f"| {r['case']} | {held['mean_abs']:.3f}, {held['worst']:.3f} | {cell(r['shown'])} | {cell(r['withheld'])} |"
        )
    out = HERE / ".data" / "estimate_error.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
