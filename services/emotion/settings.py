"""``EMOTION_*`` settings (``MODEL_CACHE_DIR`` is shared with the model-download command)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings

DEFAULT_MODEL = "j-hartmann/emotion-english-distilroberta-base"


class EmotionSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMOTION_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    # A Hugging Face hub id (looked up in the model cache, never downloaded at start) or a
    # local directory written by ``save_pretrained``.
    model: str = DEFAULT_MODEL
    # ``minilm-zero-shot`` is the offline fallback; it is never chosen silently.
    backend: Literal["transformers", "minilm-zero-shot"] = "transformers"
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "tweet-pipeline" / "models",
        validation_alias=AliasChoices("EMOTION_MODEL_CACHE_DIR", "MODEL_CACHE_DIR"),
    )
    group_id: str = "emotion"
    batch_size: int = Field(default=32, ge=1, le=1024)
    max_wait_ms: int = Field(default=200, ge=1)
    max_length: int = Field(default=128, ge=8, le=512)
    threads: int | None = Field(default=None, ge=1)
    metrics_port: int | None = Field(default=9102, ge=0, le=65535)  # 0 disables /metrics
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
