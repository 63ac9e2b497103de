"""``python -m evaluation --bench ...`` on the public benchmarks, with the models loaded in-process
exactly as the services load them (the shared labelled data beside the clone, a few rows each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.model


def run_bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", *args, "--out-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = tmp_path.glob("bench-*.json")
    payload: dict[str, object] = json.loads(result.read_text())
    return payload


def test_stance_benchmark_names_the_target_and_reports_f_avg_for_the_default_head(tmp_path: Path) -> None:
    payload = run_bench(tmp_path, "--bench", "tweeteval-stance", "--limit", "12", "--method", "probe-h3")
    (method,) = payload["methods"]  # type: ignore[misc]
    assert method["method"] == "probe-h3 · v5 (target in prompt)"
    assert method["metric"] == "F_avg" and 0.0 <= method["score"] <= 1.0 and method["n"] == 12
    # what the label events of the stance service would say
    assert method["prompt_version"] == "v5" and method["label_method"] == "probe-h3"
    assert abs(sum(method["predicted_share"].values()) - 1.0) < 0.01


def test_annotated_dev_reports_the_stance_tone_subset(tmp_path: Path) -> None:
    payload = run_bench(tmp_path, "--bench", "annotated-stance", "--limit", "40", "--method", "probe-h3")
    (method,) = payload["methods"]  # type: ignore[misc]
    assert method["metric"] == "macro-F1"
    subset = method["subset:stance!=tone"]
    assert 0 < subset["n"] < 40 and 0.0 <= subset["score"] <= 1.0


def test_the_production_emotion_backend_runs_the_same_benchmarks_unchanged(
    tiny_emotion_model: Path, tmp_path: Path
) -> None:
    """A transformers model directory (random weights, the real label set) stands in for
    j-hartmann: the benchmark code path is the one a machine with the real model runs."""
    env = {"EMOTION_MODEL": str(tiny_emotion_model)}
    emotion = run_bench(tmp_path / "e", "--bench", "tweeteval-emotion", "--limit", "16", "--method", "j-hartmann",
                        env=env)
    (method,) = emotion["methods"]  # type: ignore[misc]
    assert method["model"] == str(tiny_emotion_model) and set(method["per_class_f1"]) == {"anger", "joy", "sadness"}
    sentiment = run_bench(tmp_path / "s", "--bench", "tweeteval-sentiment", "--limit", "16", "--method", "j-hartmann",
                          env=env)
    (method,) = sentiment["methods"]  # type: ignore[misc]
    assert method["metric"] == "macro-recall" and set(method["per_class_recall"]) == {"negative", "neutral", "positive"}


def test_the_offline_fallback_head_scores_goemotions_over_all_seven_labels(tmp_path: Path) -> None:
    payload = run_bench(tmp_path, "--bench", "goemotions", "--limit", "30", "--method", "trained head")
    (method,) = payload["methods"]  # type: ignore[misc]
    assert "emotion-head" in method["model"] and len(method["per_class_f1"]) == 7


def test_the_fallback_heads_sentiment_comes_from_its_block_beside_the_seven_score_map(tmp_path: Path) -> None:
    """The sentiment benchmark scores the head's sentiment block (the service's valence) and,
    for comparison, the map on its seven scores; both say their held-out figure."""
    payload = run_bench(tmp_path, "--bench", "tweeteval-sentiment", "--limit", "30", "--method", "trained head")
    block, seven = payload["methods"]  # type: ignore[misc]
    assert block["valence_map"].startswith("sentiment-block:") and "emotion-head" in block["model"]
    assert "nested cross-validated" in block["note"]
    assert seven["valence_map"].startswith("fitted:") and "(before, sentiment)" in seven["method"]
    for method in (block, seven):
        assert method["metric"] == "macro-recall"
        assert set(method["per_class_recall"]) == {"negative", "neutral", "positive"}
