"""The Elasticsearch store (common.tweet_store) against the real Elasticsearch: its errors in the
project's taxonomy, missing documents and indices as answers, and the ids lookup of
``ingestor --skip-existing``."""

from __future__ import annotations

import socket

import pytest

from common.errors import PermanentError, TransientError
from common.tweet_store import ExistingIds, TweetStore
from gateway.documents import ensure_indices
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_indexer import clean_index, settings

pytestmark = [pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests


def nowhere() -> str:
    """An address where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Unavailable(TransientError):
    pass


async def test_missing_documents_and_indices_are_answers_not_errors(
    settings: GatewaySettings, clean_index: None
) -> None:
    store = TweetStore(settings.es_url)
    try:
        assert await store.existing_ids(settings.index, ["1", "2"]) == set()  # no index yet
        await ensure_indices(store, settings)
        await ensure_indices(store, settings)  # idempotent
        await store.put(settings.jobs_index, "j1", {"job_id": "j1", "task": "emotion", "queued": 1}, refresh=True)
        assert await store.get(settings.jobs_index, "j1") == {"job_id": "j1", "task": "emotion", "queued": 1}
        assert await store.get(settings.jobs_index, "nope") is None
        assert await store.update(settings.jobs_index, "nope", {"queued": 2}) is False
        await store.delete(settings.jobs_index, "nope")
        assert await store.existing_ids(settings.jobs_index, ["j1", "j2"]) == {"j1"}
        assert await store.ping()
    finally:
        await store.close()


async def test_a_refusal_is_permanent_and_names_its_status(settings: GatewaySettings, clean_index: None) -> None:
    store = TweetStore(settings.es_url)
    try:
        await ensure_indices(store, settings)
        with pytest.raises(PermanentError) as refused:
            await store.search(settings.index, {"query": {"no_such_query": {}}})
        assert refused.value.reason == "elasticsearch_refused" and "400" in refused.value.detail
        with pytest.raises(PermanentError):  # the strict mapping refuses an unknown field
            await store.put(settings.jobs_index, "j1", {"not_a_field": 1})
    finally:
        await store.close()


async def test_an_unreachable_cluster_is_transient_and_the_lookup_says_whose_settings() -> None:
    store = TweetStore(nowhere(), request_timeout_s=2, max_retries=0)
    try:
        assert not await store.ping()
        with pytest.raises(TransientError, match="unreachable during get"):
            await store.get("tweets", "1")
    finally:
        await store.close()
    lookup = ExistingIds(TweetStore(nowhere(), max_retries=0), "tweets", lambda exc: Unavailable(f"ES_URL: {exc}"))
    try:
        with pytest.raises(Unavailable, match="^ES_URL: elasticsearch unreachable during mget"):
            await lookup(["1"])
    finally:
        await lookup.close()
