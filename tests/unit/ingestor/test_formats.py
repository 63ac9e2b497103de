"""Adapters are pure: source record in, ``TweetRecord`` fields out (validated via ``to_outcome``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from common.events import RejectedRecord, TweetRecord
from common.records import Adapter, RecordError, SourceItem, map_nested, to_outcome, tweet_id
from ingestor.formats.fields import hashtags_from_cell
from ingestor.formats.tabular import (
    ColumnError,
    csv_row_mapper,
    map_sentiment140,
    parse_column_overrides,
    resolve_columns,
)
from ingestor.formats.twitter_api import map_twitter_v1, map_twitter_v2
from ingestor.source import JSON_ADAPTERS


def nested(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 1790312458841235457,
        "user": {"username": "civicmaria", "handle": "@civicmaria", "verified": True},
        "meta": {"created_at": "2025-03-04", "hashtags": ["#ClimateBill", "ClimateBill", " #Vote "]},
        "payload": {"tweet": {"content": "  The bill   passed!\n🎉  "}},
        "metrics": {"retweets": 3, "likes": 9},
        "unknown_extra": {"ignored": True},
    }
    record.update(overrides)
    return record


def outcome(adapter: Adapter, value: Any) -> TweetRecord | RejectedRecord:
    return to_outcome(SourceItem("record 1", "{}", value), adapter, "test.json")


def tweet(adapter: Adapter, value: Any) -> TweetRecord:
    result = outcome(adapter, value)
    assert isinstance(result, TweetRecord), result
    return result


def reason(adapter: Adapter, value: Any) -> str:
    result = outcome(adapter, value)
    assert isinstance(result, RejectedRecord), result
    return result.reason


class TestIds:
    def test_int_ids_become_exact_strings_beyond_2_53(self) -> None:
        assert tweet_id(2**53 + 1) == "9007199254740993"
        assert tweet_id(2**63 - 1) == "9223372036854775807"

    def test_digit_strings_lose_leading_zeros_only(self) -> None:
        assert tweet_id(" 000123 ") == "123"

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (Decimal("1.8600000000000000E+18"), "invalid_type:id"),
            (1.86e18, "invalid_type:id"),
            ("12ab", "invalid_type:id"),
            ("-5", "invalid_type:id"),
            (True, "invalid_type:id"),
            ([1], "invalid_type:id"),
            (2**63, "out_of_range:id"),
            (0, "out_of_range:id"),
            (None, "missing_field:id"),
        ],
    )
    def test_rejects_non_integers_with_a_clear_reason(self, value: Any, expected: str) -> None:
        with pytest.raises(RecordError) as caught:
            tweet_id(value)
        assert caught.value.reason == expected


class TestNested:
    def test_maps_the_spec_shape(self) -> None:
        record = tweet(map_nested, nested())
        assert record.id == "1790312458841235457"
        assert record.author.handle == "civicmaria"
        assert record.author.verified is True
        assert record.created_at.isoformat() == "2025-03-04T00:00:00+00:00"
        assert record.text == "The bill passed! 🎉"
        assert record.hashtags == ["ClimateBill", "Vote"]
        assert record.metrics is not None and record.metrics.likes == 9
        assert record.source == "test.json"

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"payload": {"tweet": {}}}, "missing_field:text"),
            ({"payload": {"tweet": {"content": " \n\t "}}}, "empty_field:text"),
            ({"payload": {"tweet": {"content": "x" * 4001}}}, "too_long:text"),
            ({"payload": {"tweet": {"content": 42}}}, "invalid_type:text"),
            ({"meta": {"created_at": "31/02/2025"}}, "invalid_date:created_at"),
            ({"meta": {}}, "missing_field:created_at"),
            ({"id": Decimal("1.86E+18")}, "invalid_type:id"),
            ({"user": {}}, "missing_field:author.handle"),
            ({"user": "civicmaria"}, "invalid_type:user"),
            ({"metrics": {"likes": "12"}}, "invalid_type:metrics.likes"),
            ({"metrics": {"likes": -1}}, "invalid_value:metrics.likes"),
            ({"meta": {"created_at": "2025-03-04", "hashtags": "#one"}}, "invalid_type:hashtags"),
        ],
    )
    def test_rejects(self, overrides: dict[str, Any], expected: str) -> None:
        assert reason(map_nested, nested(**overrides)) == expected

    def test_missing_id(self) -> None:
        record = nested()
        del record["id"]
        assert reason(map_nested, record) == "missing_field:id"

    def test_a_non_object_record_is_rejected(self) -> None:
        assert reason(map_nested, [1, 2]) == "invalid_type:record"

    def test_metrics_are_optional(self) -> None:
        record = nested()
        del record["metrics"]
        assert tweet(map_nested, record).metrics is None


V1 = {
    "created_at": "Wed Oct 10 20:19:24 +0000 2018",
    "id": 1050118621198921700,  # what a JSON float-parsing client would have written: id_str wins
    "id_str": "1050118621198921728",
    "text": "truncated…",
    "user": {"id": 6253282, "id_str": "6253282", "name": "Twitter API", "screen_name": "TwitterAPI"},
    "extended_tweet": {"full_text": "the whole text #Dev", "entities": {"hashtags": [{"text": "Dev"}]}},
    "entities": {"hashtags": []},
    "retweet_count": 1,
    "favorite_count": 2,
    "lang": "en",
}


class TestTwitterV1:
    def test_prefers_id_str_and_extended_text(self) -> None:
        record = tweet(map_twitter_v1, V1)
        assert record.id == "1050118621198921728"
        assert record.text == "the whole text #Dev"
        assert record.hashtags == ["Dev"]
        assert record.author.handle == "TwitterAPI"
        assert record.author.username == "Twitter API"
        assert record.author.user_id == "6253282"
        assert record.metrics is not None and (record.metrics.retweets, record.metrics.likes) == (1, 2)

    def test_full_text_then_text(self) -> None:
        base = {k: v for k, v in V1.items() if k != "extended_tweet"}
        assert tweet(map_twitter_v1, {**base, "full_text": "full"}).text == "full"
        assert tweet(map_twitter_v1, base).text == "truncated…"

    def test_int_id_without_id_str(self) -> None:
        base = {k: v for k, v in V1.items() if k != "id_str"}
        assert tweet(map_twitter_v1, {**base, "id": 2**53 + 1}).id == "9007199254740993"

    def test_delete_notices_are_rejected(self) -> None:
        assert reason(map_twitter_v1, {"delete": {"status": {"id": 1}}}) == "missing_field:id"

    def test_offset_dates_become_utc(self) -> None:
        record = tweet(map_twitter_v1, {**V1, "created_at": "Thu Apr 06 15:28:43 +0200 2017"})
        assert record.created_at.isoformat() == "2017-04-06T13:28:43+00:00"


V2_TWEET = {
    "id": "1445880548472328192",
    "text": "Tune in #TwitterDev",
    "author_id": "2244994945",
    "created_at": "2021-10-06T22:00:00.000Z",
    "public_metrics": {"retweet_count": 7, "like_count": 40},
    "entities": {"hashtags": [{"tag": "TwitterDev"}]},
    "lang": "en",
}
V2_USER = {"id": "2244994945", "username": "TwitterDev", "name": "Twitter Dev", "verified": True}


class TestTwitterV2:
    def test_joins_author_and_metrics(self) -> None:
        record = tweet(map_twitter_v2, {"tweet": V2_TWEET, "author": V2_USER})
        assert (record.id, record.author.handle, record.author.user_id) == (
            "1445880548472328192", "TwitterDev", "2244994945"
        )
        assert record.hashtags == ["TwitterDev"]
        assert record.metrics is not None and record.metrics.likes == 40
        assert record.lang == "en"

    def test_note_tweet_holds_long_text(self) -> None:
        long_tweet = {**V2_TWEET, "note_tweet": {"text": "the long version"}}
        assert tweet(map_twitter_v2, {"tweet": long_tweet, "author": V2_USER}).text == "the long version"

    def test_unresolved_author(self) -> None:
        assert reason(map_twitter_v2, {"tweet": V2_TWEET, "author": None}) == "unresolved_author:author_id"


HEADER = ["tweet_id", "date", "user_name", "text", "hashtags", "favorites", "retweets", "language"]


class TestCsv:
    def test_default_column_table(self) -> None:
        map_row = csv_row_mapper(HEADER)
        row = ["123", "2020-07-25 12:27:21", "covid_watch", "good news 🙌", "['#A', '#B']", "15", "3", "en"]
        record = tweet(map_row, row)
        assert (record.id, record.author.handle, record.lang) == ("123", "covid_watch", "en")
        assert record.text == "good news 🙌"
        assert record.hashtags == ["A", "B"]
        assert record.metrics is not None and (record.metrics.likes, record.metrics.retweets) == (15, 3)
        assert record.created_at.isoformat() == "2020-07-25T12:27:21+00:00"

    def test_hashtags_from_text_when_the_cell_is_empty(self) -> None:
        row = ["1", "2020-07-25", "u", "hello #World and #more", "", "", "", ""]
        record = tweet(csv_row_mapper(HEADER), row)
        assert record.hashtags == ["World", "more"]
        assert record.metrics is None and record.lang is None

    def test_header_matching_ignores_case_and_spaces(self) -> None:
        assert resolve_columns([" Tweet_ID", "Content", "Timestamp", "Author"]) == {
            "id": 0, "text": 1, "created_at": 2, "author": 3
        }

    def test_columns_override(self) -> None:
        overrides = parse_column_overrides("id=tweet_key, text=body,created_at=posted,author=who,likes=hearts")
        map_row = csv_row_mapper(["tweet_key", "body", "posted", "who", "hearts"], overrides)
        record = tweet(map_row, ["99", "mapped", "2024-02-29T12:00:00Z", "@mapper", "7"])
        assert (record.id, record.text, record.author.handle) == ("99", "mapped", "mapper")
        assert record.metrics is not None and record.metrics.likes == 7

    def test_override_wins_over_a_default_name(self) -> None:
        columns = resolve_columns(["id", "text", "body", "date", "user"], {"text": "body"})
        assert columns["text"] == 2

    @pytest.mark.parametrize(
        ("spec", "message"),
        [("text", "FIELD=COLUMN"), ("colour=red", "unknown field"), ("text=", "FIELD=COLUMN")],
    )
    def test_bad_overrides(self, spec: str, message: str) -> None:
        with pytest.raises(ColumnError, match=message):
            parse_column_overrides(spec)

    def test_missing_required_columns_name_the_fix(self) -> None:
        with pytest.raises(ColumnError, match=r"no column for text.*--columns text="):
            resolve_columns(["id", "date", "user", "body"])
        with pytest.raises(ColumnError, match="not in the header"):
            resolve_columns(["id", "date", "user", "text"], {"text": "body"})

    @pytest.mark.parametrize(
        ("row", "expected"),
        [
            (["1.23457E+18", "2020-07-25", "u", "t", "", "", "", ""], "invalid_type:id"),
            (["1", "yesterday", "u", "t", "", "", "", ""], "invalid_date:created_at"),
            (["1", "2020-07-25", "u", "t", "", "many", "", ""], "invalid_type:metrics.likes"),
            (["1", "2020-07-25", "", "t", "", "", "", ""], "missing_field:author.handle"),
            (["1", "2020-07-25", "u", "", "", "", "", ""], "empty_field:text"),
            (["1", "2020-07-25", "u"], "malformed_row"),
        ],
    )
    def test_rejects(self, row: list[str], expected: str) -> None:
        assert reason(csv_row_mapper(HEADER), row) == expected

    @pytest.mark.parametrize(
        ("cell", "expected"),
        [("['#a', '#b']", ["a", "b"]), ("a,b", ["a", "b"]), ("#a #b", ["a", "b"]), ("[]", [])],
    )
    def test_hashtag_cells(self, cell: str, expected: list[str]) -> None:
        assert hashtags_from_cell(cell) == expected


class TestSentiment140:
    def test_maps_fixed_columns_and_pdt(self) -> None:
        row = ["0", "1467810369", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "_TheSpecialOne_", "Awww #sad"]
        record = tweet(map_sentiment140, row)
        assert (record.id, record.author.handle, record.hashtags) == ("1467810369", "_TheSpecialOne_", ["sad"])
        assert record.created_at.isoformat() == "2009-04-07T05:19:45+00:00"

    def test_latin1_bytes_are_decoded_not_rejected(self) -> None:
        cell = b"caf\xe9".decode("utf-8", "surrogateescape")  # how the reader hands over a Latin-1 byte
        row = ["4", "1", "Mon Jan 05 22:22:12 PST 2009", "NO_QUERY", "u", cell]
        assert tweet(map_sentiment140, row).text == "café"

    def test_short_row(self) -> None:
        assert reason(map_sentiment140, ["0", "1", "Mon Apr 06 22:19:45 PDT 2009"]) == "malformed_row"


def test_every_json_format_has_an_adapter() -> None:
    assert set(JSON_ADAPTERS) == {"nested", "jsonl", "twitter-v1", "twitter-v2"}
