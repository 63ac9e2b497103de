"""GET /tweets/{id}/trace against the real Jaeger (its query API, no UI) and Elasticsearch.

The spans are exported over OTLP to the real Jaeger by the OpenTelemetry SDK, one tracer
provider per service name, shaped as the services shape them (names, parents, ``tweet.id``,
``model``); tests/e2e/test_tracing.py reads the same route from the spans of the real services.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.indexer import logic
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_api import gateway, repository
from tests.integration.test_gateway_indexer import clean_index, settings
from tests.support.polling import wait_until
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

pytestmark = [pytest.mark.es, pytest.mark.jaeger, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

OTLP = "http://127.0.0.1:4318/v1/traces"
MS = 1_000_000  # nanoseconds


@pytest.fixture
def providers() -> Iterator[dict[str, TracerProvider]]:
    made = {}
    for service in ("ingestor", "gateway-api", "emotion", "stance", "gateway-indexer"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=OTLP)))
        made[service] = provider
    yield made
    for provider in made.values():
        provider.shutdown()


def tweet_trace(providers: dict[str, TracerProvider], tweet_id: str, root: tuple[str, str]) -> str:
    """One tweet's trace as the pipeline writes it; returns the trace id."""
    t0 = time.time_ns() - 10_000 * MS  # recent: Jaeger's tag search looks back from now

    def span(service: str, name: str, start_ms: int, end_ms: int, parent: Any = None, **attrs: Any) -> Any:
        context = trace.set_span_in_context(parent) if parent is not None else None
        made = (
            providers[service]
            .get_tracer(service)
            .start_span(
                name, context=context, start_time=t0 + start_ms * MS, attributes={"tweet.id": tweet_id, **attrs}
            )
        )
        made.end(end_time=t0 + end_ms * MS)
        return made

    ingested = span(*root, 0, 2)
    span(root[0], "tweets.raw publish", 1, 2, ingested)  # not a stage: left out
    span("gateway-indexer", "gateway.index", 30, 45, ingested, **{"messaging.source.name": "tweets.raw"})
    span("emotion", "emotion label", 100, 104, ingested, model="tiny-emotion")
    span("stance", "stance label", 300, 310, ingested)
    span("gateway-indexer", "gateway.index", 400, 410, ingested, **{"messaging.source.name": "tweets.labels"})
    return format(ingested.get_span_context().trace_id, "032x")


async def stages_of(api: Any, tweet_id: str, count: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        response = await api.get(f"/tweets/{tweet_id}/trace")
        return response.json() if response.status_code == 200 else {"stages": [], "status": response.status_code}

    return await wait_until(probe, lambda b: len(b["stages"]) >= count, timeout=30, what="the spans in Jaeger")


async def test_an_indexed_tweet_has_its_stages_with_times_durations_and_models(
    settings: GatewaySettings, clean_index: None, providers: dict[str, TracerProvider]
) -> None:
    tweet_id = str(1_700_000_000_000_000_000 + secrets.randbelow(10**15))
    trace_id = tweet_trace(providers, tweet_id, ("ingestor", "ingestor.publish"))
    async with repository(settings) as search:
        doc = logic.tweet_doc(tweet(tweet_id), indexed_at=NOW, ingest_trace_id=trace_id, index_trace_id=None)
        operations = logic.tweet_operations(settings.index, doc)
        for label in (emotion(tweet_id, model="tiny-emotion"), stance(tweet_id, model="gemma-3-270m")):
            operations += logic.label_operations(settings.index, tweet_id, label.task, logic.label_doc(label))
        await search.bulk(operations)
        await search.refresh()
    async with gateway(settings) as api:
        body = await stages_of(api, tweet_id, 5)
    assert body["trace_id"] == trace_id and body["trace_url"].endswith(f"/trace/{trace_id}")
    got = [(s["stage"], s["service"], s["duration_ms"], s["model"], s["detail"]) for s in body["stages"]]
    assert got == [
        ("ingested", "ingestor", 2.0, None, None),
        ("indexed", "gateway-indexer", 15.0, None, "tweets.raw"),
        ("emotion", "emotion", 4.0, "tiny-emotion", None),
        ("stance", "stance", 10.0, "gemma-3-270m", None),  # the model from the stored document
        ("indexed", "gateway-indexer", 10.0, None, "tweets.labels"),
    ]
    starts = [s["started_at"] for s in body["stages"]]
    assert starts == sorted(starts) and body["total_ms"] == 410.0


async def test_a_tweet_not_indexed_yet_is_found_by_its_tag_and_an_unknown_one_is_404(
    settings: GatewaySettings, clean_index: None, providers: dict[str, TracerProvider]
) -> None:
    tweet_id = str(1_700_000_000_000_000_000 + secrets.randbelow(10**15))
    trace_id = tweet_trace(providers, tweet_id, ("gateway-api", "gateway.ingest"))  # POST /ingest's root
    async with gateway(settings) as api:
        body = await stages_of(api, tweet_id, 5)
        unknown = await api.get(f"/tweets/{int(tweet_id) + 1}/trace")
    assert body["trace_id"] == trace_id
    assert body["stages"][0]["stage"] == "ingested" and body["stages"][0]["operation"] == "gateway.ingest"
    assert body["stages"][2]["model"] == "tiny-emotion" and body["stages"][3]["model"] is None
    assert unknown.status_code == 404 and "no trace" in unknown.json()["detail"]
