"""Fleet-wide burn-in figures: the median per metric over each node's latest results.

A node keeps its latest result per (check, GPU) in ``nodes.last_results``; a burn-in
GPU's figure is in its evidence (``tflops`` on ``burnin_matmul``, ``membw_gbps`` on
``burnin_membw``). Medians are taken over every GPU of the model asked for, whatever
its verdict, so one slow GPU cannot move them far. ``dtype`` and ``size`` narrow the
GEMM figures to runs comparable with the caller's.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from hpresil.api import BurninMedianView, BurninMetric
from hpresil.burnin.names import FLEET_METRICS
from hpresil.store import Store, repo


class Fleet:
    def __init__(self, store: Store) -> None:
        self._store = store

    def burnin_median(
        self, model: str, dtype: str | None = None, size: int | None = None
    ) -> BurninMedianView:
        with self._store.read() as s:
            nodes = [(row.node, list(row.results)) for row in repo.node_results(s)]
        return burnin_median(nodes, model, dtype, size)


def burnin_median(
    nodes: Iterable[tuple[str, Sequence[dict[str, Any]]]],
    model: str,
    dtype: str | None = None,
    size: int | None = None,
) -> BurninMedianView:
    """``nodes``: (name, latest results as stored). Metrics with no sample are left out."""
    samples: dict[str, list[tuple[str, float]]] = {metric: [] for metric in FLEET_METRICS}
    for node, results in nodes:
        for result in results:
            for metric, check in FLEET_METRICS.items():
                value = _figure(result, check, metric, model, dtype, size)
                if value is not None:
                    samples[metric].append((node, value))
    metrics = {
        metric: BurninMetric(
            median=statistics.median(v for _, v in found),
            samples=len(found),
            nodes=len({n for n, _ in found}),
        )
        for metric, found in samples.items()
        if found
    }
    return BurninMedianView(model=model, dtype=dtype, size=size, metrics=metrics)


def _figure(
    result: dict[str, Any],
    check: str,
    metric: str,
    model: str,
    dtype: str | None,
    size: int | None,
) -> float | None:
    gpu = result.get("gpu") or {}
    evidence = result.get("evidence") or {}
    if result.get("check") != check or gpu.get("name") != model:
        return None
    if "dtype" in evidence and dtype is not None and evidence["dtype"] != dtype:
        return None
    if "size" in evidence and size is not None and evidence["size"] != size:
        return None
    value = evidence.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)
