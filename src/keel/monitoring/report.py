"""The monitor report as one self-contained HTML page: the column table, drift over time,
the mean prediction on its control chart, and reference vs current histograms of the
columns that moved most."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from keel.htmlpage import STYLE, embed_png, figure_png, pyplot
from keel.monitoring.drift import ColumnDrift, DriftReport

MAX_LINES = 8  # columns drawn over time
MAX_HISTOGRAMS = 4


def render_html(report: DriftReport, min_psi: float, sigmas: float) -> str:
    span = f"{report.start or 'start of log'} to {report.end or 'now'}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>keel monitor {_e(report.model)}@{_e(report.version)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Monitor: {_e(report.model)}@{_e(report.version)}</h1>",
        f"<p class='muted'>{report.rows:,} logged predictions, {_e(span)}, against the training profile. "
        "A column drifts when its PSI is beyond what chance gives at these sample sizes and at least "
        f"{min_psi:g}; the mean prediction alerts beyond {sigmas:g} standard errors.</p>",
        _summary(report),
        _columns_table(report.columns),
        _slices_table(report),
    ]
    if report.windows:
        parts.append("<h2>Over time</h2>")
        parts.append(embed_png(_plot_over_time(report, min_psi, sigmas)))
        if any(
            w.performance is not None and (w.performance.value is not None or w.performance.estimated)
            for w in report.windows
        ):
            parts.append("<h2>Performance over time</h2>")
            parts.append(embed_png(_plot_performance(report)))
    moved = [c for c in report.columns if c.status != "ok"][:MAX_HISTOGRAMS] or report.columns[:2]
    if moved:
        parts.append("<h2>Reference vs current</h2>")
        parts.append(embed_png(_plot_histograms(moved)))
    parts.append("</body></html>")
    return "".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _summary(report: DriftReport) -> str:
    moved = report.moved
    items = [f"<li>{len(moved)} of {len(report.columns)} columns moved beyond chance</li>"]
    shift = report.prediction
    if shift is not None:
        verdict = "<span class='sev block'>alert</span>" if shift.alert else "ok"
        items.append(f"<li>{_e(shift.describe())}: {verdict}</li>")
    if report.domain is not None:
        verdict = "<span class='sev block'>alert</span>" if report.domain.status == "alert" else report.domain.status
        items.append(f"<li>{_e(report.domain.describe())}: {verdict}</li>")
    for e in report.embeddings:
        verdict = "<span class='sev block'>alert</span>" if e.status == "alert" else e.status
        items.append(f"<li>{_e(e.describe())}: {verdict}</li>")
    if report.embedding_note:
        items.append(f"<li>{_e(report.embedding_note)}</li>")
    perf = report.performance
    if perf is not None and (perf.estimated or perf.metric):
        verdict = " <span class='sev block'>decayed</span>" if perf.decayed else ""
        items.append(f"<li>performance: {_e(perf.describe())}{verdict}</li>")
    alerting = [w for w in report.windows if w.alerting]
    if report.windows:
        items.append(f"<li>{len(report.windows)} windows, {len(alerting)} alerting</li>")
    return f"<ul>{''.join(items)}</ul>"


def _columns_table(columns: list[ColumnDrift]) -> str:
    head = (
        "<tr><th>column</th><th>status</th><th>PSI</th><th>chance threshold</th><th>JS distance</th>"
        "<th>importance</th><th>missing ref / now</th><th>notes</th></tr>"
    )
    css = {"alert": "sev block", "warn": "sev warn", "drift": "sev info"}
    rows = []
    for c in columns:
        status = f"<span class='{css[c.status]}'>{c.status}</span>" if c.status in css else c.status
        rows.append(
            f"<tr><td>{_e(c.column)}</td><td>{status}</td><td>{c.psi:.4f}</td><td>{c.chance_threshold:.4f}</td>"
            f"<td>{c.js_distance:.3f}</td><td>{'' if c.importance is None else f'{c.importance:.1%}'}</td>"
            f"<td>{c.missing_reference:.1%} / {c.missing_current:.1%}</td>"
            f"<td>{_e('; '.join(c.notes))}</td></tr>"
        )
    return f"<h2>Columns</h2><table>{head}{''.join(rows)}</table>"


def _slices_table(report: DriftReport) -> str:
    if not report.slices:
        return ""
    head = (
        "<tr><th>slice</th><th>rows</th><th>share now / training</th><th>mean score now / training</th>"
        "<th>standard errors</th><th>measured</th></tr>"
    )
    rows = []
    for g in report.slices:
        sigmas = "" if g.sigmas is None else f"{g.sigmas:+.1f}"
        if g.shifted:
            sigmas = f"<span class='sev warn'>{sigmas}</span>"
        means = "" if g.mean_current is None else f"{g.mean_current:.4f}"
        means += "" if g.mean_reference is None else f" / {g.mean_reference:.4f}"
        measured = "" if g.value is None else f"{_e(g.metric)} {g.value:.4f} ({g.labelled:,} labelled)"
        rows.append(
            f"<tr><td>{_e(g.column)}={_e(g.group)}</td><td>{g.rows:,}</td>"
            f"<td>{g.share_current:.1%} / {g.share_reference:.1%}</td><td>{means}</td><td>{sigmas}</td>"
            f"<td>{measured}</td></tr>"
        )
    note = "<p class='muted'>Slices inform, they do not alert (many groups would trip a 2-sigma rule by chance).</p>"
    return f"<h2>Slices</h2>{note}<table>{head}{''.join(rows)}</table>"


def _plot_over_time(report: DriftReport, min_psi: float, sigmas: float) -> bytes:
    plt = pyplot()
    windows = report.windows
    labels = [str(w.start)[:16] for w in windows]
    x = np.arange(len(windows))
    worst = sorted(report.columns, key=lambda c: -max(_psi_in(w, c.column) for w in windows))[:MAX_LINES]
    has_prediction = any(w.prediction is not None for w in windows)
    fig, axes = plt.subplots(1, 2 if has_prediction else 1, figsize=(12 if has_prediction else 7, 3.6), squeeze=False)
    ax = axes[0][0]
    for column in worst:
        ax.plot(x, [max(_psi_in(w, column.column), 1e-6) for w in windows], marker="o", label=column.column)
    ax.axhline(min_psi, color="grey", linestyle="--", linewidth=1, label=f"min_psi {min_psi:g}")
    ax.set_yscale("log")
    ax.set_title("PSI per window (columns that moved most)")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.legend(fontsize=7, ncol=2)
    if has_prediction:
        ax = axes[0][1]
        points = [(i, w.prediction) for i, w in enumerate(windows) if w.prediction is not None]
        reference = points[0][1].mean_reference
        sd = points[0][1].std_reference
        xs = [i for i, _ in points]
        ax.plot(xs, [p.mean_current for _, p in points], marker="o", color="#1f5fa8", label="mean prediction")
        ax.axhline(reference, color="black", linewidth=1, label="training mean")
        bands = [sigmas * sd / math.sqrt(p.rows) for _, p in points]
        ax.fill_between(
            xs,
            [reference - b for b in bands],
            [reference + b for b in bands],
            alpha=0.2,
            label=f"±{sigmas:g} standard errors",
        )
        for i, p in points:
            if p.alert:
                ax.plot([i], [p.mean_current], "o", color="#c62828")
        ax.set_title("Mean prediction per window")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    return figure_png(fig)


def _plot_performance(report: DriftReport) -> bytes:
    """The measured metric per window with its interval and the decay line, and the label-free
    estimates beside it."""
    plt = pyplot()
    windows = report.windows
    labels = [str(w.start)[:16] for w in windows]
    x = np.arange(len(windows))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    measured = [(i, w.performance) for i, w in enumerate(windows) if w.performance and w.performance.value is not None]
    if measured:
        first = measured[0][1]
        values = [float(p.value or 0.0) for _, p in measured]
        ax.errorbar(
            [i for i, _ in measured],
            values,
            yerr=[
                [v - (p.low if p.low is not None else v) for v, (_, p) in zip(values, measured, strict=True)],
                [(p.high if p.high is not None else v) - v for v, (_, p) in zip(values, measured, strict=True)],
            ],
            marker="o",
            capsize=3,
            label=f"{first.metric} measured (95% interval)",
        )
        if first.reference is not None:
            ax.axhline(first.reference, color="black", linewidth=1, label="at training")
        if first.tolerated is not None:
            ax.axhline(first.tolerated, color="#c62828", linestyle="--", linewidth=1, label="decay line")
    names = sorted({k for w in windows if w.performance for k in w.performance.estimated})
    for name in names:
        points = [
            (i, w.performance.estimated[name])
            for i, w in enumerate(windows)
            if w.performance and name in w.performance.estimated
        ]
        ax.plot([i for i, _ in points], [v for _, v in points], linestyle=":", marker=".", label=f"{name} estimated")
    ax.set_title("Performance per window")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.legend(fontsize=7)
    return figure_png(fig)


def _psi_in(window: DriftReport, column: str) -> float:
    return next((c.psi for c in window.columns if c.column == column), 0.0)


def _plot_histograms(columns: list[ColumnDrift]) -> bytes:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        keep = [
            i for i, (r, c) in enumerate(zip(column.reference_shares, column.current_shares, strict=True)) if r or c
        ]
        x = np.arange(len(keep))
        ax.bar(x - 0.2, [column.reference_shares[i] for i in keep], width=0.4, label="training")
        ax.bar(x + 0.2, [column.current_shares[i] for i in keep], width=0.4, label="now")
        ax.set_xticks(
            x, [column.bins[i] if i < len(column.bins) else str(i) for i in keep], rotation=45, ha="right", fontsize=7
        )
        ax.set_title(f"{column.column} (PSI {column.psi:.3f}, {column.status})", fontsize=9)
        ax.legend(fontsize=7)
    return figure_png(fig)
