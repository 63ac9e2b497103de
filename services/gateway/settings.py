"""``GATEWAY_*`` settings, shared by the indexer process and the API process."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True)

    es_url: str = "http://127.0.0.1:9200"
    es_request_timeout_s: float = Field(default=30.0, gt=0)
    index: str = Field(default="tweets", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    index_shards: int = Field(default=1, ge=1)
    index_replicas: int = Field(default=0, ge=0)  # a single local node cannot host replicas
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    indexer_group: str = "gateway-indexer"
    indexer_batch_size: int = Field(default=500, ge=1, le=10_000)
    indexer_max_wait_ms: int = Field(default=200, ge=1)
    relabel_max_tweets: int = Field(default=10_000, ge=1, le=10_000)  # ES max_result_window
    jaeger_ui_url: str = "http://127.0.0.1:16686"
    metrics_port: int | None = Field(default=9104, ge=0, le=65535)  # the indexer's /metrics; 0 disables
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @property
    def indexer_group_id(self) -> str:
        """Namespaced by the topic prefix, so isolated runs never share (and rebalance) a group."""
        return f"{self.kafka.topic_prefix}{self.indexer_group}"

    @property
    def jobs_index(self) -> str:
        return f"{self.index}-jobs"
