"""``GATEWAY_*`` settings, shared by the gateway's three processes: the indexer, the API and the dead-letter tool."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )  # hidden inputs: a malformed GATEWAY_API_KEYS must not print its keys

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
    # The broker holds a fetch until ~a batch of bytes or this long: Elasticsearch spends per
    # bulk, not only per document (bench/es_bulk_bench.py: 1.1-1.3 ms of its CPU a tweet in bulks
    # of 8, 0.4-0.5 in bulks of 200, the indexer's own 0.85 vs 0.3).
    indexer_linger_ms: int = Field(default=1000, ge=0, le=10_000)
    relabel_max_tweets: int = Field(default=10_000, ge=1, le=10_000)  # ES max_result_window
    jaeger_ui_url: str = "http://127.0.0.1:16686"
    metrics_port: int | None = Field(default=9104, ge=0, le=65535)  # the indexer's /metrics; 0 disables
    # front door (gateway.api.security): "name:key,name2:key2"; unset = mutating routes are open
    api_keys: SecretStr | None = None
    rate_limit: float = Field(default=60, gt=0)  # mutating requests per client per rate_limit_period_s
    rate_limit_period_s: float = Field(default=60.0, gt=0)
    # wrong keys per client address within the window before it is locked out (429) for the window
    auth_failure_limit: int = Field(default=10, ge=1)
    auth_failure_window_s: float = Field(default=300.0, gt=0)
    # proxies trusted to name the client in X-Forwarded-For (uvicorn's forwarded_allow_ips); empty:
    # none, the peer is the client (uvicorn's default, 127.0.0.1, would let any local caller pick
    # its own address and so dodge the wrong-key limit)
    forwarded_allow_ips: str = ""
    # the /review key cookie is Secure: browsers send it over https, and over http only to
    # localhost/127.0.0.1; false for a plain-http gateway reached by another host name
    review_cookie_secure: bool = True
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # any request body; 413 past it
    ingest_max_records: int = Field(default=10_000, ge=1)  # JSON Lines per POST /ingest
    jaeger_query_url: str = "http://127.0.0.1:16686"  # Jaeger's query API, for GET /tweets/{id}/trace
    dlq_metrics_refresh_s: float = Field(default=30.0, gt=0)  # how often /metrics re-counts dead letters
    # quality checks (gateway.quality.QualityThresholds.from_settings): the thresholds the flags
    # are judged by when read, drift judging, and how often /metrics may re-read the aggregates
    quality_emotion_min_score: float = Field(default=0.5, ge=0, le=1)
    quality_stance_min_score: float = Field(default=0.5, ge=0, le=1)
    quality_drift_threshold: float = Field(default=0.1, gt=0, le=1)  # JS divergence, bits
    quality_drift_min_count: int = Field(default=20, ge=1)
    quality_metrics_refresh_s: float = Field(default=30.0, ge=0)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @field_validator("api_keys")
    @classmethod
    def _named_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # GATEWAY_API_KEYS= (empty, as compose passes an unset variable): no keys
        parse_api_keys(value)  # fails at start on a malformed list, naming the entry but not the key
        return value

    @property
    def api_key_names(self) -> dict[str, str]:
        """key → client name; empty when no key is configured."""
        return parse_api_keys(self.api_keys) if self.api_keys is not None else {}

    @property
    def indexer_group_id(self) -> str:
        return self.kafka.group(self.indexer_group)

    @property
    def jobs_index(self) -> str:
        return f"{self.index}-jobs"


def parse_api_keys(value: SecretStr) -> dict[str, str]:
    """``"ci:k1,alice:k2"`` → ``{"k1": "ci", "k2": "alice"}``; blank entries are ignored."""
    keys: dict[str, str] = {}
    for number, entry in enumerate(value.get_secret_value().split(","), start=1):
        if not entry.strip():
            continue
        name, sep, key = (part.strip() for part in entry.partition(":"))
        if not sep or not name or len(key) < 8:
            raise ValueError(f"GATEWAY_API_KEYS entry {number} must be name:key with a key of 8+ characters")
        if key in keys:
            raise ValueError(f"GATEWAY_API_KEYS entry {number} repeats the key of {keys[key]!r}")
        keys[key] = name
    if not keys:
        raise ValueError("GATEWAY_API_KEYS is set but names no key; unset it to leave mutating routes open")
    return keys
