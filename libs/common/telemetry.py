"""OpenTelemetry set-up and W3C trace-context propagation through Kafka headers.

With no OTLP endpoint configured nothing is installed: the API's no-op tracer is used, so
tracing off costs (almost) nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from random import getrandbits
from typing import TYPE_CHECKING

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context

from common.settings import TelemetrySettings

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

log = logging.getLogger(__name__)

TWEET_ID = "tweet.id"


def configure_tracing(service: str, settings: TelemetrySettings, *, head_sampled: bool = False) -> None:
    """Install the SDK when an OTLP endpoint is set. Traces this service starts are sampled at
    ``OTEL_TRACES_SAMPLER_RATIO``; with ``head_sampled`` the service decides that itself before
    asking for a root span (:class:`HeadSampler`), so the SDK records every root span it is asked
    for. Either way a span with a parent follows the parent's decision."""
    if not settings.otel_exporter_otlp_endpoint:
        return
    # Imported lazily: the SDK and exporter are only needed when tracing is on.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    root = ALWAYS_ON if head_sampled else TraceIdRatioBased(settings.otel_traces_sampler_ratio)
    resource = _hashed_once(Resource.create({"service.name": service}))
    provider = TracerProvider(resource=resource, sampler=ParentBased(root))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    log.info("tracing enabled", extra={"otlp_endpoint": endpoint})


def _hashed_once(resource: Resource) -> Resource:
    """``resource``, hashed once: the OTLP exporter groups every span it encodes by resource, and
    ``Resource.__hash__`` serialises the attributes to JSON each time (about 4 µs a span)."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        def __init__(self, original: Resource) -> None:
            super().__init__(original.attributes, original.schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    return HashedOnce(resource)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def configured_tracer(name: str) -> trace.Tracer | None:
    """The installed provider's tracer, or ``None`` while none is (tracing off)."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider.get_tracer(name)


def inject_headers(ctx: Context | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers carrying the current (or given) span context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return [(k, v.encode()) for k, v in carrier.items()]


class HeadSampler:
    """The head-sampling decision for a trace this service starts, made before any span exists.

    ``unsampled()`` draws a trace id and applies the SDK's ``TraceIdRatioBased`` rule to it (its
    low 64 bits below ``ratio`` * 2**64). Not sampled: the W3C ``traceparent`` header (flags
    ``00``) is returned at once, so later services keep the decision, for about a microsecond
    instead of the SDK's span, context and propagator (about ten; bench/ingest_bench.py).
    Sampled: ``None``, and the caller starts its real root span (through a provider configured
    with ``head_sampled``, which records it without sampling again).
    """

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self._bound = round(ratio * _TRACE_ID_SPAN)

    def unsampled(self) -> list[tuple[str, bytes]] | None:
        trace_id = getrandbits(128) or 1  # all zeros is the invalid trace id
        if trace_id & _LOW_64 < self._bound:
            return None
        return [(_TRACEPARENT, b"00-%032x-%016x-00" % (trace_id, getrandbits(64) or 1))]


def root_headers(span_context: trace.SpanContext) -> list[tuple[str, bytes]]:
    """The headers that carry the context of a root span this service started: its W3C
    ``traceparent``, formatted here (as :class:`HeadSampler` does) for a few microseconds less
    than a context and the propagators; a root span has no ``tracestate`` and no baggage."""
    ids = (span_context.trace_id, span_context.span_id, span_context.trace_flags)
    return [(_TRACEPARENT, b"00-%032x-%016x-%02x" % ids)]


_TRACE_ID_SPAN = 1 << 64  # TraceIdRatioBased compares the trace id's low 64 bits with ratio * 2**64
_LOW_64 = _TRACE_ID_SPAN - 1
_TRACEPARENT = "traceparent"


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> Context:
    carrier = {k: v.decode(errors="replace") for k, v in headers or ()}
    return propagate.extract(carrier, context=context.Context())


def current_trace_id() -> str | None:
    """The current trace's id, if it is sampled: an unsampled trace is in no trace store, so its
    id would only lead a reader to an empty page."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid and span_context.trace_flags.sampled else None


def span_context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> trace.SpanContext:
    """The W3C span context a producer propagated in the message headers (invalid if none)."""
    return trace.get_current_span(extract_context(headers)).get_span_context()


def trace_id_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The W3C trace id a producer propagated in the message headers, if any."""
    span_context = span_context_from_headers(headers)
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def upstream_links(headers: Iterable[Sequence[tuple[str, bytes]] | None]) -> list[trace.Link]:
    """One span link per message to the span that produced it: a batch span then leads back
    to every tweet's own trace."""
    return [trace.Link(span_context_from_headers(h)) for h in headers]
