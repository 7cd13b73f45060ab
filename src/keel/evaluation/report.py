"""The evaluation report: one self-contained HTML page (plots as embedded PNG), and the model card.

Both are built from an ``EvaluationData`` (everything ``keel evaluate`` measured), so they
can be rebuilt without re-scoring.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.evaluation.suite import SliceReport, Suite
from keel.htmlpage import STYLE, embed_png, figure_png
from keel.htmlpage import pyplot as _pyplot


@dataclass(frozen=True)
class SanityCheck:
    name: str
    status: str  # pass | warn | fail | info
    detail: str


@dataclass
class EvaluationData:
    """What was measured for one model version on its hold-out rows."""

    model: str
    version: str
    family: str
    task: str
    metric: str
    classes: list[str] | None
    suite: Suite
    slices: SliceReport
    checks: list[SanityCheck]
    samples: list[dict[str, Any]]
    y: np.ndarray
    predicted: np.ndarray
    importance: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    champion: dict[str, Any] | None = None  # version, metrics, the paired comparison
    lineage: dict[str, str] = field(default_factory=dict)
    plan: list[dict[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)
    intended_use: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _f(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not np.isfinite(value) else f"{value:.4f}"
    return _e(value)


def render_html(ev: EvaluationData) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation {_e(ev.ref)}</title>"
        f"<style>{STYLE}.pass{{background:#d8f0d8}}.fail{{color:#fff;background:#c62828}}</style></head><body>",
        f"<h1>Evaluation: {_e(ev.ref)}</h1>",
        f"<p class='muted'>{_e(ev.family)} · {_e(ev.task)} · primary metric <code>{_e(ev.metric)}</code> · "
        f"{ev.suite.rows:,} hold-out rows · data <code>{_e(ev.lineage.get('keel.data_digest', '?')[:12])}</code></p>",
        _checks_table(ev),
        _metrics_table(ev),
        _champion_section(ev),
        _slices_table(ev),
        "<h2>Plots</h2>",
        embed_png(_plot_main(ev)),
        embed_png(_plot_importance_and_curves(ev)),
        embed_png(_plot_slices(ev)),
        _samples_table(ev),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _checks_table(ev: EvaluationData) -> str:
    status = {"pass": "info", "warn": "warn", "fail": "block", "info": "info"}
    rows = "".join(
        f"<tr><td><span class='sev {status[c.status]}'>{c.status}</span></td><td>{_e(c.name)}</td><td>{_e(c.detail)}</td></tr>"
        for c in ev.checks
    )
    return f"<h2>Sanity checks</h2><table><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table>"


def _metrics_table(ev: EvaluationData) -> str:
    s = ev.suite
    rows = "".join(
        f"<tr><td>{'<b>' if n == ev.metric else ''}{_e(n)}</td><td>{_f(v)}</td><td>{_f(s.low[n])} to {_f(s.high[n])}</td></tr>"
        for n, v in s.metrics.items()
    )
    table = f"<h2>Metrics (95% bootstrap intervals)</h2><table><tr><th>metric</th><th>value</th><th>interval</th></tr>{rows}</table>"
    if s.confusion is not None and ev.classes:
        head = "".join(f"<th>pred {_e(c)}</th>" for c in ev.classes)
        body = "".join(
            f"<tr><th>true {_e(c)}</th>{''.join(f'<td>{v:,}</td>' for v in row)}</tr>"
            for c, row in zip(ev.classes, s.confusion, strict=True)
        )
        table += f"<h3>Confusion matrix</h3><table><tr><th></th>{head}</tr>{body}</table>"
    return table


def _champion_section(ev: EvaluationData) -> str:
    if ev.champion is None:
        return "<h2>Against the champion</h2><p>No champion to compare with.</p>"
    c = ev.champion
    if "note" in c:
        return f"<h2>Against the champion</h2><p>{_e(c['note'])}</p>"
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_f(ev.suite.metrics.get(n, float('nan')))}</td><td>{_f(v)}</td></tr>"
        for n, v in c["metrics"].items()
    )
    return (
        f"<h2>Against the champion ({_e(c['ref'])})</h2><p>{_e(c['comparison'])}</p>"
        f"<table><tr><th>metric</th><th>this version</th><th>champion</th></tr>{rows}</table>"
    )


def _slices_table(ev: EvaluationData) -> str:
    if not ev.slices.groups:
        return "<h2>Slices</h2><p class='muted'>No slices configured: list columns under <code>evaluate.slices</code> in keel.yaml.</p>"
    rows = "".join(
        f"<tr><td>{_e(g.column)}</td><td>{_e(g.group)}</td><td>{g.rows:,}</td><td>{_f(g.metric)}</td><td>{_f(g.low)} to {_f(g.high)}</td></tr>"
        for g in ev.slices.groups
    )
    fair = "".join(
        f"<tr><td>{_e(col)}</td><td>{_f(v['demographic_parity_difference'])}</td><td>{_f(v['equalized_odds_difference'])}</td></tr>"
        for col, v in ev.slices.fairness.items()
    )
    out = (
        f"<h2>Slices ({_e(ev.slices.metric)})</h2><table><tr><th>column</th><th>group</th><th>rows</th>"
        f"<th>{_e(ev.slices.metric)}</th><th>95% interval</th></tr>{rows}</table>"
    )
    names = [n for n in ev.suite.metrics if not n.startswith("residual_")]
    every = "".join(
        f"<tr><td>{_e(g.column)}={_e(g.group)}</td>"
        + "".join(f"<td>{_f(g.suite.metrics.get(n, float('nan')) if g.suite else float('nan'))}</td>" for n in names)
        + "</tr>"
        for g in ev.slices.groups
    )
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    out += f"<h3>Every metric per slice</h3><table><tr><th>slice</th>{head}</tr>{every}</table>"
    if fair:
        out += (
            "<h3>Fairness gaps (fairlearn; 0 means equal)</h3><table><tr><th>column</th>"
            f"<th>demographic parity difference</th><th>equalized odds difference</th></tr>{fair}</table>"
        )
    return out


def _samples_table(ev: EvaluationData) -> str:
    if not ev.samples:
        return ""
    columns = list(ev.samples[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_f(row[c])}</td>" for c in columns) + "</tr>" for row in ev.samples)
    return f"<h2>{len(ev.samples)} random predictions to spot-check</h2><table><tr>{head}</tr>{body}</table>"


def _plot_main(ev: EvaluationData) -> bytes:
    plt = _pyplot()
    if ev.predicted.ndim == 1:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
        a.scatter(ev.y, ev.predicted, s=4, alpha=0.3, color="#4a7bb7")
        low, high = float(np.min(ev.y)), float(np.max(ev.y))
        a.plot([low, high], [low, high], color="#c62828", lw=1)
        a.set(title="predicted vs actual", xlabel="actual", ylabel="predicted")
        b.scatter(ev.predicted, ev.y - ev.predicted, s=4, alpha=0.3, color="#4a7bb7")
        b.axhline(0, color="#c62828", lw=1)
        b.set(title="residuals", xlabel="predicted", ylabel="actual - predicted")
        return figure_png(fig)
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    positive = ev.predicted.shape[1] - 1 if ev.predicted.shape[1] == 2 else None
    if positive is not None:
        fpr, tpr, _ = roc_curve(ev.y, ev.predicted[:, 1])
        axes[0].plot(fpr, tpr, color="#4a7bb7")
        precision, recall, _ = precision_recall_curve(ev.y, ev.predicted[:, 1])
        axes[1].plot(recall, precision, color="#4a7bb7")
        confidence, hit = ev.predicted[:, 1], (ev.y == 1).astype(float)
    else:
        for k in range(ev.predicted.shape[1]):
            fpr, tpr, _ = roc_curve(ev.y == k, ev.predicted[:, k])
            axes[0].plot(fpr, tpr, label=str(ev.classes[k] if ev.classes else k))
            precision, recall, _ = precision_recall_curve(ev.y == k, ev.predicted[:, k])
            axes[1].plot(recall, precision)
        axes[0].legend(fontsize=8)
        confidence, hit = ev.predicted.max(axis=1), (ev.predicted.argmax(axis=1) == ev.y).astype(float)
    axes[0].plot([0, 1], [0, 1], color="#aaa", lw=1, ls="--")
    axes[0].set(title=f"ROC (AUC {ev.suite.metrics.get('roc_auc', float('nan')):.3f})", xlabel="FPR", ylabel="TPR")
    axes[1].set(
        title=f"precision-recall (AP {ev.suite.metrics.get('pr_auc', float('nan')):.3f})",
        xlabel="recall",
        ylabel="precision",
    )
    bins = np.minimum((confidence * 10).astype(int), 9)
    centers = [confidence[bins == b].mean() for b in range(10) if (bins == b).any()]
    rates = [hit[bins == b].mean() for b in range(10) if (bins == b).any()]
    axes[2].plot([0, 1], [0, 1], color="#aaa", lw=1, ls="--")
    axes[2].plot(centers, rates, marker="o", color="#4a7bb7")
    axes[2].set(
        title=f"calibration (ECE {ev.suite.metrics['calibration_error']:.3f})", xlabel="predicted", ylabel="observed"
    )
    return figure_png(fig)


def _plot_importance_and_curves(ev: EvaluationData) -> bytes | None:
    if not ev.importance and not ev.curves:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), squeeze=False)
    a, b = axes[0]
    top = sorted(ev.importance.items(), key=lambda kv: kv[1])[-15:]
    if top:
        a.barh([k for k, _ in top], [v for _, v in top], color="#4a7bb7")
        a.set(title=f"permutation importance (drop in {ev.metric})")
    for name, values in ev.curves.items():
        b.plot(np.arange(1, len(values) + 1), values, label=name)
    if ev.curves:
        b.legend()
        b.set(title="learning curves", xlabel="iteration", ylabel="loss")
    else:
        b.axis("off")
    return figure_png(fig)


def _plot_slices(ev: EvaluationData) -> bytes | None:
    groups = [g for g in ev.slices.groups if np.isfinite(g.metric)]
    if not groups:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 0.35 * len(groups) + 1.5))
    labels = [f"{g.column}={g.group} (n={g.rows:,})" for g in groups]
    values = np.array([g.metric for g in groups])
    low = np.array([g.low if np.isfinite(g.low) else g.metric for g in groups])
    high = np.array([g.high if np.isfinite(g.high) else g.metric for g in groups])
    ax.errorbar(values, np.arange(len(groups)), xerr=[values - low, high - values], fmt="o", color="#4a7bb7")
    ax.axvline(ev.suite.metrics[ev.metric], color="#c62828", lw=1, label="overall")
    ax.set_yticks(np.arange(len(groups)), labels)
    ax.set(title=f"{ev.metric} per slice (95% intervals)")
    ax.legend()
    return figure_png(fig)


def render_card(ev: EvaluationData) -> str:
    """The model card (markdown) from the recorded lineage and this evaluation."""
    m, s = ev.metric, ev.suite
    lines = [
        f"# Model card: {ev.ref}",
        "",
        "## Intended use",
        ev.intended_use or "_Not stated: set `evaluate.intended_use` in keel.yaml._",
        "",
        "## Model",
        f"- family: {ev.family}; task: {ev.task}; target: `{ev.lineage.get('keel.target', '?')}`"
        + (f"; classes: {', '.join(ev.classes)}" if ev.classes else ""),
        f"- parameters: `{ev.params}`",
        "",
        "## Data",
        f"- snapshot `{ev.lineage.get('keel.data_digest', '?')}` from `{ev.lineage.get('keel.data_source', '?')}`",
        f"- split: {ev.lineage.get('keel.split', '?')}",
    ]
    lines += [f"- triage {f['severity']}: {f['message']}" for f in ev.findings] or ["- triage: nothing found"]
    lines += ["", "## Training configuration"]
    lines += [f"- {d['name']}: {d['value']} ({d['rule']})" for d in ev.plan]
    lines += [
        "",
        f"## Metrics ({s.rows:,} hold-out rows, 95% bootstrap intervals)",
        "",
        "| metric | value | interval |",
        "|---|---|---|",
    ]
    lines += [
        f"| {'**' + n + '**' if n == m else n} | {_f(v)} | {_f(s.low[n])} to {_f(s.high[n])} |"
        for n, v in s.metrics.items()
    ]
    if ev.slices.groups:
        lines += ["", f"## Slices ({ev.slices.metric})", "", "| slice | rows | value | interval |", "|---|---|---|---|"]
        lines += [
            f"| {g.column}={g.group} | {g.rows:,} | {_f(g.metric)} | {_f(g.low)} to {_f(g.high)} |"
            for g in ev.slices.groups
        ]
        for column, gaps in ev.slices.fairness.items():
            lines.append(
                f"- fairness by `{column}`: demographic parity difference {gaps['demographic_parity_difference']:.3f}, "
                f"equalized odds difference {gaps['equalized_odds_difference']:.3f}"
            )
    lines += ["", "## Known limitations"]
    limits = [f"- {c.name}: {c.detail}" for c in ev.checks if c.status in ("warn", "fail")]
    limits += [f"- data: {f['message']}" for f in ev.findings if f["severity"] != "info"]
    limits.append("- measured on one hold-out split of one data snapshot; performance on other populations is unknown")
    lines += limits
    lines += ["", "## Versions"]
    for key, value in sorted(ev.lineage.items()):
        if key in ("keel.version", "keel.git_commit", "python.version", "os", "cpu") or key.startswith("package."):
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"
