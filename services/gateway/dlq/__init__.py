"""The dead-letter tool: ``python -m gateway.dlq list|show|redrive`` (``make dlq``)."""
