"""``POST /ingest``: JSON Lines of the spec's nested layout in, validated tweets onto ``tweets.raw``."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request
from opentelemetry import context, trace

from common.kafka import OutgoingMessage
from common.metrics import PRODUCED, REJECTED
from common.telemetry import TWEET_ID, inject_headers
from gateway.api.deps import IngestQueueDep, SettingsDep
from gateway.api.ingest import IngestBatch, count_records, rejected_field, validate_lines
from gateway.api.schemas import IngestResultPublic, RejectionPublic
from gateway.api.security import client_name, too_large

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gateway.api")
router = APIRouter(tags=["ingest"])
SERVICE = "gateway-api"

EXAMPLE = (
    '{"id": "1893", "user": {"username": "Ada", "handle": "@ada", "verified": false}, '
    '"meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]}, '
    '"payload": {"tweet": {"content": "I support the new bike lanes"}}, "metrics": {"retweets": 1, "likes": 2}}\n'
)
BODY = {
    "requestBody": {
        "required": True,
        "description": "One tweet per line in the spec's nested layout (as `make replay FORMAT=jsonl` reads).",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}, "example": EXAMPLE}},
    }
}


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestResultPublic,
    openapi_extra=BODY,
    responses={
        401: {"description": "Missing or unknown X-API-Key (when keys are configured)"},
        413: {"description": "Body over GATEWAY_MAX_REQUEST_BYTES or more lines than GATEWAY_INGEST_MAX_RECORDS"},
        422: {"description": "The body holds no record"},
        429: {"description": "Rate limit exceeded; see Retry-After"},
        503: {"description": "Kafka did not acknowledge; nothing is lost by retrying (writes are keyed by id)"},
    },
)
async def ingest(request: Request, queue: IngestQueueDep, settings: SettingsDep) -> IngestResultPublic:
    """Validate every line like the replay does; publish valid tweets to ``tweets.raw`` keyed by id
    and rejects to ``tweets.rejected``; answer once Kafka acknowledged all of them."""
    body = await request.body()  # BodyLimit stops it at GATEWAY_MAX_REQUEST_BYTES
    records = count_records(body)
    if records > settings.ingest_max_records:
        raise HTTPException(
            status_code=413,
            detail=f"{records} records in one request; the limit is {settings.ingest_max_records} "
            "(GATEWAY_INGEST_MAX_RECORDS): split it into smaller requests",
        )
    if records == 0:
        raise HTTPException(status_code=422, detail="the body holds no JSON Lines record")
    if len(body) > settings.max_request_bytes:  # a body BodyLimit did not see (an app without it)
        raise too_large(settings.max_request_bytes, len(body))
    source = f"api:{client_name(request)}"
    batch = await asyncio.to_thread(validate_lines, body, source)  # parsing is CPU work
    await queue.publish_records(_messages(batch, settings.kafka.topics.raw, settings.kafka.topics.rejected))
    for _, rejected in batch.rejects:
        REJECTED.labels(SERVICE, rejected.reason).inc()
    PRODUCED.labels(SERVICE, settings.kafka.topics.raw).inc(len(batch.tweets))
    log.info(
        "ingested records",
        extra={"source": source, "published": len(batch.tweets), "rejected": len(batch.rejects)},
    )
    return IngestResultPublic(
        received=batch.received,
        published=len(batch.tweets),
        rejected=len(batch.rejects),
        rejections=[
            RejectionPublic(
                line=line,
                reason=rejected.reason,
                field=rejected_field(rejected),
                message=rejected.errors[0].msg if rejected.errors else rejected.reason,
            )
            for line, rejected in batch.rejects
        ],
    )


def _messages(batch: IngestBatch, raw_topic: str, rejected_topic: str) -> list[OutgoingMessage]:
    messages = []
    request = trace.get_current_span().get_span_context()  # the HTTP request's span, when traced
    links = [trace.Link(request)] if request.is_valid else []
    for tweet in batch.tweets:
        # One trace per tweet, rooted here as the ingestor roots its own (linked to the request):
        # the stages that follow (emotion, stance, indexing) join it through the Kafka headers.
        with tracer.start_as_current_span(
            "gateway.ingest", context=context.Context(), links=links, attributes={TWEET_ID: tweet.id}
        ):
            headers = inject_headers()
        messages.append(OutgoingMessage(raw_topic, tweet.id, tweet.model_dump_json().encode(), headers))
    for _, rejected in batch.rejects:
        # Keyed by source, as the replay does, so one client's rejects stay in order.
        messages.append(OutgoingMessage(rejected_topic, rejected.source, rejected.model_dump_json().encode()))
    return messages
