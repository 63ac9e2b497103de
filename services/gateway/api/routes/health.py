"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.api.deps import RelabelQueueDep, RepositoryDep
from gateway.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
async def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def readyz(repository: RepositoryDep, relabel_queue: RelabelQueueDep) -> JSONResponse:
    es_ok, kafka_ok = await asyncio.gather(repository.ping(), relabel_queue.ping())
    body = HealthPublic(
        status="ok" if es_ok and kafka_ok else "unavailable",
        checks={
            "elasticsearch": "ok" if es_ok else "unreachable",
            "kafka": "ok" if kafka_ok else "unreachable",
        },
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)
