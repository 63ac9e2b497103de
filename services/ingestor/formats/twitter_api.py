"""Twitter API tweet objects: v1.1 (statuses, stream dumps) and v2 (``data`` + ``includes``)."""

from __future__ import annotations

from typing import Any

from common.records import RecordError, obj, optional_id, prune, tweet_id
from common.timestamps import parse_datetime
from ingestor.formats.fields import entity_tags


def map_twitter_v1(record: Any) -> dict[str, Any]:
    """A v1.1 status; ``id_str`` wins over ``id`` and the longest text variant wins."""
    record = obj(record, "record")
    user = obj(record.get("user"), "user")
    extended = obj(record.get("extended_tweet"), "extended_tweet")
    if extended.get("full_text") is not None:
        text, entities = extended.get("full_text"), extended.get("entities")
    else:
        text, entities = record.get("full_text", record.get("text")), record.get("entities")
    raw_id = record.get("id_str", record.get("id"))
    if raw_id is None:
        raise RecordError("missing_field:id", "neither id_str nor id is present", type_="missing")
    return prune(
        {
            "id": tweet_id(raw_id),
            "author": prune(
                {
                    "handle": user.get("screen_name"),
                    "username": user.get("name"),
                    "user_id": optional_id(user.get("id_str", user.get("id")), "author.user_id"),
                    "verified": user.get("verified"),
                }
            ),
            "created_at": parse_datetime(record.get("created_at")),
            "text": text,
            "hashtags": entity_tags(entities, "text", "entities"),
            "metrics": prune({"retweets": record.get("retweet_count"), "likes": record.get("favorite_count")}) or None,
            "lang": record.get("lang"),
        }
    )


def map_twitter_v2(item: Any) -> dict[str, Any]:
    """One ``data[]`` tweet joined with its author from ``includes.users`` (``{"tweet", "author"}``).

    The source does the join; a tweet whose ``author_id`` is not in ``includes.users`` is
    rejected, because a handle is required and inventing one would hide the gap.
    """
    item = obj(item, "record")
    tweet = obj(item.get("tweet"), "record")
    author = item.get("author")
    author_id = tweet.get("author_id")
    if author is None:
        raise RecordError(
            "unresolved_author:author_id",
            f"author_id {author_id!r} is not in includes.users",
            type_="missing",
        )
    author = obj(author, "includes.users")
    note = obj(tweet.get("note_tweet"), "note_tweet")  # long posts keep their full text here
    metrics = obj(tweet.get("public_metrics"), "public_metrics")
    if "id" not in tweet:
        raise RecordError("missing_field:id", "field required", type_="missing")
    return prune(
        {
            "id": tweet_id(tweet["id"]),
            "author": prune(
                {
                    "handle": author.get("username"),
                    "username": author.get("name"),
                    "user_id": optional_id(author.get("id", author_id), "author.user_id"),
                    "verified": author.get("verified"),
                }
            ),
            "created_at": parse_datetime(tweet.get("created_at")),
            "text": note.get("text", tweet.get("text")),
            "hashtags": entity_tags(tweet.get("entities"), "tag", "entities"),
            "metrics": prune({"retweets": metrics.get("retweet_count"), "likes": metrics.get("like_count")}) or None,
            "lang": tweet.get("lang"),
        }
    )
