"""The report's figures and markdown from hand-made runs (no models)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from evaluation.evaluate import failures, report_for
from evaluation.gold import parse_gold
from evaluation.markdown import render
from evaluation.report import ReportData, lexicon_figures, load_runs, save_runs
from evaluation.sources import Prediction, Run

GOLD = parse_gold(
    io.StringIO(
        "id,text,emotion,stance,sentiment\n"
        "t1,I love the tram,joy,SUPPORT,positive\n"
        "t2,Scrap the levy,anger,OPPOSE,negative\n"
        "t3,Vote is at 5,neutral,NEUTRAL,neutral\n"
        "t4,Terrible | awful,anger,OPPOSE,negative\n"
    )
)


def _run(task: str, name: str, labels: dict[str, str], **meta: object) -> Run:
    run = Run(task, name, dict(meta))
    run.predictions = {k: Prediction(v, 0.9, {v: 0.9}, valence=0.5 if v == "joy" else -0.5) for k, v in labels.items()}
    return run


def test_lexicon_agreement_counts_polarity_and_sign() -> None:
    emotion = _run("emotion", "emo", {"t1": "joy", "t2": "anger", "t3": "anger", "t4": "anger"})
    compounds = {"t1": 0.6, "t2": 0.3, "t3": 0.0, "t4": -0.7}
    figures = lexicon_figures(GOLD, emotion, compounds, threshold=0.2)
    # polarity: t1 pos/pos, t2 neg/pos, t3 neg/neutral, t4 neg/neg -> 2 of 4; both polar: t1, t2, t4 -> 2 of 3 agree
    assert figures["polarity_agreement"] == pytest.approx(0.5)
    assert (figures["both_polar"], figures["sign_agreement_where_both_polar"]) == (3, pytest.approx(2 / 3))


def test_render_states_figures_goal_and_failures(tmp_path: Path) -> None:
    stance = _run("stance", "g · v4 · probe", {"t1": "SUPPORT", "t2": "OPPOSE", "t3": "NEUTRAL", "t4": "NEUTRAL"},
                  prompt_version="v4", method="probe", default=True)
    skewed = _run("stance", "g · v1", {g.id: "NEUTRAL" for g in GOLD}, prompt_version="v1", method="label-scoring")
    data = ReportData(Path("data/labelled/test.csv"), Path("data/sample_tweets.json"), GOLD, [], 0.2)
    data.runs = [stance, skewed]
    data.reports = [r for r in (report_for(GOLD, run) for run in data.runs) if r is not None]
    data.failures = {"stance: g · v4 · probe": failures(GOLD, stance)}
    data.notes = ["fallback emotion model in use"]
    data.lessons = "## Lessons learned\n\nSmall models need help."
    text = render(data, tmp_path)
    assert "| stance | g · v4 · probe | 4 | 0.750 |" in text
    assert "| g · v4 · probe (service default) | 0.750 |" in text and "| 0.778 | 50% | yes |" in text
    assert "| g · v1 | 0.250 |" in text and "| 100% | no |" in text  # every tweet NEUTRAL misses the goal
    assert "| t4 | Terrible \\| awful | OPPOSE | NEUTRAL | 0.90 |" in text  # pipes in tweets are escaped
    assert "**Note**: fallback emotion model in use" in text
    assert "No `bench/results/pipeline.json` was found" in text
    assert text.rstrip().endswith("Small models need help.")


def test_saved_runs_reload_as_explicit_stance_variants_only(tmp_path: Path) -> None:
    explicit = _run("stance", "g · v1", {"t1": "OPPOSE"}, variant={"prompt_version": "v1"})
    default = _run("stance", "g · v4", {"t1": "SUPPORT"}, variant={}, default=True)
    save_runs([_run("emotion", "emo", {"t1": "joy"}), explicit, default], tmp_path / "runs.json")
    [reloaded] = load_runs(tmp_path / "runs.json")  # the default is always scored afresh
    assert (reloaded.name, reloaded.predictions["t1"].label) == ("g · v1", "OPPOSE")
    assert reloaded.meta["variant"] == {"prompt_version": "v1"} and "reused_from" in reloaded.meta
    assert [r.name for r in load_runs(tmp_path / "runs.json", with_default=True)] == ["g · v1", "g · v4"]


def test_the_benchmark_table_leads_beside_the_published_figures_and_says_what_did_not_run(tmp_path: Path) -> None:
    data = ReportData(Path("data/labelled/test.csv"), Path("data/sample_tweets.json"), GOLD, [], 0.2)
    data.benchmarks = [
        {"benchmark": "tweeteval-stance", "split": "dev", "n": 294, "methods": [
            {"method": "probe-h3", "metric": "F_avg", "score": 0.678, "per_class_f1": {"SUPPORT": 0.62},
             "predicted_share": {"SUPPORT": 0.16}, "gold_share": {"SUPPORT": 0.26}, "ece": 0.083},
        ]},
        {"benchmark": "goemotions", "split": "dev", "n": 5426, "methods": [
            {"method": "j-hartmann", "skipped": "emotion model is not available: run `make models`"},
        ]},
    ]
    text = render(data, tmp_path)
    table = text.index("## Public benchmarks")
    assert table < text.index("## Smoke test: the self-written set")
    assert "| tweeteval-stance | dev (294) | probe-h3 | F_avg | **0.678** |" in text
    assert "SVM 67.3" in text and "not run here" in text and "run `make models`" in text


def test_a_sentiment_figure_fitted_on_the_dev_split_leads_with_its_held_out_figure(tmp_path: Path) -> None:
    """On the split its map was fitted on, the in-sample macro-recall must not be the headline."""
    data = ReportData(Path("data/labelled/test.csv"), Path("data/sample_tweets.json"), GOLD, [], 0.2)
    row = {"method": "MiniLM + trained head", "metric": "macro-recall", "score": 0.782,
           "per_class_f1": {"negative": 0.7}, "predicted_share": {"negative": 0.23}, "gold_share": {"negative": 0.16},
           "ece": 0.113, "note": "in-sample",
           "held_out": {"fitted_on": "tweeteval_sentiment_val.csv", "method": "5-fold nested cross-validated",
                        "macro_recall": 0.6438}}
    data.benchmarks = [{"benchmark": "tweeteval-sentiment", "split": "dev", "n": 2000, "methods": [row]}]
    text = render(data, tmp_path)
    assert ("| **0.644** held out (5-fold nested cross-validated); in-sample 0.782, as are this row's other "
            "columns |") in text
    assert "**0.782**" not in text
    data.benchmarks = [{"benchmark": "tweeteval-sentiment", "split": "test", "n": 12000, "methods": [row]}]
    assert "| **0.782**" in render(data, tmp_path)  # another split: the figure is held out already
