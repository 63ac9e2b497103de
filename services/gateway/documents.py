"""The gateway's two indices: their mappings, creating them, and reading a stored tweet back.

A tweet's document is keyed by tweet id and assembled from independent partial writes (see
``gateway.indexer.logic``): the tweet fields from ``tweets.raw``, each task's label sub-object
from ``tweets.labels``, and a reviewer's ``review`` (the API). The indexer and the API
both create the indices at start; the API and ``evaluation`` read the documents back.
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

from common.events import TweetRecord
from common.tweet_store import TweetStore
from gateway.settings import GatewaySettings

TWEET_FIELDS = ("id", "author", "created_at", "text", "hashtags", "metrics", "lang", "source", "ingested_at")

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
        # quality checks (gateway.quality): the lexicon score of the text, and a reviewer's
        # verdict; the flags are judged from the stored fields where they are read, not stored
        "lexicon": {"properties": {"compound": {"type": "float"}, "model": _KEYWORD}},
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


async def ensure_indices(store: TweetStore, settings: GatewaySettings) -> None:
    """Create the tweets and jobs indices if missing; add new fields to existing mappings."""
    for index, mapping in ((settings.index, TWEETS_MAPPING), (settings.jobs_index, JOBS_MAPPING)):
        await store.ensure_index(index, mapping, shards=settings.index_shards, replicas=settings.index_replicas)


def scores_from_stored(stored: Any) -> dict[str, float]:
    """Inverse of the list form the indexer stores ``scores`` in (``indexer.logic.label_doc``)."""
    if isinstance(stored, dict):
        return {str(k): float(v) for k, v in stored.items()}
    return {str(p["label"]): float(p["score"]) for p in stored or () if isinstance(p, dict)}


def holds_tweet(source: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether a stored document holds its tweet yet: the indexer writes a tweet and its labels
    independently, so the labels may be stored first (a document of labels alone)."""
    return source is not None and "created_at" in source


def tweet_record_from_source(source: dict[str, Any]) -> TweetRecord:
    """Rebuild the record a stored tweet came from, to queue it again for a classifier."""
    fields = {name: source[name] for name in TWEET_FIELDS if source.get(name) is not None}
    return TweetRecord.model_validate_json(json.dumps(fields))
