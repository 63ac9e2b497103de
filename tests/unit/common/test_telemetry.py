"""Reading the trace context producers propagate in Kafka headers; no exporter."""

from __future__ import annotations

from common.telemetry import span_context_from_headers, trace_id_from_headers

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_trace_id_from_headers_reads_w3c_traceparent() -> None:
    assert trace_id_from_headers([("traceparent", TRACEPARENT.encode())]) == TRACEPARENT.split("-")[1]
    assert trace_id_from_headers([("job-id", b"x")]) is None
    assert trace_id_from_headers(None) is None


def test_span_context_from_headers_is_the_producers_span_or_invalid() -> None:
    context = span_context_from_headers([("traceparent", TRACEPARENT.encode())])
    assert context.is_valid and format(context.span_id, "016x") == TRACEPARENT.split("-")[2]
    assert not span_context_from_headers([]).is_valid
