"""Wiring of the API process (``python -m gateway.api``): settings, logging and tracing, the
FastAPI application (``create_app``) with its lifespan (the clients) and error mapping, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from common.errors import TransientError
from common.logging import configure_logging
from common.telemetry import configure_tracing, shutdown_tracing
from common.tweet_store import TweetStore
from common.worker import load_settings
from gateway.api.jaeger import JaegerTraces
from gateway.api.publisher import RelabelPublisher
from gateway.api.query import InvalidParameter
from gateway.api.repository import QualitySearch, TweetSearch
from gateway.api.routes import health, ingest, jobs, quality, review, traces, tweets
from gateway.api.security import BodyLimit, FrontDoor, front_door
from gateway.dead_letters import DeadLetterStore, refresh_forever
from gateway.documents import ensure_indices
from gateway.quality import QualityThresholds
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
SERVICE = "gateway-api"


def _lifespan(settings: GatewaySettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = TweetStore(settings.es_url, request_timeout_s=settings.es_request_timeout_s)
        publisher = RelabelPublisher(settings.kafka)
        try:
            await ensure_indices(store, settings)
        except TransientError as exc:
            # Start anyway: /readyz reports it and the indexer creates the index when ES is back.
            log.warning("elasticsearch not reachable at startup", extra={"error": str(exc)})
        await publisher.start()
        app.state.store = store
        app.state.repository = TweetSearch(store, settings.index, settings.jobs_index)
        app.state.relabel_queue = publisher
        app.state.quality = QualitySearch(store, settings.index, QualityThresholds.from_settings(settings))
        jaeger_client = httpx.AsyncClient(timeout=10)
        app.state.trace_store = JaegerTraces(jaeger_client, settings.jaeger_query_url)
        dead_letters = DeadLetterStore(settings.kafka)  # pipeline_dead_letters gauges on /metrics
        counting = asyncio.create_task(refresh_forever(dead_letters, settings.dlq_metrics_refresh_s))
        try:
            yield
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
            await dead_letters.close()
            await publisher.close()
            await store.close()
            await jaeger_client.aclose()

    return lifespan


async def _invalid_parameter(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidParameter)
    detail = [{"type": "value_error", "loc": ["query", exc.param], "msg": exc.message}]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable", extra={"path": request.url.path, "error": str(exc)})
    return JSONResponse({"detail": "a backing service is unavailable, retry shortly"}, status_code=503)


def create_app(settings: GatewaySettings) -> FastAPI:
    app = FastAPI(
        title="Tweet pipeline gateway",
        description="Search emotion- and stance-labelled tweets; queue tweets for re-labelling.",
        version="0.1.0",
        lifespan=_lifespan(settings),
        dependencies=[Depends(front_door)],  # API key + rate limit on every mutating route
    )
    app.state.settings = settings
    app.state.front_door = FrontDoor(settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(TransientError, _unavailable)
    for router in (tweets.router, traces.router, jobs.router, ingest.router, health.router):
        app.include_router(router)
    app.include_router(quality.router)
    app.include_router(review.router)
    app.mount("/metrics", quality.QualityGauges(app, make_asgi_app()))
    return app


def main() -> None:
    settings = load_settings(SERVICE, GatewaySettings)
    configure_logging(SERVICE, settings.telemetry.log_level)
    configure_tracing(SERVICE, settings.telemetry)
    app = create_app(settings)
    if settings.telemetry.otel_exporter_otlp_endpoint:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            forwarded_allow_ips=settings.forwarded_allow_ips,  # the client address the key limit counts
        )
    finally:
        shutdown_tracing()
