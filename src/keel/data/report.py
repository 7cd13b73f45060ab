"""The triage report as one self-contained HTML page (inline CSS, plots as embedded PNG).

Built from the stored triage alone, so ``keel data show HASH --html`` can rebuild it
without the data.
"""

from __future__ import annotations

import html
from itertools import pairwise
from typing import Any

from keel.data.triage import TriageReport
from keel.htmlpage import STYLE, embed_png, figure_png

MAX_HISTOGRAMS = 12


def render_html(report: TriageReport, *, title: str, digest: str) -> str:
    """The whole page as a string."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Triage: {_e(title)}</h1>",
        f"<p class='muted'>snapshot <code>{_e(digest)}</code> · {report.rows:,} rows · {len(report.columns)} columns"
        f"{_target_line(report)} · {report.duplicate_rows:,} exact duplicate rows</p>",
        _findings(report),
        _split(report),
        "<h2>Plots</h2>",
        embed_png(_plot_overview(report)),
        embed_png(_plot_histograms(report)),
        _columns(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _target_line(report: TriageReport) -> str:
    target = report.target
    return f" · target <code>{_e(target.name)}</code> ({_e(target.task)})" if target else ""


def _findings(report: TriageReport) -> str:
    if not report.findings:
        return "<h2>Findings</h2><p>Nothing found.</p>"
    rows = "".join(
        f"<tr><td><span class='sev {f.severity}'>{f.severity}</span></td><td><code>{_e(f.id)}</code></td>"
        f"<td>{_e(f.message)}</td></tr>"
        for f in report.findings
    )
    return f"<h2>Findings</h2><table><tr><th>severity</th><th>check</th><th>what and why</th></tr>{rows}</table>"


def _split(report: TriageReport) -> str:
    if report.split is None:
        return ""
    return f"<h2>Recommended split</h2><p><b>{_e(report.split.strategy)}</b>: {_e(report.split.reason)}</p>"


def _columns(report: TriageReport) -> str:
    head = "<tr><th>column</th><th>type</th><th>dtype</th><th>missing</th><th>distinct</th><th>summary</th></tr>"
    rows = []
    for c in report.columns:
        if c.numeric:
            n = c.numeric
            summary = (
                f"min {n['min']:.4g} · p50 {n['p50']:.4g} · max {n['max']:.4g} · mean {n['mean']:.4g} · "
                f"outliers {n['outlier_share']:.1%}"
            )
        elif c.text:
            t = c.text
            summary = (
                f"length p50 {t['length_p50']:.0f}, p95 {t['length_p95']:.0f}, max {t['length_max']:.0f} · "
                f"{t['words_mean']:.1f} words · vocabulary {t['vocabulary']:,.0f}"
            )
        else:
            summary = ", ".join(f"{_e(v)} ({n:,})" for v, n in (c.top or []))
        feature = "" if c.feature else f"<br><span class='muted'>not a feature: {_e(c.reason)}</span>"
        rows.append(
            f"<tr><td><b>{_e(c.name)}</b>{feature}</td><td>{_e(c.semantic)}</td><td>{_e(c.dtype)}</td>"
            f"<td>{c.missing_share:.1%}</td><td>{c.unique:,}</td><td>{summary}</td></tr>"
        )
    return f"<h2>Columns</h2><table>{head}{''.join(rows)}</table>"


def _plot_overview(report: TriageReport) -> bytes | None:
    """Target, single-column strength and missing shares side by side, as one figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [p for p in (_draw_target, _draw_strength, _draw_missing) if p(report, None)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for draw, ax in zip(panels, axes.flat, strict=True):
        draw(report, ax)
    return figure_png(fig)


def _bars(ax: Any, edges: list[float], counts: list[float]) -> None:
    ax.bar(edges[:-1], counts, width=[b - a for a, b in pairwise(edges)], align="edge", color="#4a7bb7")


def _draw_target(report: TriageReport, ax: Any) -> bool:
    target = report.target
    if target is None or not (target.histogram or target.classes):
        return False
    if ax is None:
        return True
    if target.task == "regression" and target.histogram:
        _bars(ax, target.histogram["edges"], target.histogram["counts"])
    elif target.classes:
        labels = list(target.classes)[:20]
        ax.bar(range(len(labels)), [target.classes[k] for k in labels], color="#4a7bb7")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_title(f"target: {target.name}")
    return True


def _draw_strength(report: TriageReport, ax: Any) -> bool:
    strengths = report.strengths[:20]
    if not strengths or ax is None:
        return bool(strengths)
    flagged = {f.column for f in report.findings if f.check.startswith("leak.")}
    names = [s.column for s in strengths][::-1]
    ax.barh(names, [s.skill for s in strengths][::-1], color=["#c62828" if n in flagged else "#4a7bb7" for n in names])
    ax.set_xlim(0, 1)
    ax.set_title("each column alone: skill, 5-fold (red: leak candidate)", fontsize=10)
    ax.tick_params(labelsize=8)
    return True


def _draw_missing(report: TriageReport, ax: Any) -> bool:
    missing = [(c.name, c.missing_share) for c in report.columns if c.missing_share > 0][:25]
    if not missing or ax is None:
        return bool(missing)
    ax.barh([m[0] for m in missing][::-1], [m[1] for m in missing][::-1], color="#d08c2a")
    ax.set_title("share of missing values", fontsize=10)
    ax.tick_params(labelsize=8)
    return True


def _plot_histograms(report: TriageReport) -> bytes | None:
    columns = [c for c in report.columns if c.histogram and c.histogram["counts"]][:MAX_HISTOGRAMS]
    if not columns:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = 4
    rows = (len(columns) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.2 * rows), squeeze=False)
    for ax, c in zip(axes.flat, columns, strict=False):
        histogram = c.histogram or {"edges": [], "counts": []}
        _bars(ax, histogram["edges"], histogram["counts"])
        ax.set_title(c.name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.suptitle("numeric columns (1st to 99th percentile)")
    fig.subplots_adjust(
        left=0.06, right=0.98, top=1 - 0.5 / (2.2 * rows), bottom=0.35 / (2.2 * rows) + 0.02, hspace=0.6, wspace=0.3
    )
    return figure_png(fig, tight=False)
