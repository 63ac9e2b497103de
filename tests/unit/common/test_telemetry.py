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


def test_head_sampler_decides_as_trace_id_ratio_based_and_carries_the_decision() -> None:
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    from common.telemetry import HeadSampler

    assert all(HeadSampler(1.0).unsampled() is None for _ in range(1000))  # every trace sampled
    quarter, sdk = HeadSampler(0.25), TraceIdRatioBased(0.25)
    draws = [quarter.unsampled() for _ in range(20_000)]
    assert 0.23 < sum(headers is None for headers in draws) / len(draws) < 0.27
    for headers in filter(None, draws[:500]):
        [(name, value)] = headers
        context = span_context_from_headers(headers)
        assert name == "traceparent" and value.endswith(b"-00") and context.is_valid and not context.trace_flags.sampled
        decision = sdk.should_sample(None, context.trace_id, "ingestor.publish", SpanKind.PRODUCER).decision
        assert not decision.is_sampled()  # the SDK would not have sampled this trace id either
    never = [HeadSampler(0.0).unsampled() for _ in range(1000)]
    assert len({headers[0][1] for headers in never if headers}) == 1000  # a trace of its own each


def test_root_headers_are_what_the_propagators_write_for_a_root_span() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from common.telemetry import inject_headers, root_headers

    span = TracerProvider().get_tracer("test").start_span("root")
    span.end()
    assert root_headers(span.get_span_context()) == inject_headers(trace.set_span_in_context(span))
    sent, read = span.get_span_context(), span_context_from_headers(root_headers(span.get_span_context()))
    assert (read.trace_id, read.span_id, read.trace_flags.sampled) == (sent.trace_id, sent.span_id, True)
