"""The dead-letter tool's filters and counts; no servers."""

from __future__ import annotations

from gateway.dead_letters import Letter
from gateway.dlq.logic import matches, topic_count


def test_reason_filters_match_a_whole_reason_or_its_category() -> None:
    letter = Letter("t.dlq", 0, 0, None, "stance", "invalid_tweet:text", "t", "{}")
    assert matches(letter) and matches(letter, ["invalid_tweet"]) and matches(letter, ["invalid_tweet:text"])
    assert not matches(letter, ["invalid"]) and not matches(letter, ["invalid_tweet:created_at"])
    assert matches(letter, services=["emotion", "stance"]) and not matches(letter, ["invalid_tweet"], ["emotion"])


def test_a_topic_count_tallies_matching_letters_by_reason_and_what_was_redriven() -> None:
    letters = [
        Letter("t.dlq", 0, offset, None, "stance", reason, "t", "{}") for offset, reason in enumerate(["a", "b", "a"])
    ]
    row = topic_count("t.dlq", 5, letters, {"t.dlq:0:2"}, rejects=False)
    assert (row.messages, row.matching, row.redriven) == (5, 3, 1)
    assert list(row.reasons.items()) == [("a", 2), ("b", 1)]
    assert topic_count("tweets.rejected", 3, letters, set(), rejects=True).redriven is None
