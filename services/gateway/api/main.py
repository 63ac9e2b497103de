"""``create_app()``: the FastAPI application, its lifespan (clients) and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from common.errors import TransientError
from gateway.api.routes import health, ingest, jobs, quality, review, traces, tweets
from gateway.api.security import BodyLimit, FrontDoor, front_door
from gateway.dlq import DeadLetterStore, refresh_forever
from gateway.jaeger import JaegerTraces
from gateway.quality_search import QualitySearch
from gateway.query import InvalidParameter
from gateway.relabel import RelabelPublisher
from gateway.search import TweetSearch, make_client
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def _lifespan(settings: GatewaySettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings.es_url, settings.es_request_timeout_s)
        search = TweetSearch(client, settings.index, settings.jobs_index)
        publisher = RelabelPublisher(settings.kafka)
        try:
            await search.ensure_indices(shards=settings.index_shards, replicas=settings.index_replicas)
        except TransientError as exc:
            # Start anyway: /readyz reports it and the indexer creates the index when ES is back.
            log.warning("elasticsearch not reachable at startup", extra={"error": str(exc)})
        await publisher.start()
        app.state.repository = search
        app.state.relabel_queue = publisher
        app.state.quality = QualitySearch(client, settings.index, settings.quality_thresholds)
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
            await client.close()
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
