"""The pipeline's Elasticsearch store: the only module that imports ``elasticsearch``.

Generic calls on an index (create it with a mapping, bulk, get, mget, search, count, index,
update, delete); the mappings and the query DSL belong to their callers (``gateway.documents``,
``gateway.api.search``). Failures come out in the project's taxonomy: a refusal that is about the
cluster rather than the request (:func:`systemic_reason`: unreachable, auth, a write block,
overload, a server error) is a :class:`StoreUnavailable`, a :class:`SystemicError` (retry the
batch whole, or answer 503); any other refusal is a :class:`PermanentError` naming the status. A missing document
is not an error: ``get`` answers None, ``update`` False, ``delete`` nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError, TransportError

from common.errors import PermanentError, SystemicError, TransientError

log = logging.getLogger(__name__)
Refresh = bool | Literal["wait_for"]


# Error types that are about the cluster or the index, never about one document.
_SYSTEMIC_TYPES = {
    "security_exception": "auth",
    "es_rejected_execution_exception": "overloaded",
    "circuit_breaking_exception": "overloaded",
    "index_closed_exception": "index_closed",
    "unavailable_shards_exception": "unavailable",
    "no_shard_available_action_exception": "unavailable",
}


def systemic_reason(status: int, error: Any = None) -> str | None:
    """Why Elasticsearch refuses every write right now, or None if the refusal is about the request.

    ``error`` is the answer's ``error`` (an object with ``type`` and ``reason``, or a string).
    A write block answers 403 (``index.blocks.write``) or 429 (read-only-allow-delete, the
    flood-stage watermark) with ``cluster_block_exception``; auth answers 401/403; overload 429;
    failure 5xx. Anything else (a mapping error, a malformed request) is about the document.
    """
    kind = error.get("type", "") if isinstance(error, dict) else str(error or "")
    detail = str(error.get("reason", "")) if isinstance(error, dict) else str(error or "")
    if kind == "cluster_block_exception":
        return "read_only" if "read-only" in detail or "read_only" in detail else "write_block"
    if kind in _SYSTEMIC_TYPES:
        return _SYSTEMIC_TYPES[kind]
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "overloaded"
    if status == 408 or status >= 500:
        return "unavailable"
    return None


class StoreUnavailable(SystemicError):
    """Elasticsearch cannot take writes (or answer) for now; ``reason`` is a :func:`systemic_reason`
    or ``unreachable``. Waiting helps; dead-lettering the documents would not."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Versioned:
    """A stored document's version (for ``if_seq_no``/``if_primary_term`` writes) and the fields read."""

    seq_no: int
    primary_term: int
    source: dict[str, Any]


@asynccontextmanager
async def _translated(action: str) -> AsyncIterator[None]:
    """Elasticsearch's exceptions as TransientError / PermanentError, naming ``action``."""
    try:
        yield
    except TransportError as exc:  # connection refused, timeout, TLS
        raise StoreUnavailable("unreachable", f"elasticsearch unreachable during {action}: {exc}") from exc
    except ApiError as exc:
        status = exc.meta.status
        reason = systemic_reason(status, exc.body.get("error") if isinstance(exc.body, dict) else exc.message)
        if reason is not None:
            raise StoreUnavailable(reason, f"elasticsearch failed during {action}: {status} {exc}") from exc
        raise PermanentError("elasticsearch_refused", f"{action}: {status} {exc}") from exc


class TweetStore:
    """One client to one cluster. Constructing it connects nothing; ``close`` releases it."""

    def __init__(self, url: str, *, request_timeout_s: float = 30.0, max_retries: int = 1) -> None:
        self.url = url
        self._client = AsyncElasticsearch(
            url, request_timeout=request_timeout_s, max_retries=max_retries, retry_on_timeout=True
        )

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> bool:
        """Reachable and not red. (Cluster health, not ``GET /``: minimal distributions lack it.)"""
        try:
            health = await self._client.options(request_timeout=3, max_retries=0).cluster.health()
        except (TransportError, ApiError):
            return False
        return bool(health["status"] != "red")

    async def ensure_index(self, index: str, mapping: dict[str, Any], *, shards: int = 1, replicas: int = 0) -> None:
        """Create ``index`` if missing; otherwise add the mapping's new fields to it (idempotent)."""
        async with _translated("ensure index"):
            if await self._client.indices.exists(index=index):
                await self._client.indices.put_mapping(index=index, **mapping)
                return
            try:
                await self._client.indices.create(
                    index=index,
                    mappings=mapping,
                    settings={"number_of_shards": shards, "number_of_replicas": replicas},
                )
                log.info("created index", extra={"index": index})
            except BadRequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise  # another process won the race: anything else is a real error

    async def refresh(self, index: str) -> None:
        async with _translated("refresh"):
            await self._client.indices.refresh(index=index)

    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one bulk request; return its per-item results (status, error) in request order."""
        async with _translated("bulk"):
            response = await self._client.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
        items: list[dict[str, Any]] = response.get("items", [])
        return items

    async def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The document's ``_source``, or None if there is no such document (or index)."""
        async with _translated("get"):
            try:
                response = await self._client.get(index=index, id=doc_id)
            except NotFoundError:
                return None
        source: dict[str, Any] = response["_source"]
        return source

    async def existing_ids(self, index: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` have a document in ``index`` (one ``mget``, ids only; none if no index)."""
        async with _translated("mget"):
            try:
                response = await self._client.mget(index=index, ids=list(ids), source=False)
            except NotFoundError:
                return set()  # no index yet: nothing was indexed
        return {doc["_id"] for doc in response["docs"] if doc.get("found")}

    async def versions(self, index: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Versioned]:
        """The found documents among ``ids`` with their version and only ``fields`` of their source
        (one realtime ``mget``: it sees the last acknowledged write; none if there is no index)."""
        async with _translated("mget"):
            try:
                response = await self._client.mget(index=index, ids=list(ids), source_includes=list(fields))
            except NotFoundError:
                return {}
        return {
            doc["_id"]: Versioned(doc["_seq_no"], doc["_primary_term"], doc.get("_source", {}))
            for doc in response["docs"]
            if doc.get("found")
        }

    async def search(self, index: str, body: dict[str, Any], *, action: str = "search") -> dict[str, Any]:
        """One search; ``body`` holds its parameters (query, sort, size, aggs, ...)."""
        async with _translated(action):
            response = await self._client.search(index=index, **body)
        result: dict[str, Any] = response.body
        return result

    async def msearch(self, searches: Sequence[dict[str, Any]], *, action: str = "msearch") -> list[dict[str, Any]]:
        """Several searches in one request (header, body, header, body...); one response each."""
        async with _translated(action):
            response = await self._client.msearch(searches=searches)
        responses: list[dict[str, Any]] = response["responses"]
        return responses

    async def count(self, index: str, query: dict[str, Any]) -> int:
        async with _translated("count"):
            response = await self._client.count(index=index, query=query)
        return int(response["count"])

    async def put(self, index: str, doc_id: str, document: dict[str, Any], *, refresh: Refresh = False) -> None:
        """Store ``document`` whole under ``doc_id``, replacing any previous one."""
        async with _translated("index"):
            await self._client.index(index=index, id=doc_id, document=document, refresh=refresh)

    async def update(
        self, index: str, doc_id: str, doc: dict[str, Any], *, refresh: Refresh = False, retry_on_conflict: int = 5
    ) -> bool:
        """Merge ``doc`` into the stored document; False if there is no such document."""
        async with _translated("update"):
            try:
                await self._client.update(
                    index=index, id=doc_id, doc=doc, refresh=refresh, retry_on_conflict=retry_on_conflict
                )
            except NotFoundError:
                return False
        return True

    async def delete(self, index: str, doc_id: str, *, refresh: Refresh = False) -> None:
        """Delete the document if it exists."""
        async with _translated("delete"):
            with contextlib.suppress(NotFoundError):
                await self._client.delete(index=index, id=doc_id, refresh=refresh)

    async def delete_indices(self, pattern: str) -> None:
        """Delete every index matching ``pattern`` (benchmarks' and tests' throwaway indices)."""
        async with _translated("delete index"):
            await self._client.indices.delete(index=pattern, ignore_unavailable=True)


class ExistingIds:
    """``ids → those already indexed``, as a callable over a store of its own (``ingestor
    --skip-existing``). When Elasticsearch cannot answer, raises what ``unavailable`` makes of
    the :class:`TransientError`: the caller's own error, naming its address and settings."""

    def __init__(self, store: TweetStore, index: str, unavailable: Callable[[TransientError], Exception]) -> None:
        self.store, self.index, self.unavailable = store, index, unavailable

    async def __call__(self, ids: Sequence[str]) -> set[str]:
        try:
            return await self.store.existing_ids(self.index, ids)
        except TransientError as exc:
            raise self.unavailable(exc) from None

    async def close(self) -> None:
        await self.store.close()
