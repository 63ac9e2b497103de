"""``STANCE_*`` settings (``MODEL_CACHE_DIR`` is shared with the model-download command)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.events import MAIN_SUBJECT, MAX_TARGET_CHARS, clean_target
from common.settings import KafkaSettings, TelemetrySettings, default_model_cache_dir
from stance.model_files import TINYLLAMA_GGUF
from stance.prompts import DEFAULT_PROMPT_VERSION, PROMPT_VERSIONS, names_target


class StanceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STANCE_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    provider: Literal["llamacpp", "openai"] = "llamacpp"
    prompt_version: str = DEFAULT_PROMPT_VERSION
    # What the stance is toward when a re-label request names none: "main subject" (the tweet's
    # own subject, docs/stance-guideline.md) or a named target such as "Hillary Clinton".
    target: str = Field(default=MAIN_SUBJECT, min_length=1, max_length=MAX_TARGET_CHARS)
    group_id: str = "stance"
    batch_size: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: int = Field(default=200, ge=1)

    # llamacpp
    model_cache_dir: Path = Field(
        default_factory=default_model_cache_dir,
        validation_alias=AliasChoices("STANCE_MODEL_CACHE_DIR", "MODEL_CACHE_DIR"),
    )
    gguf_path: Path | None = None  # default: the TinyLlama GGUF in model_cache_dir
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int = Field(default=2, ge=1)  # one-token decodes (and the MiniLM encoder's torch threads)
    n_threads_batch: int | None = Field(default=None, ge=1)  # prompt decodes; default: n_threads
    # Cores shared by demand with the other inference services on this host (common.core_lease):
    # each tweet's decode runs with the cores free now, at most n_threads. Unset: static threads.
    core_lease_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("STANCE_CORE_LEASE_DIR", "CORE_LEASE_DIR", "core_lease_dir")
    )
    max_tweet_tokens: int = Field(default=128, ge=8)  # longer tweets are cut (after URL/whitespace normalising)
    # auto: the trained probe head when it was trained for this GGUF, else label scoring
    method: Literal["auto", "probe", "label-scoring"] = "auto"
    head_path: Path | None = None  # default: the head fitted for this GGUF, else services/stance/stance_head.npz
    metrics_port: int | None = Field(default=9103, ge=0, le=65535)  # 0 disables /metrics
    n_batch: int = Field(default=512, ge=8)
    calibrate: bool = True  # contextual calibration, see docs/stance.md

    # openai (any OpenAI-compatible chat-completions API)
    api_base_url: str = "https://api.x.ai/v1"
    allow_insecure_api_url: bool = False  # http:// sends the API key in clear: local fakes only
    api_key: SecretStr | None = None
    api_model: str = "grok-3-mini"
    api_logprobs: bool = True
    connect_timeout_s: float = Field(default=5.0, gt=0)
    total_timeout_s: float = Field(default=30.0, gt=0)
    # The provider's quota for the whole stance group: each replica takes its share (stance.quota).
    requests_per_second: float = Field(default=5.0, gt=0)
    quota_refresh_s: float = Field(default=10.0, gt=0)  # how often a replica re-reads the group's members
    max_concurrent_requests: int = Field(default=4, ge=1)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=20.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @model_validator(mode="after")
    def _consistent(self) -> StanceSettings:
        if self.prompt_version not in PROMPT_VERSIONS:
            raise ValueError(f"prompt_version must be one of {', '.join(PROMPT_VERSIONS)}")
        if clean_target(self.target) != MAIN_SUBJECT and not names_target(self.prompt_version):
            raise ValueError(
                f"STANCE_TARGET needs a prompt version that names the target (v5), not {self.prompt_version}"
            )
        if self.provider == "openai" and self.api_key is None:
            raise ValueError("STANCE_API_KEY is required when STANCE_PROVIDER=openai")
        if not self.api_base_url.lower().startswith("https://") and not self.allow_insecure_api_url:
            raise ValueError(
                f"STANCE_API_BASE_URL must be https:// (got {self.api_base_url!r}); the API key would travel "
                "in clear. Set STANCE_ALLOW_INSECURE_API_URL=true only for a local test server"
            )
        return self

    @property
    def resolved_gguf_path(self) -> Path:
        return self.gguf_path or self.model_cache_dir / TINYLLAMA_GGUF
