"""Error taxonomy: permanent errors are dead-lettered and committed, transient ones retried,
configuration errors end the process (the only errors that do)."""

from __future__ import annotations


class ServiceError(Exception):
    """Root of every error a service raises on purpose."""


class PermanentError(ServiceError):
    """Retrying cannot help (undecodable message, invalid answer after bounded attempts)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TransientError(ServiceError):
    """The dependency may recover (broker, Elasticsearch or API unavailable): retry, do not commit."""


class SystemicError(TransientError):
    """The dependency refuses every record for now (unreachable, write-blocked, unauthorised):
    the batch is retried as a whole, never bisected, and no record is blamed for it."""


class ConfigurationError(ServiceError):
    """The process cannot work as configured (bad settings, a fenced producer id): exit, non-zero."""


class ModelUnavailableError(ConfigurationError):
    """A configured model is not on disk; the message says which command fetches it."""


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and retrying can help: a dependency unavailable, overloaded or too slow.

    Our own :class:`TransientError` (adapters translate their client's errors into it, e.g.
    ``common.tweet_store`` for Elasticsearch), timeouts, refused or reset connections, and Kafka
    client errors the client marks retriable (``KafkaConnectionError``, ``RequestTimedOutError``,
    ``NotLeaderForPartitionError``, ...) plus ``KafkaTimeoutError`` (a send that was never
    acknowledged). Anything else is treated as a bug or a poison record by the caller.
    """
    # Imported here: importing aiokafka costs a tenth of a second, which processes that only
    # need the error classes (the ingestor's reading process) need not pay.
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    if isinstance(exc, TransientError | TimeoutError | ConnectionError | KafkaConnectionError | KafkaTimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
