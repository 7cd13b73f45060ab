"""Catch and false-refusal counts of the label-quality check (keel.evaluation.labels) on
corrupted and honest new labels, on data sets it was not tuned on.

Each case is what ``keel retrain`` sees: a champion trained on old rows, its golden set (old
held-out rows with trusted labels), and a window of new rows whose labels arrived later. A
challenger is trained on the first 80% of the window; the last 20% (rows it never saw, as
its hold-out or a refreshed golden set) are the new labelled rows the check judges, against
the golden set, each from within (``self_agreement``, at the same number of rows).

- electricity, time-ordered: the champion on days 0-149, new windows starting at days 200,
  350, 500 and 650 (200 days each): real concept drift, honest labels.
- adult and bank_marketing: champion and window are random disjoint draws (no drift).
- california_housing turned binary (value above the median), a data set the check was never
  looked at while it was written.

Every window is scored with its true labels (a refusal is a false alarm) and with a share f
of its labels flipped at random, f in 10%, 20%, 30%, 40%, 50% (a pass is a miss). Printed
per case: the check's verdict and its numbers, the old gate's view (challenger vs champion
ROC AUC on the golden set, and on the newest rows scored with the corrupted labels, against
the true gap), then the totals. Seeds: ``--seeds`` per case.

    .venv/bin/python bench/label_quality.py [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "datasets"
sys.path.insert(0, str(HERE))

from false_alarms import encode  # noqa: E402

FLIPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def fit(x: pd.DataFrame, y: np.ndarray, seed: int):
    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=31,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        verbose=-1,
        n_jobs=2,
        random_state=seed,
    )  # fmt: skip  (bagged: each seed fits other models, also on the time-ordered cases)
    return model.fit(x, y)


def cases(seed: int) -> list[tuple[str, pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray, bool]]:
    """(name, old rows, old labels, new rows in time order, new labels, time-ordered)."""
    out = []
    elec = pd.read_parquet(DATA / "electricity.parquet").sort_values("t_index")
    x = elec.drop(columns=["class", "t_index"])
    y = elec["class"].to_numpy()
    old = (elec.day_index < 150).to_numpy()
    for start in (200, 350, 500, 650):
        new = ((elec.day_index >= start) & (elec.day_index < start + 200)).to_numpy()
        out.append((f"electricity days {start}-{start + 199}", x[old], y[old], x[new], y[new], True))
    rng = np.random.default_rng(seed)
    for name, target, positive in (("adult", "income", ">50K"), ("bank_marketing", "y", "yes")):
        frame = pd.read_parquet(DATA / f"{name}.parquet").drop(columns=["split"], errors="ignore")
        labels = frame.pop(target).astype(str).str.strip(".").eq(positive).to_numpy().astype(np.int64)
        order = rng.permutation(len(frame))
        a, b = order[:15000], order[15000:30000]
        out.append((name, frame.iloc[a], labels[a], frame.iloc[b], labels[b], False))
    housing = pd.read_parquet(DATA / "california_housing.parquet")
    value = housing.pop("median_house_value").to_numpy()
    labels = (value > np.median(value)).astype(np.int64)
    order = rng.permutation(len(housing))
    a, b = order[:10000], order[10000:20000]
    out.append(("california_housing (binary)", housing.iloc[a], labels[a], housing.iloc[b], labels[b], False))
    return out


def run(seeds: int) -> dict:
    from keel.evaluation.labels import SELF_ROWS, label_quality_check, self_agreement
    from keel.evaluation.metrics import binary_auc

    rows = []
    for seed in range(seeds):
        for name, x_old, y_old, x_new, y_new, _ in cases(seed):
            rng = np.random.default_rng(seed)
            x_old, x_new = encode(x_old), encode(x_new)
            for c in x_old.columns:  # one category set on both sides
                if isinstance(x_old[c].dtype, pd.CategoricalDtype):
                    cats = sorted(set(x_old[c].cat.categories) | set(x_new[c].cat.categories))
                    x_old[c] = x_old[c].cat.set_categories(cats)
                    x_new[c] = x_new[c].cat.set_categories(cats)
            cut = int(0.8 * len(x_old))  # the champion's hold-out: its golden set
            champion = fit(x_old.iloc[:cut], y_old[:cut], seed)
            golden_x, golden_y = x_old.iloc[cut:], y_old[cut:]
            golden_champion = champion.predict_proba(golden_x)
            split = int(0.8 * len(x_new))
            for flip in FLIPS:
                flipped = rng.random(len(y_new)) < flip
                noisy = np.where(flipped, 1 - y_new, y_new)
                challenger = fit(x_new.iloc[:split], noisy[:split], seed)
                held_x, held_noisy, held_true = x_new.iloc[split:], noisy[split:], y_new[split:]
                new_challenger = challenger.predict_proba(held_x)
                new_champion = champion.predict_proba(held_x)
                kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(x_new[c]) else "categorical" for c in x_new}
                size = min(len(golden_y), len(held_noisy), SELF_ROWS)
                check = label_quality_check(
                    self_agreement(golden_x, kinds, golden_y, size, seed),
                    self_agreement(held_x, kinds, held_noisy, size, seed),
                    new_champion,
                    held_noisy,
                    ["0", "1"],
                )
                golden_gain = binary_auc(golden_y, challenger.predict_proba(golden_x)[:, 1]) - binary_auc(
                    golden_y, golden_champion[:, 1]
                )
                seen = binary_auc(held_noisy, new_challenger[:, 1]) - binary_auc(held_noisy, new_champion[:, 1])
                true = binary_auc(held_true, new_challenger[:, 1]) - binary_auc(held_true, new_champion[:, 1])
                row = {
                    "case": name,
                    "seed": seed,
                    "flip": flip,
                    "refused": not check.passed,
                    "historical": check.numbers["historical_agreement"],
                    "new": check.numbers["new_agreement"],
                    "p": check.numbers["p_value"],
                    "golden_gain": golden_gain,
                    "newest_gain_seen": seen,
                    "newest_gain_true": true,
                }
                rows.append(row)
                verdict = "REFUSED" if row["refused"] else "passed"
                print(
                    f"{name:32s} seed {seed} flip {flip:4.0%}: {verdict:8s} agreement {row['new']:.3f} vs "
                    f"{row['historical']:.3f}; golden AUC gain {golden_gain:+.3f}; newest gain seen {seen:+.3f} "
                    f"(true {true:+.3f})",
                    flush=True,
                )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / ".data" / "label_quality.json")
    args = parser.parse_args()
    result = run(args.seeds)
    rows = result["rows"]
    clean = [r for r in rows if r["flip"] == 0]
    print(f"\nhonest labels refused (false alarms): {sum(r['refused'] for r in clean)} of {len(clean)}")
    for flip in FLIPS[1:]:
        part = [r for r in rows if r["flip"] == flip]
        golden = sum(r["golden_gain"] > 0 for r in part)
        print(
            f"{flip:.0%} flipped: refused {sum(r['refused'] for r in part)} of {len(part)}; the golden set alone would "
            f"have seen a gain in {golden} of {len(part)}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
