from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from common.logging import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    return dict(json.loads(JsonFormatter("svc").format(record)))


def test_log_line_is_json_with_extras_and_masks_secrets() -> None:
    record = logging.makeLogRecord(
        {"msg": "hello %s", "args": ("you",), "levelname": "INFO", "tweet.id": "42", "api_key": "sk-123"}
    )
    entry = _format(record)
    assert entry["msg"] == "hello you" and entry["service"] == "svc" and entry["tweet.id"] == "42"
    assert entry["api_key"] == "***"
    assert "trace_id" not in entry


def test_log_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        entry = _format(logging.makeLogRecord({"msg": "inside", "levelname": "INFO"}))
        context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
