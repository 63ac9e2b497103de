"""The spec's nested shape (a JSON array, or JSON Lines with ``--format jsonl``)::

    {"id": 1, "user": {"username": "...", "handle": "@...", "verified": false},
     "meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]},
     "payload": {"tweet": {"content": "..."}},
     "metrics": {"retweets": 4066, "likes": 9543}}

``created_at`` is a bare date in the spec's file: it becomes midnight UTC (see ``dates``).
"""

from __future__ import annotations

from typing import Any

from ingestor.formats.dates import parse_datetime
from ingestor.formats.fields import RecordError, obj, optional_id, prune, tweet_id


def map_nested(record: Any) -> dict[str, Any]:
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
