"""Error taxonomy: permanent errors are dead-lettered and committed, transient ones retried."""


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


class ModelUnavailableError(ServiceError):
    """A configured model is not on disk; the message says which command fetches it."""
