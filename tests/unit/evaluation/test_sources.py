"""Turning stored documents into runs: grouping by model and prompt version, missing labels."""

from __future__ import annotations

import io

import pytest

from evaluation.evaluate import failures, report_for
from evaluation.gold import parse_gold
from evaluation.sources import Prediction, Run, runs_from_documents, sentiment_run

GOLD = parse_gold(
    io.StringIO(
        "id,text,emotion,stance,sentiment\n"
        "t1,I love it,joy,SUPPORT,positive\n"
        "t2,I hate it,anger,OPPOSE,negative\n"
        "t3,It opens at 5,neutral,NEUTRAL,neutral\n"
    )
)


def _label(label: str, model: str, version: str | None = None, valence: float | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"label": label, "score": 0.8, "scores": [{"label": label, "score": 0.8}], "model": model}
    if version:
        doc["prompt_version"] = version
    if valence is not None:
        doc["valence"] = valence
    return doc


def test_stored_labels_are_grouped_by_model_and_prompt_version() -> None:
    t1, t2, t3 = (item.tweet_id for item in GOLD)
    documents = {
        t1: {"emotion": _label("joy", "emo", valence=0.7), "stance": _label("SUPPORT", "g", "v4")},
        t2: {"emotion": _label("joy", "emo", valence=0.6), "stance": _label("NEUTRAL", "g", "v5")},
        t3: None,  # not in the index
    }
    runs = {(r.task, r.name): r for r in runs_from_documents(GOLD, documents)}
    assert set(runs) == {("emotion", "emo"), ("stance", "g · v4"), ("stance", "g · v5")}
    assert runs[("stance", "g · v4")].predictions["t1"].label == "SUPPORT"
    assert runs[("stance", "g · v4")].missing == ["t3"]
    assert runs[("emotion", "emo")].predictions["t2"].confidence == pytest.approx(0.8)


def test_an_index_with_no_labels_reports_everything_missing() -> None:
    runs = runs_from_documents(GOLD, {item.tweet_id: {"text": item.text} for item in GOLD})
    assert {(r.task, len(r.missing), len(r.predictions)) for r in runs} == {("emotion", 3, 0), ("stance", 3, 0)}


def test_sentiment_run_and_report_from_valence() -> None:
    emotion = Run("emotion", "emo")
    emotion.predictions = {
        "t1": Prediction("joy", 0.9, {"joy": 0.9, "neutral": 0.1}, valence=0.9),
        "t2": Prediction("joy", 0.6, {"joy": 0.6, "anger": 0.4}, valence=0.2),
        "t3": Prediction("neutral", 0.9, {"neutral": 0.9, "anger": 0.1}, valence=-0.1),
    }
    sentiment = sentiment_run(emotion, threshold=0.25)
    assert {k: p.label for k, p in sentiment.predictions.items()} == {
        "t1": "positive",
        "t2": "neutral",
        "t3": "neutral",
    }
    report = report_for(GOLD, sentiment)
    assert report is not None and report.accuracy == pytest.approx(2 / 3)
    wrong = failures(GOLD, sentiment)
    assert [(f.gold_id, f.gold, f.predicted) for f in wrong] == [("t2", "negative", "neutral")]


async def test_in_process_stance_scores_each_gold_target_in_its_own_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections.abc import Sequence

    import stance.main
    from evaluation.sources import stance_run_in_process
    from stance.scorer import ScorerIdentity, StanceScore

    calls: list[tuple[str | None, list[str]]] = []

    class Recorder:
        provider, method = "fake", "probe-test"
        identity = ScorerIdentity("m", "v5")

        async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore]:
            calls.append((target, list(texts)))
            return [StanceScore("SUPPORT", {"SUPPORT": 0.8, "OPPOSE": 0.1, "NEUTRAL": 0.1}) for _ in texts]

        async def aclose(self) -> None:
            pass

    async def build(settings: object) -> Recorder:
        return Recorder()

    monkeypatch.setattr(stance.main, "build_scorer", build)
    gold = parse_gold(io.StringIO(
        "id,text,stance,target\na,x,SUPPORT,Hillary Clinton\nb,y,OPPOSE,\nc,z,NEUTRAL,Hillary Clinton\n"
    ))
    run = await stance_run_in_process(gold, {"provider": "llamacpp", "gguf_path": __file__})
    assert sorted(calls, key=str) == sorted([("Hillary Clinton", ["x", "z"]), (None, ["y"])], key=str)
    assert set(run.predictions) == {"a", "b", "c"} and run.meta["method"] == "probe-test"
