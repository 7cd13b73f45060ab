"""Text strategies on sms_spam, side by side: the TF-IDF baseline (the anchor) against sentence
embeddings and LoRA fine-tuning, each trained, exported and scored by keel as a user would.

    .venv/bin/python bench/text.py [--rows N] [--budget 900] [--strategies linear,embeddings,lora]

For each strategy: ``keel train`` with only that family (the baseline rides along), then
``keel export`` (``export.quantize: true`` for the transformer graphs: INT8 is kept only
within the accuracy budget). Every strategy sees the same data snapshot and the same 80/20
stratified split (seed 42).

Printed per strategy: test accuracy and ROC AUC of the registered model (the native
pipeline), the accuracy of the graph that is served (the export's held-out check; INT8
when kept), the served latency per text (one-row request, p50) and per batch of 32 (p50),
each from raw text (tokenising included), one ONNX thread; the training command's seconds;
and ratios against TF-IDF. sms_spam holds 7.2% duplicate rows, so every score is optimistic.
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
WORK = HERE / ".data" / "text"
SMS = ROOT.parent / "shared" / "datasets" / "sms_spam.parquet"
KEEL = Path(sys.executable).parent / "keel"


def run(strategy: str, rows: int | None, budget: float) -> dict[str, float | str]:
    import pandas as pd

    folder = WORK / strategy
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    frame = pd.read_parquet(SMS)
    if rows:
        frame = frame.sample(rows, random_state=0)
    frame.to_parquet(folder / "sms.parquet")
    config = {
        "name": f"sms-{strategy}",
        "data": "sms.parquet",
        "target": "label",
        # the searched families stop at 40 trials; LoRA is one early-stopped fit that the budget must not cut
        "train": {"budget_seconds": budget, "families": [strategy], "ensemble": False, "max_trials": 40},
        "export": {"quantize": True},
    }
    (folder / "keel.yaml").write_text(yaml.safe_dump(config))
    env = os.environ | {"NO_COLOR": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    subprocess.run([str(KEEL), "train"], cwd=folder, env=env, check=True, capture_output=True)
    train_s = time.perf_counter() - start
    subprocess.run([str(KEEL), "export"], cwd=folder, env=env, check=True, capture_output=True)
    bundle = folder / ".keel" / "bundles" / config["name"] / "1"
    meta = json.loads((bundle / "metadata.json").read_text())
    parity = json.loads((bundle / "parity.json").read_text())
    quant = parity.get("quantization", {})
    served = quant.get("int8_accuracy" if quant.get("accepted") else "fp32_accuracy", meta["metrics"].get("accuracy"))
    return {
        "strategy": strategy,
        "family": meta["family"],
        "accuracy": meta["metrics"]["accuracy"],
        "roc_auc": meta["metrics"]["roc_auc"],
        "served": "int8" if quant.get("accepted") else "fp32",
        "served_accuracy": served,
        "fp32_accuracy": quant.get("fp32_accuracy", meta["metrics"]["accuracy"]),
        "one_text_ms": parity["latency"]["single_row_p50_ms"],
        "batch32_ms": parity["latency"]["batch32_p50_ms"],
        "train_s": train_s,
        "max_logit_diff": parity["parity"]["max_diff"] if parity["parity"]["output"] == "logits" else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="a sample of sms_spam (default: all 5,574 rows)")
    parser.add_argument("--budget", type=float, default=900.0)
    parser.add_argument("--strategies", default="linear,embeddings,lora")
    args = parser.parse_args()
    results = [run(s, args.rows, args.budget) for s in args.strategies.split(",")]
    anchor = next((r for r in results if r["strategy"] == "linear"), results[0])
    header = (
        f"{'strategy':<11} {'accuracy':>8} {'roc_auc':>8} {'served':>6} {'served acc':>10} {'1 text ms':>9} "
        f"{'32 texts ms':>11} {'x TF-IDF':>8} {'train s':>8} {'max dlogit':>10}"
    )
    print(header)
    for r in results:
        ratio = float(r["batch32_ms"]) / float(anchor["batch32_ms"])
        print(
            f"{r['strategy']:<11} {r['accuracy']:>8.4f} {r['roc_auc']:>8.4f} {r['served']:>6} "
            f"{r['served_accuracy']:>10.4f} {r['one_text_ms']:>9.3f} {r['batch32_ms']:>11.2f} {ratio:>8.1f} "
            f"{r['train_s']:>8.1f} {r['max_logit_diff']:>10.2e}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
