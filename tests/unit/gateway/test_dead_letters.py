"""Reading dead letters and rejects, and what a re-drive republishes; no servers."""

from __future__ import annotations

from common.events import DeadLetter, RejectedRecord, ValidationIssue
from gateway.dead_letters import Letter, parse_letter, republished


def test_a_dead_letter_keeps_its_source_and_original_value() -> None:
    dead = DeadLetter(
        service="emotion",
        source_topic="p.tweets.raw",
        partition=2,
        offset=41,
        key="1790000000000000001",
        value='{"id": "1790000000000000001"}',
        reason="invalid_tweet:text",
        error_class="PermanentError",
    )
    letter = parse_letter("p.tweets.raw.dlq", 0, 7, dead.model_dump_json().encode())
    assert (letter.source_topic, letter.key, letter.value) == ("p.tweets.raw", dead.key, dead.value)
    assert (letter.service, letter.reason, letter.ref) == ("emotion", "invalid_tweet:text", "p.tweets.raw.dlq:0:7")


def test_a_reject_is_listed_but_has_no_source_topic_to_redrive_to() -> None:
    reject = RejectedRecord(
        source="api:ci",
        position="line 3",
        reason="missing_field:text",
        errors=[ValidationIssue(loc="text", msg="field required", type="missing")],
        raw='{"id": 5}',
    )
    letter = parse_letter("tweets.rejected", 1, 0, reject.model_dump_json().encode())
    assert letter.source_topic is None and letter.service == "gateway-api" and letter.value == '{"id": 5}'
    assert parse_letter("tweets.rejected", 0, 1, b"not json").reason == "unreadable"


def test_a_redrive_republishes_the_original_headers_without_the_failure_or_an_earlier_redrive() -> None:
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    dead_letter_headers = (
        ("traceparent", traceparent),
        ("origin", b"crawler-7"),
        ("redriven-from", b"p.tweets.raw.dlq:0:3"),  # it had been re-driven once before and failed again
        ("error-class", b"PermanentError"),
        ("service", b"emotion"),
        ("reason", b"invalid_tweet:text"),
        ("source-offset", b"p.tweets.raw:2:41"),
    )
    letter = Letter(
        "p.tweets.raw.dlq",
        0,
        7,
        "17",
        "emotion",
        "invalid_tweet:text",
        "p.tweets.raw",
        "{}",
        headers=dead_letter_headers,
    )
    message = republished(letter)
    assert (message.topic, message.key, message.value) == ("p.tweets.raw", "17", b"{}")
    assert message.headers == [
        ("traceparent", traceparent),
        ("origin", b"crawler-7"),
        ("redriven-from", b"p.tweets.raw.dlq:0:7"),
        ("redriven-reason", b"invalid_tweet:text"),
    ]


def test_parse_letter_keeps_the_records_headers() -> None:
    letter = parse_letter("tweets.rejected", 0, 1, b"not json", [("origin", b"x")])
    assert letter.headers == (("origin", b"x"),)
