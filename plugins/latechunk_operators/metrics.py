"""Send the pipeline's metrics (``latechunk.reporting.metrics``) through Airflow's metrics backend: StatsD, Datadog's
DogStatsD or OpenTelemetry, as ``[metrics]`` configures it; nothing when metrics are off."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latechunk.reporting.metrics import Metric

log = logging.getLogger(__name__)


def emit(metrics: Iterable[Metric]) -> None:
    """Send each metric; a metrics backend that fails is logged, never fails the task."""
    from airflow.sdk.observability import stats

    try:
        for metric in metrics:
            if metric.kind == "gauge":
                stats.gauge(metric.name, metric.value)
            elif metric.kind == "counter":
                stats.incr(metric.name, int(metric.value))
            else:
                stats.timing(metric.name, timedelta(seconds=metric.value))
    except Exception as failure:  # metrics are for watching the pipeline, not a reason to fail it
        log.warning("could not send metrics: %s: %s", type(failure).__name__, failure)
