"""Injectables of the routes, as ``Annotated`` aliases. Tests swap them via ``dependency_overrides``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from common.events import TweetRecord
from common.kafka import OutgoingMessage
from gateway.api.quality_report import QualityCounts
from gateway.api.query import TweetQuery
from gateway.api.repository import Job, TweetPage
from gateway.settings import GatewaySettings


class DocumentStore(Protocol):
    """A document by id (``common.tweet_store.TweetStore``): a simple read needs no repository."""

    async def get(self, index: str, doc_id: str) -> dict[str, Any] | None: ...


class TweetRepository(Protocol):
    async def search_tweets(self, query: TweetQuery) -> TweetPage: ...
    async def select_for_labelling(
        self, task: str, query: TweetQuery, *, force: bool, target: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def save_job(self, job: Job) -> None: ...
    async def delete_job(self, job_id: str) -> None: ...
    async def get_job(self, job_id: str) -> Job | None: ...
    async def count_labelled(self, task: str, job_id: str) -> int: ...
    async def ping(self) -> bool: ...


class RelabelQueue(Protocol):
    async def publish(
        self, task: str, tweets: Sequence[TweetRecord], job_id: str, *, target: str | None = None
    ) -> None: ...
    async def ping(self) -> bool: ...


class IngestQueue(Protocol):
    async def publish_records(self, messages: Sequence[OutgoingMessage]) -> None: ...


class TraceStore(Protocol):
    async def get_trace(self, trace_id: str) -> dict[str, Any] | None: ...
    async def find_trace_id(self, tweet_id: str) -> str | None: ...


class QualityStore(Protocol):
    async def counts(self, *, baseline_start: datetime | None, baseline_end: datetime | None) -> QualityCounts: ...
    async def sample(
        self, strata: Sequence[tuple[str, dict[str, Any]]], *, seed: int, per_stratum: int, status: str
    ) -> list[tuple[str, dict[str, Any]]]: ...
    async def save_review(self, tweet_id: str, review: dict[str, Any]) -> bool: ...
    def reviewed(self, page_size: int = 500) -> AsyncIterator[list[dict[str, Any]]]: ...


def _app_state(attribute: str) -> Callable[[Request], Any]:
    """The injectable that reads ``app.state.<attribute>``, which ``create_app`` sets."""

    def injectable(request: Request) -> Any:
        return getattr(request.app.state, attribute)

    return injectable


get_settings = _app_state("settings")
get_store = _app_state("store")
get_repository = _app_state("repository")
get_relabel_queue = _app_state("relabel_queue")
get_ingest_queue = _app_state("relabel_queue")  # one Kafka producer serves both
get_trace_store = _app_state("trace_store")
get_quality_store = _app_state("quality")


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
StoreDep = Annotated[DocumentStore, Depends(get_store)]
RepositoryDep = Annotated[TweetRepository, Depends(get_repository)]
RelabelQueueDep = Annotated[RelabelQueue, Depends(get_relabel_queue)]
IngestQueueDep = Annotated[IngestQueue, Depends(get_ingest_queue)]
TraceStoreDep = Annotated[TraceStore, Depends(get_trace_store)]
QualityStoreDep = Annotated[QualityStore, Depends(get_quality_store)]
