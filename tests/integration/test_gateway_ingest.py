"""POST /ingest on the real Kafka (and the real indexer and Elasticsearch behind it)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from pydantic import SecretStr

from gateway.settings import GatewaySettings
from tests.integration.test_gateway_api import gateway
from tests.integration.test_gateway_indexer import clean_index, read_topic, running_indexer, settings
from tests.support.polling import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

KEY = {"X-API-Key": "ingest-test-key-0123"}


def nested(tweet_id: Any, text: str = "The new bike lanes are great, I support them", **meta: Any) -> str:
    return json.dumps(
        {
            "id": tweet_id,
            "user": {"username": "Ada Lovelace", "handle": "@ada", "verified": True},
            "meta": {"created_at": "2025-02-19", "hashtags": ["#Bikes"], **meta},
            "payload": {"tweet": {"content": text}},
            "metrics": {"retweets": 3, "likes": 10},
        }
    )


async def test_valid_lines_are_indexed_and_each_bad_line_is_answered_and_rejected(
    settings: GatewaySettings, clean_index: None
) -> None:
    base = 1_800_000_000_000_000_000 + secrets.randbelow(10**15)  # 64-bit ids past 2**53
    ids = [str(base + i) for i in range(3)]
    body = "\n".join(
        [
            nested(ids[0]),
            nested(ids[1], text="   "),
            nested(int(ids[2])),  # a JSON integer id past 2**53 keeps every digit
            '{"id": 5, "payload": ',
            nested(ids[0]),
        ]
    )
    keyed = settings.model_copy(update={"api_keys": SecretStr(f"ci:{KEY['X-API-Key']}")})
    async with gateway(keyed) as api, running_indexer(settings):
        assert (await api.post("/ingest", content=body)).status_code == 401
        response = await api.post("/ingest", content=body, headers={**KEY, "Content-Type": "application/x-ndjson"})
        assert response.status_code == 202, response.text
        result = response.json()
        assert (result["received"], result["published"], result["rejected"]) == (5, 2, 3)
        assert [(r["line"], r["reason"]) for r in result["rejections"]] == [
            (2, "empty_field:text"),
            (4, "not_json"),
            (5, "duplicate_id"),
        ]

        async def indexed() -> list[dict[str, Any]]:
            found = [await api.get(f"/tweets/{tweet_id}") for tweet_id in (ids[0], ids[2])]
            return [r.json() for r in found if r.status_code == 200]

        docs = await wait_until(indexed, lambda d: len(d) == 2, timeout=60, what="the ingested tweets indexed")
    assert {d["id"] for d in docs} == {ids[0], ids[2]}
    assert {d["source"] for d in docs} == {"api:ci"}

    raw = await read_topic(settings.kafka, settings.kafka.topics.raw)
    assert sorted(key for key, _, _ in raw) == sorted([ids[0].encode(), ids[2].encode()])
    rejected = [json.loads(value) for _, value, _ in await read_topic(settings.kafka, settings.kafka.topics.rejected)]
    assert sorted((r["position"], r["reason"]) for r in rejected) == [
        ("line 2", "empty_field:text"),
        ("line 4", "not_json"),
        ("line 5", "duplicate_id"),
    ]


async def test_a_body_over_the_limit_is_413_and_publishes_nothing(settings: GatewaySettings) -> None:
    small = settings.model_copy(update={"max_request_bytes": 4096})
    body = "\n".join(nested(str(10_000 + i)) for i in range(40))
    async with gateway(small) as api:
        response = await api.post("/ingest", content=body)
    assert response.status_code == 413 and "GATEWAY_MAX_REQUEST_BYTES" in response.json()["detail"]
    if settings.kafka.topics.raw in await _existing_topics(settings):
        assert await read_topic(settings.kafka, settings.kafka.topics.raw) == []


async def _existing_topics(settings: GatewaySettings) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()
