"""Prometheus metrics every consumer shares, and the small /metrics server for workers.

Service-specific metrics (inference latency, bulk latency, freshness) live in each service.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

CONSUMED = Counter("pipeline_records_consumed", "Kafka records consumed", ["service", "topic"])
PRODUCED = Counter("pipeline_records_produced", "Kafka records produced and acknowledged", ["service", "topic"])
DEAD_LETTERED = Counter(
    "pipeline_records_dead_lettered", "Records sent to a dead-letter topic", ["service", "topic", "reason"]
)
REJECTED = Counter("pipeline_records_rejected", "Source records rejected by validation", ["service", "reason"])
BATCH_SIZE = Histogram(
    "pipeline_batch_size", "Records per processed batch", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
CONSUMER_LAG = Gauge(
    "pipeline_consumer_lag", "High watermark minus committed offset", ["service", "topic", "partition"]
)
RETRIES = Counter("pipeline_batch_retries", "Batches retried after a transient failure", ["service"])
REBALANCES = Counter("pipeline_partitions_revoked", "Rebalances in which this member gave partitions up", ["service"])
ABANDONED = Counter(
    "pipeline_batches_abandoned",
    "Batches dropped uncommitted (partitions revoked, or a rebalance refused the commit)",
    ["service"],
)

OFFSETS_NOT_VISIBLE = Counter(
    "pipeline_revokes_offsets_not_visible",
    "Revokes let go before the committed offsets were readable (the next owner may replay a batch)",
    ["service"],
)
PRODUCERS_REPLACED = Counter(
    "pipeline_producers_replaced", "Transactional producers replaced after being fenced or broken", ["service"]
)


def start_metrics_server(port: int | None, service: str, host: str = "127.0.0.1") -> None:
    """Expose /metrics on host:port (port 0 or None: no server). Containers set 0.0.0.0."""
    if not port:
        return
    start_http_server(port, addr=host)
    log.info("metrics server started", extra={"host": host, "port": port, "service": service})
