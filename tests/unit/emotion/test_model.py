"""The production loading path, with a tiny model built at test time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.model import load_classifier
from emotion.settings import EmotionSettings
from tests.support.tiny_models import build_tiny_emotion_model

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_emotion_model(tmp_path_factory.mktemp("tiny-emotion"))


def test_tiny_model_loads_through_production_path(tiny_model: Path) -> None:
    classifier = load_classifier(EmotionSettings(model=str(tiny_model)))
    rows = classifier.classify(["I love it 😀", "Ünïcödé rage " * 200])
    assert classifier.model_id == str(tiny_model)
    for row in rows:
        assert sorted(row) == sorted(EMOTION_LABELS)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)


def test_bucketed_batch_matches_one_by_one_in_input_order(tiny_model: Path) -> None:
    classifier = load_classifier(EmotionSettings(model=str(tiny_model), bucket_size=2))
    texts = ["short", "a much longer tweet about the council budget vote " * 3, "mid length tweet", "ok", "x " * 90]
    batched = classifier.classify(texts)
    for text, row in zip(texts, batched, strict=True):
        [alone] = classifier.classify([text])
        assert row == pytest.approx(alone, abs=1e-5)


def test_onnx_runtime_matches_torch_and_names_itself(tiny_model: Path) -> None:
    texts = ["I love it", "the council vote is on Tuesday " * 4, "furious!!"]
    torch_rows = load_classifier(EmotionSettings(model=str(tiny_model))).classify(texts)
    onnx = load_classifier(EmotionSettings(model=str(tiny_model), runtime="onnx"))
    for torch_row, onnx_row in zip(torch_rows, onnx.classify(texts), strict=True):
        assert onnx_row == pytest.approx(torch_row, abs=1e-4)
    assert onnx.revision is not None and onnx.revision.endswith("+onnx")


def test_int8_runtime_returns_distributions_over_the_seven_labels(tiny_model: Path) -> None:
    classifier = load_classifier(EmotionSettings(model=str(tiny_model), runtime="onnx-int8"))
    for row in classifier.classify(["short", "a longer tweet about the budget and the schools"]):
        assert sorted(row) == sorted(EMOTION_LABELS)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
    assert classifier.revision is not None and classifier.revision.endswith("+onnx-int8")


def test_thread_settings_are_applied_before_loading(tiny_model: Path) -> None:
    import torch

    load_classifier(EmotionSettings(model=str(tiny_model), EMOTION_TORCH_THREADS=1))
    assert torch.get_num_threads() == 1


def test_missing_hub_model_fails_with_the_command_to_run(tmp_path: Path) -> None:
    settings = EmotionSettings(model="j-hartmann/emotion-english-distilroberta-base", MODEL_CACHE_DIR=tmp_path)
    with pytest.raises(ModelUnavailableError, match="make models"):
        load_classifier(settings)


def test_missing_directory_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_classifier(EmotionSettings(model=str(tmp_path / "nope")))


def test_zero_shot_fallback_names_itself_and_separates_obvious_cases() -> None:
    classifier = load_classifier(EmotionSettings(backend="minilm-zero-shot"))
    assert "MiniLM" in classifier.model_id
    happy, angry, scared = classifier.classify(
        ["I am so happy today, best day ever!", "I hate this, it makes me furious", "I am terrified of the storm"]
    )
    assert max(happy, key=happy.__getitem__) == "joy"
    assert max(angry, key=angry.__getitem__) == "anger"
    assert max(scared, key=scared.__getitem__) == "fear"


def test_with_shared_cores_each_bucket_runs_on_the_cores_leased_and_the_demand_is_announced(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from common.core_lease import CoreLease

    before = torch.get_num_threads()
    classifier = load_classifier(EmotionSettings(model=str(tiny_model), bucket_size=1, core_lease_dir=tmp_path))
    assert isinstance(classifier.cores, CoreLease)  # type: ignore[attr-defined]
    seen: list[tuple[int, list[Path]]] = []
    forward = classifier.logits  # type: ignore[attr-defined]

    def recording(*args: object) -> object:
        seen.append((torch.get_num_threads(), sorted((tmp_path / "demand").iterdir())))
        return forward(*args)

    monkeypatch.setattr(classifier, "logits", recording)
    try:
        classifier.classify(["one", "two words", "three words here"])
    finally:
        torch.set_num_threads(before)
    cores = len(os.sched_getaffinity(0))
    wanted = min(before, cores)
    assert [threads for threads, _ in seen] == [wanted] * 3  # alone on the host: every core it wants
    assert all(demand == [tmp_path / "demand" / f"{os.getpid()}.pid"] for _, demand in seen)
    assert list((tmp_path / "demand").iterdir()) == []  # the demand ends with the batch
