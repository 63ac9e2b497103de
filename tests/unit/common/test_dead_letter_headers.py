"""Headers that must survive: a dead letter keeps the source record's own (its trace context
among them) beside ours, and a process that does not trace passes a message's context on."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord
from opentelemetry import trace

from common import kafka
from common.errors import PermanentError
from common.kafka import DEAD_LETTER_HEADERS, OutgoingMessage, dead_letter, send_all

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_source_headers_come_first_and_a_stale_failure_header_is_replaced() -> None:
    headers = [("traceparent", TRACEPARENT), ("origin", b"crawler-7"), ("reason", b"an earlier failure")]
    record = ConsumerRecord("p.tweets.raw", 2, 41, 0, 0, b"17", b"{}", None, 0, 0, headers)
    message = dead_letter(record, "emotion", PermanentError("invalid_tweet:text", "text missing"))
    assert message.headers[:2] == [("traceparent", TRACEPARENT), ("origin", b"crawler-7")]
    ours = dict(message.headers[2:])
    assert set(ours) == DEAD_LETTER_HEADERS
    assert ours["reason"] == b"invalid_tweet:text" and ours["source-offset"] == b"p.tweets.raw:2:41"
    assert [k for k, _ in message.headers].count("reason") == 1


class CapturingProducer:
    """Records what ``send`` was given; nothing is sent."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[str, bytes]]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> object:
        self.headers.append(list(headers))
        return object()


async def test_with_tracing_off_a_messages_trace_context_passes_through_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "tracer", trace.NoOpTracer())  # what an unconfigured process has
    producer = CapturingProducer()
    await send_all(producer, [OutgoingMessage("t", "17", b"{}", [("traceparent", TRACEPARENT), ("origin", b"x")])])  # type: ignore[arg-type]
    assert producer.headers == [[("traceparent", TRACEPARENT), ("origin", b"x")]]
