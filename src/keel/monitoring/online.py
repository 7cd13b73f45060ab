"""Online evidence for a rollout step: the challenger against the champion over the same window.

A rollout (keel.api.rollout) looks at its step every ``rollout.interval_seconds`` and asks
these checks whether the challenger (the ``canary`` or ``shadow`` route) is worse than the
champion on the traffic both saw since the step began. Every check is a one-sided test whose
null hypothesis is "the challenger is no worse"; it fails only when that is rejected at
``alpha``, the rollout's false-rollback rate split over every check of every planned look
(``looks_alpha``), so an A/A rollout (the same model on both routes) rolls back with
probability at most ``rollout.false_rollback_rate``, however many looks it takes. A check with
too little traffic is inconclusive: it passes, and the step does not advance on it.

- **errors**: the share of non-2xx answers (Fisher's exact test, challenger > champion).
- **latency**: more than 1% of the challenger's requests over ``serving.latency_budget_ms``
  (its p99 over the budget: a binomial test against 1%), and significantly more than the
  champion's (Fisher), so a busy machine that slows both does not roll back the challenger.
- **agreement** (shadow steps: both models scored the same rows): the share of rows whose
  label differs (binomial test against ``rollout.max_disagreement``), or for regression the
  mean |score difference| in units of the champion's training score spread (t test against
  ``rollout.max_score_delta``).
- **score drift**: the challenger's mean score against its own training profile (the
  two-sample z of keel.monitoring.drift.prediction_shift), unless the champion's scores moved
  the same way in the same window (then the traffic moved, not the challenger).
- **metric** (labels joined by ``serving.id_column``): the plan's metric on each route's
  labelled rows, the difference's standard error from independent bootstraps of both.

Counters come from the server's ``/metrics`` (``scrape``), summed over its workers or replicas;
``advance`` adds each scrape's increase to the step's window, so a server restart (counters
back to zero) loses nothing already counted.
"""

from __future__ import annotations

import math
import urllib.request
from typing import Any

import numpy as np

from keel.evaluation.gate import Check

CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"
ROUTES = (CHAMPION, CANARY, SHADOW)
P99 = 0.01  # a p99 over the budget: more than 1% of requests slower than it
SCRAPED = {"keel_requests_total": "requests", "keel_errors_total": "errors"}


def scrape(url: str, timeout: float = 5.0) -> dict[str, dict[str, float]]:
    """Per route: answered requests, failed requests (non-2xx) and the cumulative latency
    histogram (``le:<bound>``), from the server's Prometheus text, summed over every label."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {route: {} for route in ROUTES}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route")
            if route not in out:
                continue
            key = SCRAPED.get(sample.name)
            if key is None and sample.name == "keel_request_seconds_bucket":
                key = f"le:{sample.labels['le']}"
            if key is not None:
                out[route][key] = out[route].get(key, 0.0) + sample.value
    return out


def advance(
    window: dict[str, dict[str, float]], last: dict[str, dict[str, float]], now: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """``window`` plus what each counter grew by since ``last``; a counter below its last value
    was restarted with its server, so all of it is new (Prometheus's ``increase``)."""
    out = {route: dict(values) for route, values in window.items()}
    for route, values in now.items():
        seen = last.get(route, {})
        into = out.setdefault(route, {})
        for key, value in values.items():
            before = seen.get(key, 0.0)
            into[key] = into.get(key, 0.0) + (value - before if value >= before else value)
    return out


def looks_alpha(false_rollback_rate: float, tests: int) -> float:
    """Each test's share of the rollout's false-rollback rate (Bonferroni over every check of
    every look the plan makes)."""
    return false_rollback_rate / max(tests, 1)


def _fisher_greater(k1: float, n1: float, k0: float, n0: float) -> float:
    """P-value that the challenger's rate k1/n1 exceeds the champion's k0/n0 (one-sided)."""
    from scipy.stats import fisher_exact

    if n1 <= 0 or n0 <= 0 or k1 / n1 <= k0 / n0:
        return 1.0
    table = [[int(k1), int(n1 - k1)], [int(k0), int(n0 - k0)]]
    return float(fisher_exact(table, alternative="greater")[1])


def errors_check(window: dict[str, dict[str, float]], route: str, alpha: float, min_requests: int) -> Check:
    challenger, champion = window.get(route, {}), window.get(CHAMPION, {})
    k1, k0 = challenger.get("errors", 0.0), champion.get("errors", 0.0)
    n1, n0 = k1 + challenger.get("requests", 0.0), k0 + champion.get("requests", 0.0)
    numbers = {"requests": n1, "errors": k1, "champion_requests": n0, "champion_errors": k0, "alpha": alpha}
    if n1 < min_requests or n0 < min_requests:
        return Check("errors", True, f"waiting for traffic ({n1:.0f} {route} requests)", numbers | {"enough": False})
    p = _fisher_greater(k1, n1, k0, n0)
    rate, base = k1 / n1, k0 / n0
    detail = f"{route} {rate:.2%} failed vs champion {base:.2%} (p = {p:.2g}, fails below {alpha:.2g})"
    return Check("errors", p >= alpha, detail, numbers | {"p_value": p, "enough": True})


def _bound_at_or_above(counts: dict[str, float], seconds: float) -> tuple[float, float] | None:
    """(bucket bound, cumulative count) of the smallest bound at or above ``seconds``."""
    bounds = sorted((float(k[3:]), v) for k, v in counts.items() if k.startswith("le:") and k != "le:+Inf")
    for bound, count in bounds:
        if bound >= seconds - 1e-9:
            return bound, count
    return None


def quantile(counts: dict[str, float], q: float) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated within its bucket (as
    Prometheus's histogram_quantile); None without observations."""
    bounds = sorted((float(k[3:]), v) for k, v in counts.items() if k.startswith("le:"))
    total = counts.get("le:+Inf", 0.0)
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width > 0 else 1.0)
        lower, below = bound, count
    return lower


def latency_check(
    window: dict[str, dict[str, float]], route: str, budget_seconds: float, alpha: float, min_requests: int
) -> Check:
    from scipy.stats import binom

    challenger, champion = window.get(route, {}), window.get(CHAMPION, {})
    n1, n0 = challenger.get("le:+Inf", 0.0), champion.get("le:+Inf", 0.0)
    p99, base99 = quantile(challenger, 0.99), quantile(champion, 0.99)
    numbers: dict[str, Any] = {"requests": n1, "p99_seconds": p99, "champion_p99_seconds": base99, "alpha": alpha}
    at1, at0 = _bound_at_or_above(challenger, budget_seconds), _bound_at_or_above(champion, budget_seconds)
    if n1 < min_requests or n0 < min_requests or at1 is None or at0 is None:
        return Check("latency", True, f"waiting for traffic ({n1:.0f} {route} requests)", numbers | {"enough": False})
    over1, over0 = n1 - at1[1], n0 - at0[1]
    p_budget = float(binom.sf(over1 - 1, int(n1), P99)) if over1 > 0 else 1.0
    p_champion = _fisher_greater(over1, n1, over0, n0)
    p = max(p_budget, p_champion)  # both must hold: over the budget, and worse than the champion
    detail = (
        f"{route} p99 {_ms(p99)} vs champion {_ms(base99)}, budget {budget_seconds * 1000:g} ms; "
        f"{over1 / n1:.2%} over it vs {over0 / n0:.2%} (p = {p:.2g})"
    )
    return Check("latency", p >= alpha, detail, numbers | {"over_budget": over1, "p_value": p, "enough": True})


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def agreement_check(
    task: str,
    champion: dict[str, np.ndarray],
    challenger: dict[str, np.ndarray],
    score_spread: float,
    alpha: float,
    min_rows: int,
    max_disagreement: float,
    max_score_delta: float,
) -> Check:
    """Both models' outputs on the same rows (``label`` and ``score`` arrays, aligned)."""
    from scipy.stats import binom, t

    n = len(champion["score"])
    numbers: dict[str, Any] = {"rows": n, "alpha": alpha}
    if n < min_rows:
        return Check("agreement", True, f"waiting for traffic ({n} shadowed rows)", numbers | {"enough": False})
    if task == "regression":
        delta = np.abs(challenger["score"] - champion["score"]) / (score_spread or 1.0)
        mean, sd = float(delta.mean()), float(delta.std(ddof=1))
        stat = (
            (mean - max_score_delta) / (sd / math.sqrt(n))
            if sd > 0
            else (math.inf if mean > max_score_delta else -math.inf)
        )
        p = float(t.sf(stat, n - 1))
        detail = f"mean |score difference| {mean:.3f} training sd (limit {max_score_delta:g}, p = {p:.2g})"
        return Check("agreement", p >= alpha, detail, numbers | {"mean_delta": mean, "p_value": p, "enough": True})
    differ = int(np.sum(champion["label"] != challenger["label"]))
    p = float(binom.sf(differ - 1, n, max_disagreement)) if differ > 0 else 1.0
    detail = f"{differ / n:.2%} of rows labelled differently (limit {max_disagreement:.0%}, p = {p:.2g})"
    return Check("agreement", p >= alpha, detail, numbers | {"disagreement": differ / n, "p_value": p, "enough": True})


def score_drift_check(
    challenger_profile: Any,
    challenger: Any,
    champion_profile: Any,
    champion: Any,
    alpha: float,
    min_rows: int,
    max_shift: float,
) -> Check:
    """``challenger`` / ``champion``: pyarrow score columns of the window; profiles: each bundle's
    training score profile (``keel_score``). Fails when the challenger's mean score left its
    training mean significantly (p < alpha) *and* by ``max_shift`` training standard deviations
    more than the champion's moved on the same traffic: live traffic is rarely the hold-out, and
    a shift both models share is the traffic's, not the challenger's."""
    from keel.monitoring.drift import prediction_shift

    rows = len(challenger)
    if rows < min_rows:
        return Check("score drift", True, f"waiting for traffic ({rows} rows)", {"rows": rows, "enough": False})
    mine = prediction_shift(challenger_profile, challenger, 0.0, alpha)
    if mine is None:
        return Check("score drift", True, "no training score profile in the bundle", {"rows": rows, "enough": False})
    theirs = prediction_shift(champion_profile, champion, 0.0, alpha) if len(champion) >= min_rows else None
    if theirs is None:  # judged alone, traffic unlike training (a few rows sent over and over) looks like drift
        detail = f"waiting for the champion's traffic ({len(champion)} rows) to compare with"
        return Check("score drift", True, detail, {"rows": rows, "enough": False})
    shift = (mine.mean_current - mine.mean_reference) / mine.std_reference
    base = (theirs.mean_current - theirs.mean_reference) / theirs.std_reference
    numbers = {"rows": rows, "z": mine.sigmas, "p_value": mine.p_value, "alpha": alpha, "enough": True}
    numbers |= {"shift_sd": shift, "champion_shift_sd": base}
    detail = (
        f"challenger {mine.describe()}; {shift:+.2f} training sd vs champion {base:+.2f} "
        f"(fails beyond {max_shift:g} sd apart, p < {alpha:.2g})"
    )
    return Check("score drift", not (mine.p_value < alpha and abs(shift - base) >= max_shift), detail, numbers)


def metric_check(
    metric: str,
    greater: bool,
    champion: tuple[np.ndarray, np.ndarray],
    challenger: tuple[np.ndarray, np.ndarray],
    alpha: float,
    min_labelled: int,
    resamples: int = 200,
    seed: int = 0,
) -> Check:
    """``champion`` / ``challenger``: each route's labelled rows as (truth, what the metric
    takes: class probabilities, class indices or values)."""
    from scipy.stats import norm

    (y0, p0), (y1, p1) = champion, challenger
    numbers: dict[str, Any] = {"metric": metric, "labelled": len(y1), "champion_labelled": len(y0), "alpha": alpha}
    if len(y1) < min_labelled or len(y0) < min_labelled:
        return Check(
            "metric", True, f"waiting for labels ({len(y1)} labelled challenger rows)", numbers | {"enough": False}
        )
    value0, value1 = _metric(metric, y0, p0), _metric(metric, y1, p1)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        i0, i1 = rng.integers(0, len(y0), len(y0)), rng.integers(0, len(y1), len(y1))
        diffs.append(_metric(metric, y1[i1], p1[i1]) - _metric(metric, y0[i0], p0[i0]))
    se = float(np.nanstd(diffs, ddof=1))
    diff = value1 - value0
    worse = -diff if greater else diff  # > 0: the challenger is worse
    p = float(norm.sf(worse / se)) if se > 0 else (0.0 if worse > 0 else 1.0)
    half = float(norm.isf(alpha / 2)) * se
    detail = (
        f"{metric} {value1:.4f} vs champion {value0:.4f}: difference {diff:+.4f} "
        f"(interval {diff - half:+.4f} to {diff + half:+.4f}, p = {p:.2g})"
    )
    numbers |= {"value": value1, "champion_value": value0, "difference": diff, "se": se, "p_value": p, "enough": True}
    return Check("metric", p >= alpha, detail, numbers)


def _metric(metric: str, y: np.ndarray, predicted: np.ndarray) -> float:
    from keel.evaluation.metrics import metric_value

    if predicted.ndim == 1 and predicted.dtype.kind in "iu":  # multiclass: predicted class indices
        return float(np.mean(predicted == y))
    try:
        return float(metric_value(metric, y, predicted))
    except ValueError:  # a resample with one class only
        return float("nan")
