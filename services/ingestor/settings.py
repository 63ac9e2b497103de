"""``INGESTOR_*`` settings; Kafka (``KAFKA_*``) and telemetry (``OTEL_*``/``LOG_*``) are composed in."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings


class IngestorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGESTOR_", env_file=".env", extra="ignore", frozen=True)

    client_id: str = "ingestor"
    batch_size: int = Field(default=500, ge=1, le=100_000)  # messages per acknowledged publish
    poll_interval_s: float = Field(default=0.5, gt=0)  # how often --follow / stdin look for new lines
    # /metrics while a (long, e.g. --follow) replay runs; off by default for one-shot replays.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    csv_encoding: str = "utf-8"  # undecodable bytes fall back to CP1252 per cell (Sentiment140)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
