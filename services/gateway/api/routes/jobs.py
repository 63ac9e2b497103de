"""``POST /emotion``, ``POST /stance`` and ``/jobs``: queue stored tweets again for a classifier."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import ValidationError

from common.errors import TransientError
from common.events import MAX_TARGET_CHARS
from gateway.api import query
from gateway.api.deps import RelabelQueueDep, RepositoryDep
from gateway.api.repository import Job
from gateway.api.routes.tweets import EndDate, StartDate
from gateway.api.schemas import JobCreatedPublic, JobPublic
from gateway.documents import tweet_record_from_source

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

Limit = Annotated[int, Query(ge=1, le=10_000, description="How many tweets to queue at most, oldest first")]
Force = Annotated[bool, Query(description="Also queue tweets that already have this label")]
Target = Annotated[
    str | None,
    Query(
        description=f"Label the stance toward this target (1..{MAX_TARGET_CHARS} characters, stripped; blank = "
        "not given) instead of each tweet's main subject; the new label replaces the stored stance label. "
        "Without `force`, tweets already labelled toward this exact target are left out",
    ),
]


@dataclass(frozen=True)
class Selection:
    """Which stored tweets a re-label job queues: the query parameters both routes share."""

    limit: int
    start_date: str | None
    end_date: str | None
    force: bool


def selection(
    limit: Limit = 1000, start_date: StartDate = None, end_date: EndDate = None, force: Force = False
) -> Selection:
    return Selection(limit, start_date, end_date, force)


SelectionDep = Annotated[Selection, Depends(selection)]


async def _queue_job(
    task: Literal["emotion", "stance"],
    repository: RepositoryDep,
    relabel_queue: RelabelQueueDep,
    chosen: Selection,
    target: str | None = None,
) -> JobCreatedPublic:
    window = query.time_window(chosen.start_date, chosen.end_date)
    selected = query.TweetQuery(limit=chosen.limit, window=window)
    sources = await repository.select_for_labelling(task, selected, force=chosen.force, target=target)
    tweets = []
    for source in sources:
        try:
            tweets.append(tweet_record_from_source(source))
        except ValidationError as exc:
            log.warning(
                "stored tweet no longer validates; not queued", extra={"event_id": source.get("id"), "error": str(exc)}
            )
    job = Job(uuid.uuid4().hex, task, len(tweets), datetime.now(UTC).isoformat(), target)
    # The job is stored first so labels that come back quickly always find it.
    await repository.save_job(job)
    try:
        await relabel_queue.publish(task, tweets, job.job_id, target=target)
    except TransientError:
        await repository.delete_job(job.job_id)
        raise
    log.info("queued relabel job", extra={"job_id": job.job_id, "task": task, "queued": job.queued, "target": target})
    return JobCreatedPublic(job_id=job.job_id, task=task, queued=job.queued, target=target)


@router.post("/emotion", status_code=202, response_model=JobCreatedPublic)
async def queue_emotion(
    repository: RepositoryDep, relabel_queue: RelabelQueueDep, chosen: SelectionDep
) -> JobCreatedPublic:
    """Queue tweets without an emotion label (all of them with ``force``) for the emotion service."""
    return await _queue_job("emotion", repository, relabel_queue, chosen)


@router.post("/stance", status_code=202, response_model=JobCreatedPublic)
async def queue_stance(
    repository: RepositoryDep, relabel_queue: RelabelQueueDep, chosen: SelectionDep, target: Target = None
) -> JobCreatedPublic:
    """Queue tweets without a stance label (all of them with ``force``) for the stance service.

    With ``target``, the stance service labels each tweet's stance toward that target instead of
    toward the tweet's own main subject, and the new label (its ``target`` recorded) replaces the
    stored stance label; only tweets without a stance label toward that target are queued unless
    ``force``. ``GET /tweets?stance_target=...`` finds them afterwards.
    """
    return await _queue_job("stance", repository, relabel_queue, chosen, query.parse_target("target", target))


@router.get("/jobs/{job_id}", response_model=JobPublic, responses={404: {"description": "No such job"}})
async def get_job(
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="job_id returned by POST /emotion or /stance")],
    repository: RepositoryDep,
) -> JobPublic:
    job = await repository.get_job(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
    labelled = await repository.count_labelled(job.task, job.job_id)
    task: Literal["emotion", "stance"] = "emotion" if job.task == "emotion" else "stance"
    return JobPublic(
        job_id=job.job_id,
        task=task,
        queued=job.queued,
        target=job.target,
        labelled=labelled,
        done=labelled >= job.queued,
    )
