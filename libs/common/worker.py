"""The process shell every Kafka worker shares: logging, tracing, /metrics, signals, exit codes."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from common.errors import ModelUnavailableError
from common.logging import configure_logging
from common.metrics import start_metrics_server
from common.settings import TelemetrySettings
from common.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)


def run_worker(
    service: str,
    telemetry: TelemetrySettings,
    metrics_port: int | None,
    serve: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Run ``serve(stopping)`` until SIGINT/SIGTERM sets ``stopping``.

    A missing model exits with status 2 and the message naming the command that fetches it.
    """
    configure_logging(service, telemetry.log_level)
    configure_tracing(service, telemetry)
    start_metrics_server(metrics_port, service, telemetry.metrics_host)
    stopping = asyncio.Event()

    async def _serve() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        await serve(stopping)

    try:
        asyncio.run(_serve())
    except ModelUnavailableError as exc:
        log.error(str(exc))
        sys.exit(2)
    finally:
        shutdown_tracing()
