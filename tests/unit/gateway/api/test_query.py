from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.api import query
from gateway.api.query import Cursor, InvalidParameter


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = Cursor(1709281800000, "9223372036854775807")
    token = query.encode_cursor(cursor)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert query.decode_cursor(token) == cursor


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "not-base64-json",
        query.encode_cursor(Cursor(1, "1")).replace("W", "%"),
        "W10",  # []
        "eyJhIjoxfQ",  # {"a":1}
        "WzEsMl0",  # [1,2]
        "WyIxIiwiMiJd",  # ["1","2"]
        "WzEuNSwiMSJd",  # [1.5,"1"]
        "W3RydWUsIjEiXQ",  # [true,"1"]
        "WzEsImFiYyJd",  # [1,"abc"]
        "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLCIxIl0",  # millis far past year 9999
        "x" * 500,
    ],
)
def test_malformed_cursor_is_invalid(token: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        query.decode_cursor(token)
    assert caught.value.param == "cursor"


def test_date_only_start_is_midnight_and_date_only_end_covers_the_whole_day() -> None:
    window = query.time_window("2024-03-01", "2024-03-01")
    assert window.start == datetime(2024, 3, 1, tzinfo=UTC)
    assert window.end == datetime(2024, 3, 2, tzinfo=UTC)
    assert window.end_inclusive is False  # 23:59:59.999 is in, the next midnight is out


def test_datetime_bounds_are_inclusive_and_naive_means_utc() -> None:
    window = query.time_window("2024-03-01T10:00:00", "2024-03-01T12:00:00+02:00")
    assert window.start == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert window.end == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert window.end_inclusive is True


def test_plus_sign_decoded_as_space_is_restored() -> None:
    moment, _ = query.parse_datetime("start_date", "2024-03-01T12:00:00 02:00", is_end=False)
    assert moment == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_z_suffix_and_fractional_seconds() -> None:
    moment, inclusive = query.parse_datetime("end_date", "2024-03-01T23:59:59.999Z", is_end=True)
    assert moment == datetime(2024, 3, 1, 23, 59, 59, 999000, tzinfo=UTC) and inclusive


@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-03-02", "2024-03-01"), ("2024-03-01T00:00:01", "2024-03-01T00:00:00"), ("2024-03-02", "2024-03-01T23:59")],
)
def test_start_after_end_is_invalid(start: str, end: str) -> None:
    with pytest.raises(InvalidParameter, match="after"):
        query.time_window(start, end)


def test_same_instant_start_and_end_is_allowed() -> None:
    window = query.time_window("2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z")
    assert window.start == window.end


@pytest.mark.parametrize(
    "raw",
    ["2024-13-01", "2024-02-30", "yesterday", "", "2024/03/01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00-05:00"],
)
def test_unparseable_or_out_of_range_dates_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        query.parse_datetime("start_date", raw, is_end=False)
    assert caught.value.param == "start_date"
    assert raw in caught.value.message or not raw


def test_last_representable_day_as_end_date() -> None:
    window = query.time_window(None, "9999-12-31")
    assert window.end is not None and window.end.year == 9999 and window.end_inclusive


def test_labels_are_case_insensitive_and_unknown_ones_name_the_allowed_set() -> None:
    assert query.parse_label("stance", "support", ("SUPPORT", "OPPOSE", "NEUTRAL")) == "SUPPORT"
    assert query.parse_label("emotion", "JOY", ("joy", "anger")) == "joy"
    with pytest.raises(InvalidParameter, match="joy, anger"):
        query.parse_label("emotion", "happy", ("joy", "anger"))


def test_target_is_stripped_blank_is_none_and_too_long_is_invalid() -> None:
    assert query.parse_target("target", None) is None
    assert query.parse_target("target", "  \t ") is None
    assert query.parse_target("target", "  the new Budget ") == "the new Budget"  # exact otherwise: no case folding
    assert query.parse_target("target", " " + "é" * 200 + "\n") == "é" * 200
    with pytest.raises(InvalidParameter, match="at most 200 characters") as caught:
        query.parse_target("stance_target", "x" * 201)
    assert caught.value.param == "stance_target"


def test_tweet_query_carries_the_stance_target() -> None:
    def target(**filters: Any) -> str | None:
        return query.tweet_query(query.TweetFilters(limit=5, **filters)).stance_target

    assert target() is None
    assert target(stance_target=" the budget ") == "the budget"
    assert target(stance_target="") is None


def test_tweet_query_parses_every_filter_it_is_sent() -> None:
    after = query.Cursor(1_700_000_000_000, "42")
    sent = {"limit": 7, "start_date": "2024-03-01", "end_date": "2024-03-02", "emotion": "JOY", "stance": "oppose"}
    sent |= {"min_score": -0.5, "max_score": 0.5, "cursor": query.encode_cursor(after)}
    parsed = query.tweet_query(query.TweetFilters.model_validate(sent))
    assert (parsed.limit, parsed.emotion, parsed.stance, parsed.stance_target) == (7, "joy", "OPPOSE", None)
    assert (parsed.min_valence, parsed.max_valence) == (-0.5, 0.5)
    assert parsed.window == query.time_window("2024-03-01", "2024-03-02")
    assert parsed.after == after
    assert query.tweet_query(query.TweetFilters()) == query.TweetQuery(limit=50)  # GET /tweets with no filters


def test_valence_range() -> None:
    assert query.valence_range(-1.0, 1.0) == (-1.0, 1.0)
    with pytest.raises(InvalidParameter, match="greater than"):
        query.valence_range(0.5, 0.1)
    with pytest.raises(InvalidParameter):
        query.valence_range(float("nan"), None)
