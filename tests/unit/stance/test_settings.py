from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.errors import ModelUnavailableError
from stance.main import build_scorer
from stance.model_files import TINYLLAMA_GGUF, require_gguf
from stance.settings import StanceSettings


def test_defaults_point_at_tinyllama_in_the_model_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    settings = StanceSettings()
    assert settings.provider == "llamacpp" and settings.n_threads == 2
    assert settings.resolved_gguf_path == tmp_path / TINYLLAMA_GGUF


async def test_a_missing_gguf_fails_at_start_naming_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"python deploy/fetch_models\.py"):
        require_gguf(tmp_path / TINYLLAMA_GGUF)
    settings = StanceSettings(gguf_path=tmp_path / "absent.gguf")
    with pytest.raises(ModelUnavailableError, match="absent.gguf"):
        await build_scorer(settings)


def test_openai_needs_a_key_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANCE_PROVIDER", "openai")
    with pytest.raises(ValidationError, match="STANCE_API_KEY"):
        StanceSettings()
    monkeypatch.setenv("STANCE_API_KEY", "xai-secret-value")
    settings = StanceSettings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "xai-secret-value"
    assert "xai-secret-value" not in repr(settings) and "xai-secret-value" not in str(settings.model_dump())


def test_unknown_prompt_versions_are_refused() -> None:
    with pytest.raises(ValidationError, match="prompt_version"):
        StanceSettings(prompt_version="v42")


def test_the_api_url_must_be_https_unless_insecure_is_allowed_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANCE_PROVIDER", "openai")
    monkeypatch.setenv("STANCE_API_KEY", "xai-secret-value")
    monkeypatch.setenv("STANCE_API_BASE_URL", "http://api.example.com/v1")
    with pytest.raises(ValidationError, match="must be https"):
        StanceSettings()
    monkeypatch.setenv("STANCE_ALLOW_INSECURE_API_URL", "true")
    assert StanceSettings().api_base_url == "http://api.example.com/v1"
    monkeypatch.setenv("STANCE_ALLOW_INSECURE_API_URL", "false")
    monkeypatch.setenv("STANCE_API_BASE_URL", "https://api.example.com/v1")
    assert StanceSettings().api_base_url == "https://api.example.com/v1"


def test_thread_method_and_truncation_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANCE_N_THREADS", "1")
    monkeypatch.setenv("STANCE_N_THREADS_BATCH", "3")
    monkeypatch.setenv("STANCE_METHOD", "label-scoring")
    monkeypatch.setenv("STANCE_MAX_TWEET_TOKENS", "64")
    settings = StanceSettings()
    assert (settings.n_threads, settings.n_threads_batch) == (1, 3)
    assert (settings.method, settings.max_tweet_tokens) == ("label-scoring", 64)
    with pytest.raises(ValidationError):
        StanceSettings(method="guess")


def test_a_named_target_needs_a_prompt_that_names_it() -> None:
    assert StanceSettings(target="Hillary Clinton").target == "Hillary Clinton"  # v5, the default
    assert StanceSettings(prompt_version="v4").target == "main subject"
    with pytest.raises(ValidationError, match="names the target"):
        StanceSettings(target="Hillary Clinton", prompt_version="v4")
