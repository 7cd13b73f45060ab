"""The rule table: every decision of a plan and the rule that made it.

| decision | rule |
|---|---|
| task | keel.yaml's ``task`` when not ``auto``; else the data stage's rule (``keel.data.target.infer_task``) |
| metric | keel.yaml's ``metric`` when not ``auto`` (it must fit the task; "overridden" when triage advised otherwise) |
| - auto, binary, a class under 10% | average precision (triage's ``target.rare_class``); ROC AUC still reported; a decision threshold chosen on validation (best F1) is stored with the model |
| - auto, otherwise | binary: ROC AUC; multiclass: macro F1; regression: RMSE |
| families | keel.yaml's ``train.families`` when not ``auto``; else a majority/mean ``baseline`` and a regularised ``linear`` model, plus ``lightgbm`` and ``xgboost`` from 1,000 training rows, ``random_forest`` below (cross-validated) |
| families, text | with text inputs (TF-IDF, up to 20,000 sparse columns each): ``baseline`` and ``linear``, TF-IDF + logistic regression, the text baseline (LightGBM on the same features: lower and ~25x slower on sms_spam) |
| families, one text column | the only input is one text column and the ``text`` extra is installed: by labelled training rows, below |
| - under 100 | ``embeddings``: frozen sentence embeddings + a linear head (fine-tuning that few labels overfits) |
| - 100 to 10,000 | ``embeddings`` and ``lora`` (LoRA adapters on the encoder, one early-stopped fit) |
| - above 10,000 | ``embeddings`` and ``lora``; ``finetune`` (every weight) instead of ``lora`` when ``text.domain`` is ``specialised`` |
| - always | beside the TF-IDF baseline (``linear``), which each must beat on validation, or ``baseline_verdict`` says the problem is the data |
| - budget | a fine-tuned family is left out when half an epoch over the labelled rows (``FINE_TUNE_SECONDS_PER_TEXT`` each, measured) would not fit its share of the budget; the plan says so with the estimate |
| - not trained | a fine-tuned family that ran under ``MIN_FINE_TUNE_EPOCHS`` or scored at or below the baseline on validation is "not trained: budget too small for this family" and is no evidence in the verdict |
| ensemble | unless ``train.ensemble: false``, a soft vote of the searched families weighted by greedy selection (``keel.training.ensemble``) on validation predictions; kept only if best on validation |
| split | triage's recommendation (``keel.data.split``: time order -> time, repeated identifier -> grouped, < 5,000 rows -> k-fold search, > 100,000 rows -> 80/10/10), citing the finding |
| - overrides | keel.yaml's ``split``, ``time_column`` or ``split_column``; the plan then says "overridden" |
| budget | keel.yaml's ``train.budget_seconds`` or ``--budget``; 10% plus 2.5 s (at most half) is kept for tracking |
| - families | share the searches' time; one whose share cannot hold its shortest fit (``min_fit_seconds`` x the machine's slowdown) is left out, its share to the others |
| - refits | a refit on every row runs only if it ends in time; else the search's validated fit is the model |
| compute | the training matrix's memory (rows x encoded features x 8 bytes) and the trials the budget allows at the first trial's speed |
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

from keel.data.target import infer_task
from keel.errors import ConfigError, TrainingError

PRIMARY_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
METRICS = {  # name -> tasks it fits
    "roc_auc": ("binary", "multiclass"),
    "average_precision": ("binary",),
    "f1": ("binary",),
    "f1_macro": ("binary", "multiclass"),
    "accuracy": ("binary", "multiclass"),
    "log_loss": ("binary", "multiclass"),
    "rmse": ("regression",),
    "mae": ("regression",),
    "r2": ("regression",),
}
LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}
SMALL_DATA_ROWS = 1_000
RARE_CLASS = 0.10
FAMILY_MODULES = {
    "baseline": "sklearn",
    "linear": "sklearn",
    "random_forest": "sklearn",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "embeddings": "transformers",
    "lora": "peft",
    "finetune": "transformers",
}
TEXT_FAMILY_NAMES = ("embeddings", "lora", "finetune")
FEW_LABELS = 100
# LoRA on all-MiniLM-L6-v2, 2 cores: ~19 s per epoch of 2,000 short texts (PITFALLS.md), ~4x that under load
FINE_TUNE_SECONDS_PER_TEXT = 0.0095
MIN_FINE_TUNE_EPOCHS = 0.5
MANY_LABELS = 10_000
FAMILY_INSTALL = {
    "lightgbm": "pip install lightgbm",
    "xgboost": "pip install xgboost-cpu",
    **dict.fromkeys(TEXT_FAMILY_NAMES, "pip install 'keel[text]'"),
}


@dataclass(frozen=True)
class Decision:
    name: str
    value: str
    rule: str


@dataclass(frozen=True)
class Plan:
    task: str
    metric: str
    decisions: tuple[Decision, ...]
    families: tuple[str, ...] = ("baseline",)
    budget_seconds: float = 60.0
    cross_validate: bool = False

    @property
    def classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    @property
    def greater_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "families": list(self.families),
            "budget_seconds": self.budget_seconds,
            "cross_validate": self.cross_validate,
            "decisions": [asdict(d) for d in self.decisions],
        }


def decide_task(target: Any, configured: str = "auto") -> Decision:
    """Task type from the target column (a pandas Series without missing values)."""
    distinct = int(target.nunique())
    if distinct < 2:
        raise TrainingError(
            f"target '{target.name}' has {distinct} distinct value(s); a model needs at least two.",
            hint="Check the target column, or the rows that were filtered out.",
        )
    if configured == "text":
        task = "binary" if distinct == 2 else "multiclass"
        return Decision("task", task, f"task: text in keel.yaml: classify texts into {distinct} labels")
    if configured != "auto":
        _check_configured(configured, distinct, target)
        return Decision("task", configured, "set in keel.yaml")
    task, reason = infer_task(target)
    return Decision("task", task, reason)


def decide_metric(task: str, configured: str = "auto", minority: float | None = None) -> Decision:
    """The primary metric; ``minority`` is the rarest class's share (triage's target summary)."""
    rare = task == "binary" and minority is not None and minority < RARE_CLASS
    advice = (
        f"triage (target.rare_class): the rarer class is {minority:.1%} of rows (< {RARE_CLASS:.0%}): average "
        "precision, ROC AUC still reported; a decision threshold is chosen on validation"
        if rare and minority is not None
        else ""
    )
    if configured == "auto":
        if advice:
            return Decision("metric", "average_precision", advice)
        return Decision("metric", PRIMARY_METRIC[task], f"primary metric for {task} tasks")
    if configured not in METRICS:
        raise ConfigError(f"unknown metric '{configured}'.", hint=f"Known metrics: {', '.join(sorted(METRICS))}.")
    if task not in METRICS[configured]:
        fits = ", ".join(m for m, tasks in METRICS.items() if task in tasks)
        raise ConfigError(f"metric '{configured}' does not fit a {task} task.", hint=f"For {task}, use one of: {fits}.")
    if advice and configured != "average_precision":
        return Decision("metric", configured, f"set in keel.yaml: overridden ({advice})")
    return Decision("metric", configured, "set in keel.yaml")


def decide_families(
    rows: int,
    configured: tuple[str, ...] | str = "auto",
    text_columns: int = 0,
    *,
    text_only: bool = False,
    transformers: bool = False,
    domain: str = "general",
    budget_seconds: float | None = None,
) -> Decision:
    """Model families by the rule table; configured families must be known and installed.

    ``text_only``: the one input is a text column; ``transformers``: the text extra is installed."""
    auto = configured == "auto" or configured == ("auto",)
    if auto and text_only and transformers:
        return _fit_budget(_text_families(rows, domain), rows, budget_seconds)
    if auto and text_columns:
        # Measured on sms_spam (4,459 training rows): LightGBM on the same TF-IDF features
        # reached validation AUC 0.984 against 0.990, with 11.4 s per fit against 0.4 s.
        return Decision(
            "families",
            "baseline,linear",
            f"text ({text_columns} column(s)), {rows:,} training rows: TF-IDF + logistic regression, the text "
            "baseline (LightGBM on TF-IDF was lower and ~25x slower on sms_spam; set train.families to add it)",
        )
    if configured == "auto" or configured == ("auto",):
        if rows < SMALL_DATA_ROWS:
            return Decision(
                "families",
                "baseline,linear,random_forest",
                f"{rows:,} training rows (< {SMALL_DATA_ROWS:,}): regularised linear and random forest, "
                "cross-validated, beside the baseline",
            )
        return Decision(
            "families",
            "baseline,linear,lightgbm,xgboost",
            f"{rows:,} training rows: gradient-boosted trees (LightGBM, XGBoost) beside the baseline "
            "and a linear model",
        )
    families = list(configured)
    for family in families:
        if family not in FAMILY_MODULES:
            raise ConfigError(f"unknown model family '{family}'.", hint=f"Known families: {', '.join(FAMILY_MODULES)}.")
        if importlib.util.find_spec(FAMILY_MODULES[family]) is None:
            raise ConfigError(
                f"model family '{family}' is not installed.",
                hint=f"Install it ({FAMILY_INSTALL.get(family, 'pip install ' + family)}) or remove it "
                "from train.families.",
            )
    if "baseline" not in families:
        families.insert(0, "baseline")
    return Decision("families", ",".join(families), "set in keel.yaml (the baseline is always trained)")


def _text_families(rows: int, domain: str) -> Decision:
    base = f"one text column, {rows:,} labelled training rows"
    if rows < FEW_LABELS:
        return Decision(
            "families",
            "baseline,linear,embeddings",
            f"{base} (< {FEW_LABELS}): frozen sentence embeddings with a linear head beside TF-IDF; "
            "fine-tuning this few labels overfits",
        )
    if rows <= MANY_LABELS:
        return Decision(
            "families",
            "baseline,linear,embeddings,lora",
            f"{base} ({FEW_LABELS:,} to {MANY_LABELS:,}): LoRA fine-tuning of the encoder, and sentence "
            "embeddings, beside TF-IDF; each must beat TF-IDF",
        )
    if domain == "specialised":
        return Decision(
            "families",
            "baseline,linear,embeddings,finetune",
            f"{base} (> {MANY_LABELS:,}) in a specialised domain (text.domain): full fine-tuning, and sentence "
            "embeddings, beside TF-IDF",
        )
    return Decision(
        "families",
        "baseline,linear,embeddings,lora",
        f"{base} (> {MANY_LABELS:,}), general domain: LoRA fine-tuning and sentence embeddings beside TF-IDF "
        "(set text.domain: specialised for full fine-tuning)",
    )


def _fit_budget(decision: Decision, rows: int, budget: float | None) -> Decision:
    """Leave out a fine-tuned family whose minimum training (half an epoch) cannot fit its share."""
    families = decision.value.split(",")
    tuned = [f for f in families if f in ("lora", "finetune")]
    if not tuned or budget is None:
        return decision
    searched = len([f for f in families if f != "baseline"])
    share = budget * 0.9 / max(searched, 1)
    needed = rows * FINE_TUNE_SECONDS_PER_TEXT * MIN_FINE_TUNE_EPOCHS
    if needed <= share:
        return decision
    kept = [f for f in families if f not in tuned]
    return Decision(
        "families",
        ",".join(kept),
        f"{decision.rule}; {', '.join(tuned)} left out: half an epoch over {rows:,} texts takes about {needed:.0f} s "
        f"here, more than its share of the budget ({share:.0f} s); a --budget of {needed * searched / 0.9:.0f}s "
        "or more trains it",
    )


def baseline_verdict(
    scores: dict[str, float], greater_is_better: bool, untrained: dict[str, str] | None = None
) -> Decision | None:
    """Whether the transformer candidates beat the TF-IDF baseline (``linear``) on validation.

    None when there is nothing to compare. When none beats it, the verdict says the problem is
    more likely the data than the model: a pretrained encoder that cannot beat word counts
    points at labels, size or leakage."""
    tfidf = scores.get("linear")
    skipped = untrained or {}
    tried = {f: v for f, v in scores.items() if f in TEXT_FAMILY_NAMES and f not in skipped}
    not_trained = "; ".join(f"{f} not trained: {why}" for f, why in skipped.items())
    if tfidf is None or tfidf != tfidf:
        return None
    if not tried:
        if not not_trained:
            return None
        return Decision("baseline", "not tested", f"{not_trained}: no evidence either way about the data")
    better = [f for f, v in tried.items() if (v > tfidf if greater_is_better else v < tfidf)]
    worse = [f for f in tried if f not in better]

    def listed(families: list[str]) -> str:
        return ", ".join(f"{f} ({tried[f]:.4f})" for f in families)

    if better:
        rule = f"{listed(better)} beat TF-IDF ({tfidf:.4f}) on validation"
        rule += (f"; {listed(worse)} did not" if worse else "") + (f"; {not_trained}" if not_trained else "")
        return Decision("baseline", "beaten", rule)
    shown = ", ".join(f"{f} {v:.4f}" for f, v in tried.items())
    return Decision(
        "baseline",
        "not beaten",
        f"no transformer candidate beat TF-IDF ({tfidf:.4f}) on validation ({shown}): the problem is likely the "
        "data (noisy or ambiguous labels, too few of them, or a shortcut TF-IDF finds), not the model"
        + (f"; {not_trained}" if not_trained else ""),
    )


def decide_budget(seconds: float) -> Decision:
    if seconds <= 0:
        raise ConfigError(f"a training budget must be positive, got {seconds:g} s.", hint="Use e.g. --budget 60s.")
    return Decision(
        "budget",
        f"{seconds:g}s",
        "searches share it; the tracking is set aside from it; a refit on every row runs only if it ends in time",
    )


def decide_ensemble(enabled: bool) -> Decision:
    if not enabled:
        return Decision("ensemble", "off", "set in keel.yaml (train.ensemble: false)")
    return Decision(
        "ensemble",
        "weighted vote of the searched families",
        "greedy selection on the best trials' validation predictions; kept only if best on validation",
    )


def make_plan(
    target: Any,
    *,
    task: str = "auto",
    metric: str = "auto",
    families: tuple[str, ...] | str = "auto",
    rows: int | None = None,
    budget_seconds: float = 60.0,
    split: Decision | None = None,
    ensemble: bool = True,
    text_columns: int = 0,
    text_only: bool = False,
    transformers: bool = False,
    domain: str = "general",
    kfold: bool | None = None,
    minority: float | None = None,
) -> Plan:
    """The plan for a target column; ``rows`` is the number of training rows, ``text_columns``
    how many inputs are free text, ``text_only`` whether one text column is the only input,
    ``transformers`` whether the text extra is installed, ``kfold`` whether the split asks the
    search to cross-validate (None: below ``SMALL_DATA_ROWS``), ``minority`` the rarest class's
    share."""
    rows = len(target) if rows is None else rows
    task_decision = decide_task(target, task)
    metric_decision = decide_metric(task_decision.value, metric, minority)
    if task == "text" and not text_columns:
        raise ConfigError("keel.yaml says task: text, but no input column is free text.", hint="Use task: auto.")
    family_decision = decide_families(
        rows,
        families,
        text_columns,
        text_only=text_only,
        transformers=transformers,
        domain=domain,
        budget_seconds=budget_seconds,
    )
    budget_decision = decide_budget(budget_seconds)
    decisions = [task_decision, metric_decision, family_decision, decide_ensemble(ensemble), budget_decision]
    if split is not None:
        decisions.append(split)
    return Plan(
        task_decision.value,
        metric_decision.value,
        tuple(decisions),
        tuple(family_decision.value.split(",")),
        budget_seconds,
        # fine-tuning needs a validation split for early stopping, and five folds of it would cost minutes each
        (rows < SMALL_DATA_ROWS if kfold is None else kfold)
        and not {"lora", "finetune"} & set(family_decision.value.split(",")),
    )


def estimate_compute(rows: int, encoded_features: int, families: tuple[str, ...]) -> Decision:
    """Memory of the training matrix, as a decision to show beside the plan."""
    megabytes = rows * max(encoded_features, 1) * 8 / 2**20
    return Decision(
        "compute",
        f"{megabytes:,.0f} MB",
        f"training matrix of {rows:,} rows x {encoded_features:,} "
        f"encoded features; {len(families)} families share the budget",
    )


def _check_configured(task: str, distinct: int, target: Any) -> None:
    import pandas as pd

    if task == "binary" and distinct != 2:
        raise ConfigError(
            f"keel.yaml says task: binary, but target '{target.name}' has {distinct} classes.",
            hint="Use task: multiclass, or task: auto.",
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise ConfigError(
            f"keel.yaml says task: regression, but target '{target.name}' is not numeric.",
            hint="Use a numeric target, or task: auto.",
        )
