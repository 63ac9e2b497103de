"""``python -m evaluation`` against the real Elasticsearch (documents written through the
indexer's own bulk path), the real gateway API, and the models loaded in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.events import LabelEvent
from evaluation.evaluate import report_for
from evaluation.gold import GoldItem, read_gold
from evaluation.sources import fetch_from_gateway, runs_from_documents
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_api import gateway, repository, seed
from tests.integration.test_gateway_indexer import clean_index, settings
from tests.unit.gateway.factories import emotion, stance, tweet

REPO = Path(__file__).resolve().parents[2]
__all__ = ["clean_index", "settings"]  # fixtures

GOLD_CSV = """id,text,emotion,stance,sentiment
t1,I love the new tram,joy,SUPPORT,positive
t2,The fare rise is a scandal,anger,OPPOSE,negative
t3,Council meets at 5pm,neutral,NEUTRAL,neutral
t4,Scrap the levy now,anger,OPPOSE,negative
t5,Never indexed,,SUPPORT,
1790312458841235457,Exported by /review with a real id,,OPPOSE,
"""


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluation", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def labels_for(items: dict[str, GoldItem]) -> list[LabelEvent]:
    """t1, t2 right; t3 wrong; t4 right under another prompt version; the /review row wrong."""

    def s(gold_id: str, label: str, version: str) -> LabelEvent:
        probs = {"SUPPORT": 0.1, "OPPOSE": 0.1, "NEUTRAL": 0.1, label: 0.8}
        return stance(items[gold_id].tweet_id, label=label, score=0.8, scores=probs, model="g", prompt_version=version)

    def e(gold_id: str, label: str, valence: float) -> LabelEvent:
        return emotion(items[gold_id].tweet_id, label=label, score=0.9, scores={label: 0.9}, valence=valence)

    return [
        s("t1", "SUPPORT", "v4"),
        s("t2", "OPPOSE", "v4"),
        s("t3", "SUPPORT", "v4"),
        s("t4", "OPPOSE", "v5"),
        s("1790312458841235457", "SUPPORT", "v4"),
        e("t1", "joy", 0.9),
        e("t2", "anger", -0.9),
        e("t3", "joy", 0.9),
        e("t4", "anger", -0.9),
    ]


def by_run(payload: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["task"], r["run"]): r for r in payload["reports"]}


@pytest.fixture
def gold(tmp_path: Path) -> tuple[Path, dict[str, GoldItem]]:
    path = tmp_path / "gold.csv"
    path.write_text(GOLD_CSV)
    return path, {item.id: item for item in read_gold(path)}


@pytest.mark.es
@pytest.mark.kafka
@pytest.mark.asyncio(loop_scope="session")
async def test_evaluate_index_scores_stored_labels_per_prompt_version(
    settings: GatewaySettings, clean_index: None, gold: tuple[Path, dict[str, GoldItem]], tmp_path: Path
) -> None:
    gold_path, items = gold
    indexed = [i for i in items.values() if i.id != "t5"]
    async with repository(settings) as search:
        await seed(search, [tweet(i.tweet_id, text=i.text) for i in indexed], labels_for(items))

    done = run_cli("--gold", str(gold_path), "--source", "index", "--es-url", settings.es_url,
                   "--index", settings.index, "--out-dir", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 0, done.stderr
    reports = by_run(json.loads((tmp_path / "out" / "index.json").read_text()))
    assert set(reports) == {("stance", "g · v4"), ("stance", "g · v5"), ("emotion", "emo-model"),
                            ("sentiment", "emo-model")}
    v4 = reports[("stance", "g · v4")]
    assert (v4["n"], v4["accuracy"]) == (4, 0.5)  # t1, t2 right; t3 and the /review row wrong
    assert v4["confusion"][2] == [1, 0, 0]  # gold NEUTRAL (t3) predicted SUPPORT
    assert v4["meta"]["missing"] == 1  # t5 was never indexed
    assert reports[("stance", "g · v5")]["accuracy"] == 1.0
    assert reports[("emotion", "emo-model")]["accuracy"] == 0.75  # t3 called joy
    assert reports[("sentiment", "emo-model")]["predicted_distribution"] == {
        "negative": 2, "neutral": 0, "positive": 2}
    assert (tmp_path / "out" / "reliability-stance-g-v4.png").stat().st_size > 0

    # The same figures through the public API (which omits the prompt version: one run per model).
    async with gateway(settings) as api:
        documents = await fetch_from_gateway(api, [i.tweet_id for i in items.values()])
    assert documents[items["t5"].tweet_id] is None
    runs = {(r.task, r.name): r for r in runs_from_documents(list(items.values()), documents)}
    report = report_for(list(items.values()), runs[("stance", "g")])
    assert report is not None and (report.n, report.accuracy) == (5, 0.6)


@pytest.mark.model
def test_evaluate_models_in_process_scores_every_task(tiny_emotion_model: Path, tmp_path: Path) -> None:
    """The tiny emotion model and the PyPI gemma GGUF, through the services' own loaders."""
    from stance.model_files import packaged_gemma_gguf
    from stance.prompts import DEFAULT_PROMPT_VERSION, PROMPT_VERSIONS

    versions = sorted({next(iter(PROMPT_VERSIONS)), DEFAULT_PROMPT_VERSION})
    done = run_cli(
        "--gold", str(REPO / "data" / "labelled" / "test.csv"), "--source", "models", "--limit", "6",
        "--emotion-set", f"model={tiny_emotion_model}", "--stance-set", f"gguf_path={packaged_gemma_gguf()}",
        *[arg for v in versions for arg in ("--prompt-version", v)], "--out-dir", str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "models.json").read_text())
    reports = payload["reports"]
    assert sorted(r["task"] for r in reports) == sorted(["emotion", "sentiment"] + ["stance"] * len(versions))
    assert all(r["n"] == 6 and r["ece"] is not None for r in reports)
    stance_runs = [r for r in reports if r["task"] == "stance"]
    assert {r["meta"]["prompt_version"] for r in stance_runs} == set(versions)
    assert all(sum(r["predicted_distribution"].values()) == 6 for r in stance_runs)
    assert len(list(tmp_path.glob("reliability-*.png"))) == len(reports)
