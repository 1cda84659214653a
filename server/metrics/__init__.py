"""Prometheus metrics: calls, errors, denials and latency histograms per tool and source."""

from server.metrics.registry import Counter, Histogram, MetricsRegistry, escape_label
from server.metrics.step import CONTENT_TYPE, Metrics, RecordMetrics

__all__ = ["CONTENT_TYPE", "Counter", "Histogram", "Metrics", "MetricsRegistry", "RecordMetrics", "escape_label"]
