"""The contracts that cross Kafka: strictness, normalisation, exact ids, label schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from common.errors import PermanentError
from common.events import MAX_TEXT_CHARS, Author, LabelEvent, TweetRecord, decode_label, decode_tweet

BASE = {
    "id": "1850000000000000001",
    "author": {"handle": "@ana", "username": "Ana"},
    "created_at": datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    "text": "  hello \n\t world  ",
    "source": "unit.json",
}


def _errors(**overrides: object) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        TweetRecord.model_validate({**BASE, **overrides})
    return [".".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_normalises_text_handle_time_and_hashtags() -> None:
    tweet = TweetRecord.model_validate({**BASE, "hashtags": ["#AI", "AI", " ", "#ai"], "extra": {"ignored": 1}})
    assert tweet.text == "hello world"
    assert tweet.author.handle == "ana"
    assert tweet.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert tweet.created_at.utcoffset() == timedelta(0)
    assert tweet.hashtags == ["AI", "ai"]
    one = [TweetRecord.model_validate({**BASE, "hashtags": tags}).hashtags for tags in (["  #AI "], ["# "], [])]
    assert one == [["AI"], [], []]


def test_id_stays_exact_through_json() -> None:
    tweet = TweetRecord.model_validate({**BASE, "id": "9223372036854775807"})
    payload = tweet.model_dump_json()
    assert json.loads(payload)["id"] == "9223372036854775807"
    assert TweetRecord.model_validate_json(payload).id == "9223372036854775807"


@pytest.mark.parametrize("bad_id", [1850000000000000001, 1.85e18, "9223372036854775808", "0", "12a", "", "-5"])
def test_rejects_ids_that_are_not_exact_64_bit_strings(bad_id: object) -> None:
    assert "id" in _errors(id=bad_id)


def test_rejects_wrong_types_instead_of_coercing() -> None:
    assert "metrics.likes" in _errors(metrics={"likes": "12"})
    assert "metrics.retweets" in _errors(metrics={"retweets": -1})
    assert "author.verified" in _errors(author={"handle": "a", "verified": "yes"})


def test_rejects_empty_too_long_and_naive_inputs() -> None:
    assert "text" in _errors(text="   \n ")
    assert "text" in _errors(text="x" * (MAX_TEXT_CHARS + 1))
    assert "created_at" in _errors(created_at=datetime(2024, 5, 1, 12, 0))
    assert "author.handle" in _errors(author={"handle": ""})


def test_json_roundtrip_accepts_iso_strings() -> None:
    tweet = TweetRecord.model_validate(BASE)
    assert TweetRecord.model_validate_json(tweet.model_dump_json()) == tweet


def test_label_event_schema_checks_label_and_scores_against_task() -> None:
    ok = LabelEvent(
        tweet_id="1", task="stance", label="SUPPORT", score=0.7, scores={"SUPPORT": 0.7, "OPPOSE": 0.2, "NEUTRAL": 0.1},
        model="m", provider="llamacpp", prompt_version="v3",
    )
    assert LabelEvent.model_validate_json(ok.model_dump_json()) == ok
    with pytest.raises(ValidationError, match="not one of"):
        LabelEvent(tweet_id="1", task="stance", label="joy", score=0.5, scores={}, model="m")
    with pytest.raises(ValidationError, match="unknown labels"):
        LabelEvent(tweet_id="1", task="emotion", label="joy", score=0.5, scores={"SUPPORT": 0.5}, model="m")
    with pytest.raises(ValidationError):
        LabelEvent(tweet_id="1", task="emotion", label="joy", score=1.5, scores={}, model="m")


def test_author_model_is_frozen() -> None:
    author = Author(handle="a")
    with pytest.raises(ValidationError):
        author.handle = "b"  # type: ignore[misc]


def test_decode_tweet_names_the_field_of_a_coerced_id() -> None:
    with pytest.raises(PermanentError) as caught:
        decode_tweet(b'{"id": 1.5}')
    assert caught.value.reason == "invalid_tweet:id"


def test_decode_label_rejects_a_label_of_the_wrong_task() -> None:
    event = {
        "tweet_id": "1",
        "task": "emotion",
        "label": "SUPPORT",
        "score": 0.8,
        "scores": {"joy": 0.8},
        "model": "m",
        "produced_at": "2024-05-01T12:00:00Z",
    }
    with pytest.raises(PermanentError) as caught:
        decode_label(json.dumps(event).encode())
    assert caught.value.reason.startswith("invalid_label:")
    assert "SUPPORT" in caught.value.detail
    assert decode_label(json.dumps(event | {"label": "joy"}).encode()).label == "joy"
    with pytest.raises(PermanentError) as empty:
        decode_label(None)
    assert empty.value.reason == "empty_message"


@pytest.mark.parametrize(
    "text", ["one line", "", " lead", "trail ", "two  spaces", "a\nb", "a\u00a0b", "a\u3000b", "\u2028", "x"]
)
def test_one_line_collapses_exactly_as_split_and_join(text: str) -> None:
    from common.events import _one_line

    assert _one_line(text) == " ".join(text.split())


@given(st.text(st.characters(codec="utf-8"), max_size=40) | st.text(" \t\n\u00a0ab\u2003", max_size=12))
def test_one_line_keeps_text_that_is_one_line_already_and_collapses_the_rest(text: str) -> None:
    from common.events import _one_line

    assert _one_line(text) == " ".join(text.split())
