"""A Prometheus scrape endpoint for the SDK's OpenTelemetry metrics (``evolink ... --metrics-port``).

Needs ``opentelemetry-sdk``: the server reads an in-memory metric reader and answers
``GET /metrics`` in Prometheus' text format, on a loopback address unless told otherwise.
"""

from ._core.prometheus import MetricsServer

__all__ = ["MetricsServer"]
