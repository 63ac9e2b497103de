"""``common.records``: the spec's nested layout mapped without pruning copies, the id fast path,
and a reject's raw text made only when a record is rejected."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from common.events import RejectedRecord, TweetRecord
from common.records import RecordError, SourceItem, map_nested, prune, raw_json, to_outcome, tweet_id


def nested(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "1790312458841235457",
        "user": {"handle": "@ana"},
        "meta": {"created_at": "2025-03-04T10:00:00Z"},
        "payload": {"tweet": {"content": "hello"}},
    }
    record.update(overrides)
    return record


def outcome(value: Any, raw: str | None = "{}") -> TweetRecord | RejectedRecord:
    return to_outcome(SourceItem("record 1", raw, value), map_nested, "f.json")


def test_absent_and_null_optional_fields_make_the_same_tweet_as_leaving_them_out() -> None:
    """map_nested passes an absent optional field as None (its default) instead of pruning
    copies; the tweet and its payload are the ones the pruned fields make."""
    sparse = outcome(nested())
    nulls = outcome(nested(user={"handle": "@ana", "username": None, "verified": None}, metrics=None, lang=None))
    pruned = TweetRecord.model_validate(
        {"id": "1790312458841235457", "author": {"handle": "@ana"}, "created_at": map_nested(nested())["created_at"],
         "text": "hello", "source": "f.json"}
    )
    for tweet in (sparse, nulls):
        assert isinstance(tweet, TweetRecord)
        assert tweet.model_dump_json(exclude={"ingested_at"}) == pruned.model_dump_json(exclude={"ingested_at"})
    assert map_nested(nested(metrics={}))["metrics"] == {"retweets": None, "likes": None}
    assert isinstance(outcome(nested(metrics={"likes": 3})), TweetRecord)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"user": {"handle": None, "username": None}}, "missing_field:author.handle"),
        ({"user": {"username": "ana"}}, None),  # the username stands in for a missing handle
        ({"payload": {"tweet": {"content": None}}}, "missing_field:text"),
        ({"meta": {"created_at": "2025-03-04", "hashtags": None}}, None),  # the default: no hashtags
        ({"lang": "", "meta": {"created_at": "2025-03-04", "lang": "en"}}, None),  # falls back to meta's
        ({"lang": "x"}, "empty_field:lang"),
    ],
)
def test_required_fields_left_out_when_absent_are_reported_missing(
    overrides: dict[str, Any], reason: str | None
) -> None:
    result = outcome(nested(**overrides))
    assert (result.reason if isinstance(result, RejectedRecord) else None) == reason


def test_the_first_bad_field_in_reading_order_is_the_reason() -> None:
    bad = {"id": "12a", "user": {"handle": "a", "user_id": "x"}, "meta": {"created_at": "yesterday"}}
    assert _reason(bad) == "invalid_type:id"
    assert _reason({**bad, "id": "5"}) == "invalid_type:author.user_id"
    assert _reason({**bad, "id": "5", "user": {"handle": "a"}}) == "invalid_date:created_at"
    assert _reason({**bad, "id": "5", "user": "a"}) == "invalid_type:user"  # shapes before values


def _reason(overrides: dict[str, Any]) -> str:
    result = outcome(nested(**overrides))
    assert isinstance(result, RejectedRecord)
    return result.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", "7"),
        ("999999999999999999", "999999999999999999"),  # 18 digits: taken as is
        ("9223372036854775807", "9223372036854775807"),  # 19: checked against the maximum
        ("1921567810453299200", "1921567810453299200"),  # a tweet id of today
        ("1000000000000000000", "1000000000000000000"),
        ("0123", "123"),
        (" 42 ", "42"),
        (42, "42"),
        (9223372036854775807, "9223372036854775807"),  # a JSON integer at the maximum
    ],
)
def test_tweet_ids_are_canonical_digit_strings(value: Any, expected: str) -> None:
    assert tweet_id(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9223372036854775808", "out_of_range:id"),
        ("9999999999999999999", "out_of_range:id"),  # 19 digits above the maximum
        ("10000000000000000000", "out_of_range:id"),  # 20 digits, string-wise below the maximum
        ("0", "out_of_range:id"),
        ("000", "out_of_range:id"),
        ("\u0661\u0662", "invalid_type:id"),  # Arabic-Indic digits: str.isdigit, but not [0-9]
        ("\u00b2", "invalid_type:id"),
        ("", "invalid_type:id"),
        (9223372036854775808, "out_of_range:id"),  # integers beside the integer fast path
        (0, "out_of_range:id"),
        (-5, "out_of_range:id"),
        (True, "invalid_type:id"),
    ],
)
def test_tweet_ids_outside_the_fast_path_are_judged_as_before(value: Any, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        tweet_id(value)
    assert caught.value.reason == reason


def test_a_rejected_record_without_text_of_its_own_keeps_its_value_re_serialised() -> None:
    record = nested(id=Decimal("1.8600000000000000E+18"))
    rejected = outcome(record, raw=None)
    assert isinstance(rejected, RejectedRecord) and rejected.reason == "invalid_type:id"
    assert rejected.raw == raw_json(record) and '"1.8600000000000000E+18"' in rejected.raw
    assert SourceItem("record 2", None, {"a": 1}).raw_text() == '{"a": 1}'
    assert SourceItem("line 2", '{"a":1}', {"a": 1}).raw_text() == '{"a":1}'


def test_prune_drops_only_none() -> None:
    assert prune({"a": None, "b": 0, "c": "", "d": False}) == {"b": 0, "c": "", "d": False}
