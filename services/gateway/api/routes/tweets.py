"""``/tweets``: search the labelled tweets, page by page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from common.events import MAX_TARGET_CHARS
from gateway.api import query
from gateway.api.deps import RepositoryDep, SettingsDep
from gateway.api.schemas import TweetPagePublic, TweetPublic

router = APIRouter(tags=["tweets"])

DATE_HELP = "YYYY-MM-DD or an ISO 8601 datetime (naive means UTC)"
StartDate = Annotated[str | None, Query(max_length=64, description=f"Oldest created_at, inclusive: {DATE_HELP}")]
EndDate = Annotated[
    str | None,
    Query(max_length=64, description=f"Newest created_at, inclusive (a date covers the whole day): {DATE_HELP}"),
]
TweetIdPath = Annotated[str, Path(pattern=r"^[0-9]{1,19}$", description="The numeric tweet id")]


@router.get("/tweets", response_model=TweetPagePublic)
async def list_tweets(
    repository: RepositoryDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    start_date: StartDate = None,
    end_date: EndDate = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    emotion: Annotated[str | None, Query(max_length=32, description="One of the emotion labels")] = None,
    stance: Annotated[str | None, Query(max_length=32, description="SUPPORT, OPPOSE or NEUTRAL")] = None,
    stance_target: Annotated[
        str | None,
        Query(
            description="Only stance labels toward exactly this target (as stored in stance.target, stripped; "
            f"at most {MAX_TARGET_CHARS} characters; blank = any), e.g. the target a POST /stance job named"
        ),
    ] = None,
    min_score: Annotated[float | None, Query(ge=-1, le=1, description="Lowest emotion valence")] = None,
    max_score: Annotated[float | None, Query(ge=-1, le=1, description="Highest emotion valence")] = None,
) -> TweetPagePublic:
    tweet_query = query.tweet_query(
        limit=limit,
        start_date=start_date,
        end_date=end_date,
        cursor=cursor,
        emotion=emotion,
        stance=stance,
        stance_target=stance_target,
        min_score=min_score,
        max_score=max_score,
    )
    page = await repository.search_tweets(tweet_query)
    return TweetPagePublic(
        items=[TweetPublic.from_source(s, jaeger_ui_url=settings.jaeger_ui_url) for s in page.sources],
        total=page.total,
        next_cursor=query.encode_cursor(query.cursor_from_sort(page.last_sort)) if page.last_sort else None,
    )


@router.get("/tweets/{tweet_id}", response_model=TweetPublic, responses={404: {"description": "No such tweet"}})
async def get_tweet(tweet_id: TweetIdPath, repository: RepositoryDep, settings: SettingsDep) -> TweetPublic:
    tweet_id = str(int(tweet_id))  # "007" names the same tweet as "7", as in TweetRecord
    source = await repository.get_tweet(tweet_id)
    if source is None:
        raise HTTPException(status_code=404, detail=f"tweet {tweet_id} is not indexed")
    return TweetPublic.from_source(source, jaeger_ui_url=settings.jaeger_ui_url)
