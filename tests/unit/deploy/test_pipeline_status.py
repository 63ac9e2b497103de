"""`make status`'s indexer table: read from the indexer's own /metrics exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from deploy.pipeline_status import indexer_blocked


def exposition(blocked: dict[str, float], seconds: float) -> str:
    registry = CollectorRegistry()
    counter = Counter("gateway_indexer_blocked_seconds", "", registry=registry)
    gauge = Gauge("gateway_indexer_blocked", "", ["reason"], registry=registry)
    counter.inc(seconds)
    for reason, value in blocked.items():
        gauge.labels(reason).set(value)
    return generate_latest(registry).decode()


def test_a_blocked_replica_shows_its_reason_and_the_seconds_so_far() -> None:
    assert indexer_blocked(exposition({"auth": 0, "write_block": 1}, 42.5)) == ("yes: write_block", 42.5)


def test_a_replica_that_was_blocked_once_shows_no_and_the_total() -> None:
    assert indexer_blocked(exposition({"write_block": 0}, 12.0)) == ("no", 12.0)
    assert indexer_blocked("") == ("no", 0.0)  # never blocked: the series are not there yet
