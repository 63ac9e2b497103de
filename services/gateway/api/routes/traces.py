"""``GET /tweets/{id}/trace``: the tweet's stages (ingested, emotion, stance, indexed) from Jaeger."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from gateway.api import jaeger
from gateway.api.deps import SettingsDep, StoreDep, TraceStoreDep
from gateway.api.routes.tweets import TweetIdPath
from gateway.api.schemas import TraceStagePublic, TweetTracePublic
from gateway.documents import holds_tweet

router = APIRouter(tags=["tweets"])


@router.get(
    "/tweets/{tweet_id}/trace",
    response_model=TweetTracePublic,
    responses={
        404: {"description": "No trace for this tweet (unknown id, tracing off, sampled out, or not exported yet)"},
        503: {"description": "Jaeger or Elasticsearch unreachable"},
    },
)
async def get_tweet_trace(
    tweet_id: TweetIdPath, store: StoreDep, traces: TraceStoreDep, settings: SettingsDep
) -> TweetTracePublic:
    """Read from Jaeger's query API (no UI needed): the trace id stored with the document, or a
    search by the ``tweet.id`` tag for a tweet not indexed yet."""
    tweet_id = str(int(tweet_id))
    stored = await store.get(settings.index, tweet_id)
    source = stored if holds_tweet(stored) else {}
    trace_id = (source.get("trace") or {}).get("ingest") or await traces.find_trace_id(tweet_id)
    if not trace_id:
        raise HTTPException(status_code=404, detail=f"no trace of tweet {tweet_id} in Jaeger")
    trace = await traces.get_trace(trace_id)
    if trace is None:
        raise HTTPException(status_code=404, detail=f"trace {trace_id} of tweet {tweet_id} is not in Jaeger (yet)")
    models = {
        task: str(source[task]["model"]) for task in ("emotion", "stance") if (source.get(task) or {}).get("model")
    }
    stages = jaeger.tweet_stages(trace, tweet_id, models)
    return TweetTracePublic(
        tweet_id=tweet_id,
        trace_id=trace_id,
        trace_url=f"{settings.jaeger_ui_url.rstrip('/')}/trace/{trace_id}",
        stages=[TraceStagePublic.model_validate(s, from_attributes=True) for s in stages],
        total_ms=jaeger.total_ms(stages),
    )
