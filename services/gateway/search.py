"""Everything Elasticsearch: the index mappings, index creation, bulk writes and queries.

This is the only module that imports ``elasticsearch``. Connection failures, overload (429)
and server errors surface as :class:`TransientError`; callers retry or answer 503.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError, TransportError

from common.errors import TransientError
from gateway.query import TweetQuery

log = logging.getLogger(__name__)

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}


def _label_mapping(*, with_valence: bool = False, with_target: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "label": _KEYWORD,
        "score": {"type": "float"},
        "scores": {"type": "object", "enabled": False},
        "model": _KEYWORD,
        "model_revision": _KEYWORD,
        "provider": _KEYWORD,
        "prompt_version": _KEYWORD,
        "method": _KEYWORD,
        "produced_at": _DATE,
        "job_id": _KEYWORD,
        "trace_id": _KEYWORD,
    }
    if with_valence:
        properties["valence"] = {"type": "float"}
    if with_target:
        properties["target"] = _KEYWORD  # what the stance is toward (LabelEvent.target)
    return {"properties": properties}


TWEETS_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "created_at": _DATE,
        "author": {
            "properties": {
                "handle": _KEYWORD,
                "username": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "user_id": _KEYWORD,
                "verified": {"type": "boolean"},
            }
        },
        "text": {"type": "text"},
        "hashtags": _KEYWORD,
        "metrics": {"properties": {"retweets": {"type": "long"}, "likes": {"type": "long"}}},
        "lang": _KEYWORD,
        "source": _KEYWORD,
        "ingested_at": _DATE,
        "indexed_at": _DATE,
        "trace": {"properties": {"ingest": _KEYWORD, "index": _KEYWORD}},
        "emotion": _label_mapping(with_valence=True),
        "stance": _label_mapping(with_target=True),
        # quality checks (gateway.quality): the lexicon score of the text, the flags the
        # indexer recomputes after every write, and a reviewer's verdict
        "lexicon": {"properties": {"compound": {"type": "float"}, "model": _KEYWORD}},
        "quality": {
            "properties": {
                "rules": _KEYWORD,
                "flags": _KEYWORD,
                "lexicon_polarity": _KEYWORD,
                "model_polarity": _KEYWORD,
                "lexicon_agrees": {"type": "boolean"},
            }
        },
        "review": {
            "properties": {
                "status": _KEYWORD,
                "emotion": _KEYWORD,
                "stance": _KEYWORD,
                "sentiment": _KEYWORD,
                "reviewer": _KEYWORD,
                "at": _DATE,
                "shown_emotion": _KEYWORD,
                "shown_stance": _KEYWORD,
            }
        },
    },
}

JOBS_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "job_id": _KEYWORD,
        "task": _KEYWORD,
        "queued": {"type": "integer"},
        "created_at": _DATE,
        "target": _KEYWORD,
    },
}

# Label-only documents (a label that arrived before its tweet) have no created_at.
_HAS_TWEET = {"exists": {"field": "created_at"}}
_PAGE_SORT = [{"created_at": "asc"}, {"id": "asc"}]


@dataclass(frozen=True)
class TweetPage:
    sources: list[dict[str, Any]]
    total: int
    last_sort: list[Any] | None  # sort values of the last returned hit, when more follow


@dataclass(frozen=True)
class Job:
    job_id: str
    task: str
    queued: int
    created_at: str
    target: str | None = None  # stance jobs toward a named target


def make_client(url: str, request_timeout_s: float) -> AsyncElasticsearch:
    return AsyncElasticsearch(url, request_timeout=request_timeout_s, max_retries=1, retry_on_timeout=True)


@asynccontextmanager
async def _translated_errors(action: str) -> AsyncIterator[None]:
    try:
        yield
    except TransportError as exc:  # connection refused, timeout, TLS
        raise TransientError(f"elasticsearch unreachable during {action}: {exc}") from exc
    except ApiError as exc:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            raise TransientError(f"elasticsearch failed during {action}: {exc.meta.status} {exc}") from exc
        raise


def tweets_filter(query: TweetQuery) -> list[dict[str, Any]]:
    """The bool ``filter`` clauses of a tweet query."""
    clauses: list[dict[str, Any]] = [_HAS_TWEET]
    window = query.window
    if window.start is not None or window.end is not None:
        bounds: dict[str, str] = {}
        if window.start is not None:
            bounds["gte"] = window.start.isoformat()
        if window.end is not None:
            bounds["lte" if window.end_inclusive else "lt"] = window.end.isoformat()
        clauses.append({"range": {"created_at": bounds}})
    if query.emotion is not None:
        clauses.append({"term": {"emotion.label": query.emotion}})
    if query.stance is not None:
        clauses.append({"term": {"stance.label": query.stance}})
    if query.stance_target is not None:
        clauses.append({"term": {"stance.target": query.stance_target}})
    if query.min_valence is not None or query.max_valence is not None:
        valence: dict[str, float] = {}
        if query.min_valence is not None:
            valence["gte"] = query.min_valence
        if query.max_valence is not None:
            valence["lte"] = query.max_valence
        clauses.append({"range": {"emotion.valence": valence}})
    return clauses


class TweetSearch:
    """The gateway's repository over the tweets index and the small jobs index."""

    def __init__(self, client: AsyncElasticsearch, index: str, jobs_index: str) -> None:
        self.client = client
        self.index = index
        self.jobs_index = jobs_index

    async def ensure_indices(self, *, shards: int = 1, replicas: int = 0) -> None:
        """Create both indices if missing; add new fields to existing mappings (idempotent)."""
        settings = {"number_of_shards": shards, "number_of_replicas": replicas}
        for index, mapping in ((self.index, TWEETS_MAPPING), (self.jobs_index, JOBS_MAPPING)):
            async with _translated_errors("ensure index"):
                if await self.client.indices.exists(index=index):
                    await self.client.indices.put_mapping(index=index, **mapping)
                    continue
                try:
                    await self.client.indices.create(index=index, mappings=mapping, settings=settings)
                    log.info("created index", extra={"index": index})
                except BadRequestError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise  # another process won the race: anything else is a real error

    async def ping(self) -> bool:
        """Reachable and not red. (Cluster health, not ``GET /``: minimal distributions lack it.)"""
        try:
            health = await self.client.options(request_timeout=3, max_retries=0).cluster.health()
        except (TransportError, ApiError):
            return False
        return bool(health["status"] != "red")

    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one bulk request; return its per-item results in request order."""
        async with _translated_errors("bulk"):
            response = await self.client.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
        items: list[dict[str, Any]] = response.get("items", [])
        return items

    async def refresh(self) -> None:
        async with _translated_errors("refresh"):
            await self.client.indices.refresh(index=self.index)

    async def search_tweets(self, query: TweetQuery) -> TweetPage:
        body: dict[str, Any] = {
            "query": {"bool": {"filter": tweets_filter(query)}},
            "sort": _PAGE_SORT,
            "size": query.limit + 1,  # one extra tells whether another page follows
            "track_total_hits": True,
        }
        if query.after is not None:
            body["search_after"] = [query.after.created_at_millis, query.after.tweet_id]
        async with _translated_errors("search"):
            response = await self.client.search(index=self.index, **body)
        hits = response["hits"]["hits"]
        page = hits[: query.limit]
        more = len(hits) > query.limit
        return TweetPage(
            sources=[hit["_source"] for hit in page],
            total=int(response["hits"]["total"]["value"]),
            last_sort=page[-1]["sort"] if more and page else None,
        )

    async def get_tweet(self, tweet_id: str) -> dict[str, Any] | None:
        async with _translated_errors("get"):
            try:
                response = await self.client.get(index=self.index, id=tweet_id)
            except NotFoundError:
                return None
        source: dict[str, Any] = response["_source"]
        return source if "created_at" in source else None

    async def select_for_labelling(
        self, task: str, query: TweetQuery, *, force: bool, target: str | None = None
    ) -> list[dict[str, Any]]:
        """Tweets in the window, oldest first; only those without a ``task`` label unless forced.

        With a stance ``target``: only those without a stance label toward that target.
        """
        must_not: list[dict[str, Any]] = []
        if not force and target is not None:
            must_not.append({"term": {f"{task}.target": target}})
        elif not force:
            must_not.append({"exists": {"field": f"{task}.label"}})
        async with _translated_errors("select"):
            response = await self.client.search(
                index=self.index,
                query={"bool": {"filter": tweets_filter(query), "must_not": must_not}},
                sort=_PAGE_SORT,
                size=query.limit,
                track_total_hits=False,
            )
        return [hit["_source"] for hit in response["hits"]["hits"]]

    async def save_job(self, job: Job) -> None:
        async with _translated_errors("save job"):
            await self.client.index(
                index=self.jobs_index,
                id=job.job_id,
                document={
                    "job_id": job.job_id,
                    "task": job.task,
                    "queued": job.queued,
                    "created_at": job.created_at,
                    "target": job.target,
                },
                refresh="wait_for",
            )

    async def delete_job(self, job_id: str) -> None:
        async with _translated_errors("delete job"):
            with contextlib.suppress(NotFoundError):
                await self.client.delete(index=self.jobs_index, id=job_id, refresh="wait_for")

    async def get_job(self, job_id: str) -> Job | None:
        async with _translated_errors("get job"):
            try:
                response = await self.client.get(index=self.jobs_index, id=job_id)
            except NotFoundError:
                return None
        source = response["_source"]
        return Job(source["job_id"], source["task"], int(source["queued"]), source["created_at"], source.get("target"))

    async def count_labelled(self, task: str, job_id: str) -> int:
        async with _translated_errors("count"):
            response = await self.client.count(
                index=self.index, query={"bool": {"filter": [_HAS_TWEET, {"term": {f"{task}.job_id": job_id}}]}}
            )
        return int(response["count"])
