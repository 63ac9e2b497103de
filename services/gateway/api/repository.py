"""The API's repositories over ``common.tweet_store``: searching tweets and the jobs
(``TweetSearch``), the quality report and the review page (``QualitySearch``, which judges
quality as it reads). The bodies they send are built in ``api.search``; errors arrive translated
(TransientError → 503). A read of one tweet by id needs none of this: its routes call the store
(``deps.StoreDep``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.tweet_store import TweetStore
from gateway.api import search
from gateway.api.quality_report import QualityCounts
from gateway.api.query import TweetQuery
from gateway.quality import QualityThresholds, document_quality, has_label


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


class TweetSearch:
    """The tweets index (read) and the small jobs index (read and write)."""

    def __init__(self, store: TweetStore, index: str, jobs_index: str) -> None:
        self.store = store
        self.index = index
        self.jobs_index = jobs_index

    async def ping(self) -> bool:
        return await self.store.ping()

    async def search_tweets(self, query: TweetQuery) -> TweetPage:
        response = await self.store.search(self.index, search.page_search(query))
        hits = response["hits"]["hits"]
        page = hits[: query.limit]
        more = len(hits) > query.limit
        return TweetPage(
            sources=[hit["_source"] for hit in page],
            total=int(response["hits"]["total"]["value"]),
            last_sort=page[-1]["sort"] if more and page else None,
        )

    async def select_for_labelling(
        self, task: str, query: TweetQuery, *, force: bool, target: str | None = None
    ) -> list[dict[str, Any]]:
        body = search.labelling_search(task, query, force=force, target=target)
        response = await self.store.search(self.index, body, action="select")
        return [hit["_source"] for hit in response["hits"]["hits"]]

    async def save_job(self, job: Job) -> None:
        document = {
            "job_id": job.job_id,
            "task": job.task,
            "queued": job.queued,
            "created_at": job.created_at,
            "target": job.target,
        }
        await self.store.put(self.jobs_index, job.job_id, document, refresh="wait_for")

    async def delete_job(self, job_id: str) -> None:
        await self.store.delete(self.jobs_index, job_id, refresh="wait_for")

    async def get_job(self, job_id: str) -> Job | None:
        source = await self.store.get(self.jobs_index, job_id)
        if source is None:
            return None
        return Job(source["job_id"], source["task"], int(source["queued"]), source["created_at"], source.get("target"))

    async def count_labelled(self, task: str, job_id: str) -> int:
        return await self.store.count(self.index, search.labelled_by_job(task, job_id))


class QualitySearch:
    """The aggregates behind ``GET /quality``, the review sample, verdicts and the gold export."""

    def __init__(self, store: TweetStore, index: str, thresholds: QualityThresholds) -> None:
        self.store = store
        self.index = index
        self.thresholds = thresholds

    async def counts(self, *, baseline_start: datetime | None, baseline_end: datetime | None) -> QualityCounts:
        body = search.quality_search(self.thresholds, baseline_start=baseline_start, baseline_end=baseline_end)
        return search.quality_counts(await self.store.search(self.index, body, action="quality aggregates"))

    async def sample(
        self, strata: Sequence[tuple[str, dict[str, Any]]], *, seed: int, per_stratum: int, status: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``per_stratum`` random documents per stratum, the same ones for the same seed
        and data; a tweet drawn by an earlier stratum is not repeated. Returns (stratum, _source),
        each labelled document with its ``quality`` judged as it is read."""
        searches = search.sample_searches(self.index, strata, seed=seed, per_stratum=per_stratum, status=status)
        rows = search.drawn(strata, await self.store.msearch(searches, action="review sample"), per_stratum)
        return [(name, self._judged(source)) for name, source in rows]

    def _judged(self, source: dict[str, Any]) -> dict[str, Any]:
        return source | {"quality": document_quality(source, self.thresholds)} if has_label(source) else source

    async def save_review(self, tweet_id: str, review: dict[str, Any]) -> bool:
        """Store a reviewer's verdict on the tweet's document; False if no such tweet."""
        return await self.store.update(self.index, tweet_id, {"review": review}, refresh="wait_for")

    async def reviewed(self, page_size: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
        """Every reviewed tweet, in id order, page by page."""
        after: list[Any] | None = None
        while True:
            body = search.reviewed_search(page_size, after)
            response = await self.store.search(self.index, body, action="review export")
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield [hit["_source"] for hit in hits]
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]
