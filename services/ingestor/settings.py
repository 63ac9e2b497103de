"""``INGESTOR_*`` settings; Kafka (``KAFKA_*``) and telemetry (``OTEL_*``/``LOG_*``) are composed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings, pipeline_home

SERVICE = "ingestor"  # the name in logs, metrics and traces


class IngestorTelemetry(TelemetrySettings):
    """The ingestor roots every tweet's trace, so its ratio is the pipeline's. Unset, it traces
    one tweet in ten: a traced tweet costs the replay 80 to 90 µs of span and OTLP encoding,
    more than reading, validating and producing it, while at 0.1 tracing stays under the
    reading's cost and leaves the rate as it is (docs/ingestor.md, bench/ingest_bench.py).
    ``OTEL_TRACES_SAMPLER_RATIO=1.0`` traces every tweet."""

    otel_traces_sampler_ratio: float = Field(default=0.1, ge=0.0, le=1.0)


class IngestorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INGESTOR_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    client_id: str = "ingestor"
    batch_size: int = Field(default=500, ge=1, le=100_000)  # messages per acknowledged publish
    poll_interval_s: float = Field(default=0.5, gt=0)  # how often --follow / stdin look for new lines
    # /metrics while a (long, e.g. --follow) replay runs; off by default for one-shot replays.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    csv_encoding: str = "utf-8"  # undecodable bytes fall back to CP1252 per cell (Sentiment140)
    # Checkpoints (--follow) and the ledger of finished files (watch); outside the data on purpose.
    # Default: $TWEETPIPE_HOME/state/ingestor, which `make clean` deletes along with Kafka's data.
    state_dir: Path = Field(default_factory=lambda: pipeline_home() / "state" / "ingestor")
    watch_settle_s: float = Field(default=2.0, ge=0)  # a watched file is ready once unchanged this long
    max_backoff_s: float = Field(default=30.0, gt=0)  # --follow / watch: retry Kafka up to this apart
    # Files at least this large are read, validated and serialised in a child process on a spare
    # core (ingestor.reader); smaller ones, stdin and --follow in a thread. Above any file: never.
    reader_process_min_bytes: int = Field(default=1024 * 1024, ge=0)
    # Processes that share such a file when it is JSON Lines of one tweet a line, chunks in turn
    # (ingestor.reader). 2 reads 1.4-1.6x as fast where cores are spare; on a 2-core host that
    # also produces (and runs the broker) it measured no better than 1 for more CPU a tweet.
    reader_processes: int = Field(default=1, ge=1, le=16)
    # --skip-existing looks tweets up where the gateway indexes them (same variables as the gateway).
    es_url: str = Field(
        default="http://127.0.0.1:9200", validation_alias=AliasChoices("INGESTOR_ES_URL", "GATEWAY_ES_URL")
    )
    index: str = Field(default="tweets", validation_alias=AliasChoices("INGESTOR_INDEX", "GATEWAY_INDEX"))
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=IngestorTelemetry)
