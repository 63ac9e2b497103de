"""The store's error taxonomy (common.tweet_store), without a server: which refusals are about the
cluster (wait: StoreUnavailable, a TransientError) and which about the request (PermanentError)."""

from __future__ import annotations

from typing import Any

import elastic_transport
import pytest
from elasticsearch import ApiError, AsyncElasticsearch

from common.errors import PermanentError, TransientError
from common.tweet_store import StoreUnavailable, TweetStore, systemic_reason

WRITE_BLOCK = {"type": "cluster_block_exception", "reason": "index [t] blocked by: [FORBIDDEN/8/index write (api)];"}
FLOOD = {"type": "cluster_block_exception", "reason": "[TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage "
         "watermark, index has read-only-allow-delete block]"}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (403, WRITE_BLOCK, "write_block"),
        (429, FLOOD, "read_only"),
        (401, {"type": "security_exception"}, "auth"),
        (403, {"type": "security_exception"}, "auth"),
        (403, None, "auth"),
        (429, {"type": "es_rejected_execution_exception"}, "overloaded"),
        (429, {"type": "circuit_breaking_exception"}, "overloaded"),
        (400, {"type": "index_closed_exception"}, "index_closed"),
        (503, {"type": "unavailable_shards_exception"}, "unavailable"),
        (502, "Bad Gateway", "unavailable"),
        (408, None, "unavailable"),
        (400, {"type": "document_parsing_exception"}, None),
        (400, {"type": "mapper_parsing_exception"}, None),
        (400, {"type": "parsing_exception"}, None),
        (409, {"type": "version_conflict_engine_exception"}, None),
        (404, {"type": "document_missing_exception"}, None),
    ],
)
def test_systemic_reason(status: int, error: Any, reason: str | None) -> None:
    assert systemic_reason(status, error) == reason


def api_error(status: int, error: Any) -> ApiError:
    node = elastic_transport.NodeConfig("http", "localhost", 9200)
    meta = elastic_transport.ApiResponseMeta(status, "1.1", elastic_transport.HttpHeaders(), 0.0, node)
    return ApiError(str(error), meta, {"error": error, "status": status})


async def bulk_refused_with(exc: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TweetStore.bulk`` when the client's request raises ``exc``."""

    async def refuse(*_: Any, **__: Any) -> None:
        raise exc

    monkeypatch.setattr(AsyncElasticsearch, "bulk", refuse)
    store = TweetStore("http://127.0.0.1:9")
    try:
        await store.bulk([{"index": {"_index": "t"}}, {}])
    finally:
        await store.close()


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (api_error(403, WRITE_BLOCK), "write_block"),
        (api_error(401, {"type": "security_exception"}), "auth"),
        (api_error(429, FLOOD), "read_only"),
        (api_error(503, {"type": "x"}), "unavailable"),
        (elastic_transport.ConnectionError("refused"), "unreachable"),
    ],
)
async def test_a_refusal_of_the_whole_request_about_the_cluster_is_unavailable(
    exc: Exception, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        await bulk_refused_with(exc, monkeypatch)
    assert isinstance(raised.value, TransientError) and raised.value.reason == reason


@pytest.mark.asyncio(loop_scope="session")
async def test_a_refusal_of_the_request_itself_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentError) as raised:
        await bulk_refused_with(api_error(400, {"type": "parsing_exception", "reason": "bad"}), monkeypatch)
    assert raised.value.reason == "elasticsearch_refused" and "400" in raised.value.detail
