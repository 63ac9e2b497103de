"""``/tweets``: search the labelled tweets, page by page, or read one by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from gateway.api import query
from gateway.api.deps import RepositoryDep, SettingsDep, StoreDep
from gateway.api.schemas import TweetPagePublic, TweetPublic
from gateway.documents import holds_tweet

router = APIRouter(tags=["tweets"])

StartDate = Annotated[str | None, Query(max_length=64, description=query.START_DATE_HELP)]
EndDate = Annotated[str | None, Query(max_length=64, description=query.END_DATE_HELP)]
TweetIdPath = Annotated[str, Path(pattern=r"^[0-9]{1,19}$", description="The numeric tweet id")]


@router.get("/tweets", response_model=TweetPagePublic)
async def list_tweets(
    filters: Annotated[query.TweetFilters, Query()], repository: RepositoryDep, settings: SettingsDep
) -> TweetPagePublic:
    page = await repository.search_tweets(query.tweet_query(filters))
    return TweetPagePublic(
        items=[TweetPublic.from_source(s, jaeger_ui_url=settings.jaeger_ui_url) for s in page.sources],
        total=page.total,
        next_cursor=query.encode_cursor(query.cursor_from_sort(page.last_sort)) if page.last_sort else None,
    )


@router.get("/tweets/{tweet_id}", response_model=TweetPublic, responses={404: {"description": "No such tweet"}})
async def get_tweet(tweet_id: TweetIdPath, store: StoreDep, settings: SettingsDep) -> TweetPublic:
    tweet_id = str(int(tweet_id))  # "007" names the same tweet as "7", as in TweetRecord
    source = await store.get(settings.index, tweet_id)  # a read by id needs no repository
    if not holds_tweet(source):
        raise HTTPException(status_code=404, detail=f"tweet {tweet_id} is not indexed")
    return TweetPublic.from_source(source, jaeger_ui_url=settings.jaeger_ui_url)
