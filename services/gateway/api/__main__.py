"""``python -m gateway.api``: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from common.logging import configure_logging
from common.telemetry import configure_tracing, shutdown_tracing
from gateway.api.main import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway-api", settings.telemetry.log_level)
    configure_tracing("gateway-api", settings.telemetry)
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


if __name__ == "__main__":
    main()
