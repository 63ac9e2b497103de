"""The process shell every Kafka worker shares: logging, tracing, /metrics, signals, exit codes.

Exit codes: 0 after SIGINT/SIGTERM; 2 for a configuration error (invalid settings, a missing
model), with a message saying what to fix; 1 for anything unexpected (a
bug: the delivery loop itself turns every failure of a batch into a retry or a dead letter).
The supervisor restarts a worker on every exit status (deploy/local/supervisor_conf.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError

from common.errors import ConfigurationError
from common.logging import configure_logging
from common.metrics import start_metrics_server
from common.settings import TelemetrySettings
from common.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)
S = TypeVar("S")
CONFIGURATION_EXIT = 2


def load_settings(service: str, factory: Callable[[], S]) -> S:
    """Build the service's settings; invalid ones end the process with status 2 and say which."""
    try:
        return factory()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.stderr.write(f"{service}: invalid settings (environment or .env): {problems}\n")
        sys.exit(CONFIGURATION_EXIT)


def run_worker(
    service: str,
    telemetry: TelemetrySettings,
    metrics_port: int | None,
    serve: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Run ``serve(stopping)`` until SIGINT/SIGTERM sets ``stopping``.

    A configuration error (e.g. a missing model) exits with status 2 and its message (for a
    model, the command that fetches it); an unexpected error is logged and exits with status 1.
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
    except ConfigurationError as exc:
        log.error(str(exc), extra={"exit_code": CONFIGURATION_EXIT})
        sys.exit(CONFIGURATION_EXIT)
    except Exception:
        log.exception("worker failed unexpectedly", extra={"exit_code": 1})
        sys.exit(1)
    finally:
        shutdown_tracing()
