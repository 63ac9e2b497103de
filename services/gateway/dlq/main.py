"""Wiring of the dead-letter tool (``python -m gateway.dlq``): the settings, handed to the commands."""

from __future__ import annotations

from common.worker import load_settings
from gateway.dlq.cli import app
from gateway.settings import GatewaySettings

SERVICE = "gateway-dlq"


def main() -> None:
    app(obj=load_settings(SERVICE, GatewaySettings))
