"""Settings fragments that every service composes into its own ``<Service>Settings``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.topics import Topics


def pipeline_home() -> Path:
    """Where the pipeline keeps what outlives a clone: downloads, caches, run state
    (``$TWEETPIPE_HOME``, default ``~/.cache/tweet-pipeline``)."""
    return Path(os.environ.get("TWEETPIPE_HOME") or Path.home() / ".cache" / "tweet-pipeline")


def default_model_cache_dir() -> Path:
    """Where downloaded and assembled models live: ``$MODEL_CACHE_DIR``, default
    ``<pipeline home>/models`` (a service's own ``<SERVICE>_MODEL_CACHE_DIR`` overrides both)."""
    configured = os.environ.get("MODEL_CACHE_DIR")
    return Path(configured) if configured else pipeline_home() / "models"


class KafkaSettings(BaseSettings):
    """``KAFKA_*``: one broker address for every service."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", env_file=".env", extra="ignore", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""  # tests isolate each run under a unique prefix
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    request_timeout_ms: int = Field(default=30_000, ge=1000)
    # Emotion and stance write label events and commit offsets in one transaction (exactly once).
    transactions: bool = True
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    # On revoke: how long a batch still being handled may finish, how long its delivery may
    # take, and how long to wait until the committed offsets are readable. The consumer's
    # rebalance timeout is their sum plus margins, so a member is never evicted mid-revoke.
    revoke_grace_s: float = Field(default=30.0, ge=0)
    delivery_timeout_s: float = Field(default=60.0, gt=0)
    offsets_visible_s: float = Field(default=10.0, ge=0)
    # Times a record may fail alone with a transient error, while others succeed, before it is
    # dead-lettered (reason retries_exhausted). Failures of every record never count.
    max_record_attempts: int = Field(default=6, ge=1)
    # Which replica of its service this process is (set per process by the supervisor); it
    # makes the transactional id stable across restarts. Unset: host name and pid.
    replica_id: str = Field(default="", validation_alias=AliasChoices("replica_id", "REPLICA_ID"))

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def group(self, name: str) -> str:
        """Consumer group ids share the topic prefix, so isolated runs never rebalance each other."""
        return f"{self.topic_prefix}{name}"


class TelemetrySettings(BaseSettings):
    """``OTEL_*`` and ``LOG_*``: tracing is off unless an endpoint is set."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    otel_exporter_otlp_endpoint: str | None = None  # e.g. http://127.0.0.1:4318
    otel_traces_sampler_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    log_level: str = "INFO"
    metrics_host: str = "127.0.0.1"  # where workers serve /metrics; 0.0.0.0 inside containers
