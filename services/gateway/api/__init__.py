"""The HTTP API: ``python -m gateway.api``."""
