"""Errors the ingestor raises on purpose; the CLI turns them into one clear line and exit code."""

from __future__ import annotations

from common.errors import ServiceError, TransientError


class SourceFormatError(ServiceError, ValueError):
    """The input cannot be read as any supported format (or the one given with ``--format``)."""


class KafkaUnavailableError(TransientError):
    """The brokers could not be reached; the message names the address and how to start Kafka."""


class IndexUnavailableError(TransientError):
    """``--skip-existing`` cannot reach Elasticsearch; the message names the address."""


class ReaderError(ServiceError):
    """The child process reading a file ended before the file did (killed, out of memory)."""
