"""``--skip-existing``: ask Elasticsearch which tweets are already indexed (one ``mget`` per chunk,
ids only), so a re-run publishes only new tweets and pays for no inference twice. The only
ingestor module that talks to Elasticsearch."""

from __future__ import annotations

from collections.abc import Sequence

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch import ConnectionError as ESConnectionError

from ingestor.errors import IndexUnavailableError


class IndexLookup:
    def __init__(self, url: str, index: str) -> None:
        self.url, self.index = url, index
        self._client = AsyncElasticsearch(url, request_timeout=30, retry_on_timeout=True, max_retries=3)

    async def __call__(self, ids: Sequence[str]) -> set[str]:
        try:
            response = await self._client.mget(index=self.index, ids=list(ids), source=False)
        except NotFoundError:
            return set()  # no index yet: nothing was indexed
        except ESConnectionError as exc:
            raise IndexUnavailableError(
                f"--skip-existing needs Elasticsearch at {self.url} (INGESTOR_ES_URL / GATEWAY_ES_URL): {exc}"
            ) from None
        return {doc["_id"] for doc in response["docs"] if doc.get("found")}

    async def close(self) -> None:
        await self._client.close()
