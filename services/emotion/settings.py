"""``EMOTION_*`` settings (``MODEL_CACHE_DIR`` is shared with the model-download command)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import KafkaSettings, TelemetrySettings, default_model_cache_dir

DEFAULT_MODEL = "j-hartmann/emotion-english-distilroberta-base"


class EmotionSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMOTION_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    # A Hugging Face hub id (looked up in the model cache, never downloaded at start) or a
    # local directory written by ``save_pretrained``.
    model: str = DEFAULT_MODEL
    # ``minilm-head`` is the offline fallback (a head trained on human labels over MiniLM
    # features); ``minilm-zero-shot`` the older, weaker one kept as a baseline. Never chosen silently.
    backend: Literal["transformers", "minilm-head", "minilm-zero-shot"] = "transformers"
    # minilm-head's weights; default services/emotion/emotion_head.npz (python -m training.emotion_head)
    head_path: Path | None = None
    # A fitted emotion -> sentiment/valence map; default services/emotion/valence_<backend>.json
    # (minilm-head: the map inside the head file). Absent: the fixed valence weights.
    valence_map_path: Path | None = None
    model_cache_dir: Path = Field(
        default_factory=default_model_cache_dir,
        validation_alias=AliasChoices("EMOTION_MODEL_CACHE_DIR", "MODEL_CACHE_DIR"),
    )
    group_id: str = "emotion"
    # 64: one transaction and one idle gap (publish, commit, poll) per 64 tweets instead of 32
    batch_size: int = Field(default=64, ge=1, le=1024)
    max_wait_ms: int = Field(default=200, ge=1)
    max_length: int = Field(default=128, ge=8, le=512)
    # Length-bucketed batching: a poll's tweets are sorted by token length and run in padded
    # buckets of at most bucket_size rows and bucket_tokens padded tokens; output keeps input order.
    # 8: a poll of 32 tweets in 4 buckets pads less than in 2 of 16, and 8 rows of a tweet's
    # length still keep one torch thread's matrix products efficient: 4-8% less CPU per tweet
    # than 16, and less than 4, in three runs (distilroberta shape, 1 thread,
    # bench/emotion_service_profile.py --bucket-sizes 4,8,16).
    bucket_size: int = Field(default=8, ge=1, le=1024)
    bucket_tokens: int = Field(default=4096, ge=64)
    # CPU budget (deploy/local/cpu_budget.py sets these from the cores and the replicas on the
    # host): torch intra-op and inter-op threads, applied before the model loads. Unset = torch's.
    torch_threads: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("EMOTION_TORCH_THREADS", "EMOTION_THREADS", "torch_threads")
    )
    torch_interop_threads: int | None = Field(default=None, ge=1)
    # Cores shared by demand with the other inference services on this host (common.core_lease):
    # each length bucket runs with the cores free now, at most torch_threads. Unset: static threads.
    core_lease_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("EMOTION_CORE_LEASE_DIR", "CORE_LEASE_DIR", "core_lease_dir")
    )
    # torch (default) or ONNX Runtime on a model exported once at start; int8 = dynamic quantization.
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"
    metrics_port: int | None = Field(default=9102, ge=0, le=65535)  # 0 disables /metrics
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
