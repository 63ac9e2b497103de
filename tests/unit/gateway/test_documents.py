"""The stored documents: the mappings, and reading a stored tweet back; no server."""

from __future__ import annotations

from gateway.documents import JOBS_MAPPING, TWEETS_MAPPING, scores_from_stored, tweet_record_from_source
from tests.unit.gateway.factories import emotion, stored, tweet


def test_stance_target_is_a_keyword_of_the_stance_label_and_of_the_job() -> None:
    stance = TWEETS_MAPPING["properties"]["stance"]["properties"]
    assert stance["target"] == {"type": "keyword"}
    assert "target" not in TWEETS_MAPPING["properties"]["emotion"]["properties"]
    assert JOBS_MAPPING["properties"]["target"] == {"type": "keyword"}


def test_tweet_record_is_rebuilt_exactly_from_the_stored_document() -> None:
    record = tweet("9223372036854775806")
    assert tweet_record_from_source(stored(record, emotion("9223372036854775806"))) == record


def test_scores_are_read_back_from_the_stored_list_or_an_older_dict() -> None:
    assert scores_from_stored([{"label": "anger", "score": 0.9}, {"label": "joy", "score": 0.1}]) == {
        "anger": 0.9,
        "joy": 0.1,
    }
    assert scores_from_stored({"joy": 1}) == {"joy": 1.0}
    assert scores_from_stored(None) == {}
