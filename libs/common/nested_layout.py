"""The spec's nested source layout → the flat fields of a ``TweetRecord``.

Read by the ingestor's default format and by the gateway's ``POST /ingest``; what it cannot
map raises :class:`common.records.RecordError` with the reason that names the field.
"""

from __future__ import annotations

from typing import Any

from common.records import RecordError, obj, optional_id, prune, tweet_id
from common.timestamps import parse_datetime


def map_nested(record: Any) -> dict[str, Any]:
    """The spec's nested shape (``created_at`` may be a bare date: midnight UTC)::

    {"id": 1, "user": {"username": "...", "handle": "@...", "verified": false},
     "meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]},
     "payload": {"tweet": {"content": "..."}},
     "metrics": {"retweets": 4066, "likes": 9543}}
    """
    record = obj(record, "record")
    user = obj(record.get("user"), "user")
    meta = obj(record.get("meta"), "meta")
    tweet = obj(obj(record.get("payload"), "payload").get("tweet"), "payload.tweet")
    metrics = record.get("metrics")
    if metrics is not None:
        metrics = obj(metrics, "metrics")
        metrics = prune({"retweets": metrics.get("retweets"), "likes": metrics.get("likes")})
    if "id" not in record:
        raise RecordError("missing_field:id", "field required", type_="missing")
    return prune(
        {
            "id": tweet_id(record["id"]),
            "author": prune(
                {
                    "handle": user.get("handle") or user.get("username"),
                    "username": user.get("username"),
                    "user_id": optional_id(user.get("user_id"), "author.user_id"),
                    "verified": user.get("verified"),
                }
            ),
            "created_at": parse_datetime(meta.get("created_at")),
            "text": tweet.get("content"),
            "hashtags": meta.get("hashtags"),
            "metrics": metrics,
            "lang": record.get("lang") or meta.get("lang"),
        }
    )
