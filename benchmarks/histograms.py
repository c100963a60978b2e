"""Histograms read from a process's `/metrics` (Prometheus's text format): the cumulative
buckets of one, and quantiles of what it observed between two readings."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: Upper bound (seconds) -> how many observations were at or below it, so far.
Buckets = dict[float, float]


async def read_buckets(http: httpx.AsyncClient, url: str, name: str) -> Buckets:
    """Histogram `name` as served at `url` now (empty if the process does not answer)."""
    try:
        text = (await http.get(url)).text
    except httpx.HTTPError:
        return {}
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }


def observed(before: Buckets, after: Buckets) -> list[tuple[float, float]]:
    """The cumulative counts of what was observed between two readings, by upper bound."""
    return sorted((le, n - before.get(le, 0.0)) for le, n in after.items())


def quantile_ms(before: Buckets, after: Buckets, q: float) -> float | None:
    """The q-quantile of what was observed between two readings, in ms, interpolated
    within its bucket as Prometheus's histogram_quantile does; None if nothing was."""
    counts = observed(before, after)
    total = counts[-1][1] if counts else 0.0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, n in counts:
        if n >= rank:
            if le == float("inf"):
                return round(lower * 1000, 1)
            share = (rank - below) / (n - below) if n > below else 1.0
            return round((lower + (le - lower) * share) * 1000, 1)
        lower, below = le, n
    return None
