"""``make report`` (``python -m evaluation.report``): REPORT.md and docs/report/*.png.

It scores the held-out test set and the sample data with the models in-process (the emotion
classifier the settings build, falling back to the offline MiniLM one when the production
model is not downloaded; every stance method and prompt version), compares the valence with
the VADER lexicon, reads the latest benchmark results, and writes the markdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from common.events import TweetRecord
from common.records import RecordError, map_nested
from evaluation.cli import parse_overrides
from evaluation.evaluate import Failure, failures, report_for
from evaluation.gold import TASKS, GoldItem, now_stamp, read_gold, sentiment_from_valence
from evaluation.markdown import render
from evaluation.metrics import TaskReport, distribution
from evaluation.plots import (
    confidence_histogram,
    confusion_plot,
    distribution_plot,
    reliability_diagram,
    slug,
    valence_vs_lexicon,
)
from evaluation.sources import Prediction, Run, emotion_run_with_fallback, sentiment_run, stance_run_in_process

log = logging.getLogger(__name__)
console = Console(stderr=True)
LEXICON_BAND = 0.05  # VADER's own neutral band for the compound score


@dataclass
class ReportData:
    """Everything the markdown shows; built once, rendered by :mod:`evaluation.markdown`."""

    gold_path: Path
    sample_path: Path
    gold: list[GoldItem]
    sample: list[GoldItem]
    valence_threshold: float
    notes: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    reports: list[TaskReport] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    sample_distributions: dict[str, dict[str, int]] = field(default_factory=dict)
    compounds: dict[str, float] = field(default_factory=dict)  # VADER compound per item id
    lexicon: dict[str, dict[str, Any]] = field(default_factory=dict)  # agreement figures per data set
    lexicon_gold: TaskReport | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    benchmarks: list[dict[str, Any]] = field(default_factory=list)  # make evaluate BENCH=... results
    lessons: str = ""


def load_sample(path: Path) -> tuple[list[GoldItem], int]:
    """The sample dataset (spec layout) as unlabelled items: the records the ingestor accepts,
    and how many it would reject (the sample has deliberately broken ones)."""
    items, rejected = [], 0
    for raw in json.loads(path.read_text(encoding="utf-8")):
        try:
            record = TweetRecord.model_validate({**map_nested(raw), "source": path.name})
        except (RecordError, ValidationError):
            rejected += 1
            continue
        items.append(GoldItem(f"sample-{record.id}", record.text, {}))
    return items, rejected


def default_variants() -> list[dict[str, Any]]:
    """The service default first, then label scoring with each prompt version."""
    from stance.prompts import PROMPT_VERSIONS
    from stance.settings import StanceSettings

    per_version = {"method": "label-scoring"} if "method" in StanceSettings.model_fields else {}
    return [{}, *({**per_version, "prompt_version": v} for v in PROMPT_VERSIONS)]


async def stance_runs(
    gold: list[GoldItem],
    sample: list[GoldItem],
    base: dict[str, Any],
    variants: list[dict[str, Any]],
    reuse: list[Run],
) -> list[Run]:
    """The service default (first) always runs; an explicit variant found in ``reuse`` (an earlier
    report's runs, same gold) is taken from there instead of being scored again."""
    runs: dict[str, Run] = {}
    for n, variant in enumerate(variants):
        if any(_same_variant(variant, r) for r in runs.values()):
            continue  # the service default already ran it (e.g. "auto" resolved to label scoring)
        earlier = [r for r in reuse if r.meta.get("variant") == {**base, **variant}]
        if earlier:
            runs.setdefault(earlier[0].name, earlier[0])
            continue
        items = gold + sample if n == 0 else gold  # the sample's distribution: the default only
        console.print(f"stance variant {variant or 'service default'} on {len(items)} tweets")
        run = await stance_run_in_process(items, {**base, **variant})
        run.meta.update(default=n == 0, variant={**base, **variant})
        runs.setdefault(run.name, run)  # "auto" may resolve to one of the explicit variants
    return list(runs.values())


def save_runs(runs: list[Run], path: Path) -> None:
    payload = {"created_at": now_stamp(), "runs": [asdict(r) for r in runs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")


def load_runs(path: Path, *, with_default: bool = False) -> list[Run]:
    """Stance runs saved by an earlier report, marked with when they were measured; the service
    default's only when asked (it is the one that changes as the stance service does)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    runs = []
    for raw in payload["runs"]:
        if raw["task"] != "stance" or (raw["meta"].get("default") and not with_default):
            continue
        predictions = {k: Prediction(**v) for k, v in raw.pop("predictions").items()}
        run = Run(**raw, predictions=predictions)
        run.meta.setdefault("reused_from", payload["created_at"])
        runs.append(run)
    return runs


def _same_variant(variant: dict[str, Any], run: Run) -> bool:
    method = str(run.meta.get("method") or "")
    return bool(variant) and variant.get("prompt_version") == run.meta.get("prompt_version") and (
        "method" not in variant or method.startswith(str(variant["method"]))
    )


def lexicon_figures(
    items: list[GoldItem], emotion: Run, compounds: dict[str, float], threshold: float
) -> dict[str, Any]:
    """Polarity agreement of the model valence (±threshold) with VADER (±0.05)."""
    pairs = [(emotion.predictions[i.id].valence, compounds[i.id]) for i in items if i.id in emotion.predictions]
    pairs_v = [(v, c) for v, c in pairs if v is not None]
    agree = sum(sentiment_from_valence(v, threshold) == sentiment_from_valence(c, LEXICON_BAND) for v, c in pairs_v)
    signed = [(v, c) for v, c in pairs_v if abs(v) > threshold and abs(c) > LEXICON_BAND]
    return {
        "tweets": len(pairs_v),
        "polarity_agreement": agree / len(pairs_v) if pairs_v else 0.0,
        "sign_agreement_where_both_polar": sum((v > 0) == (c > 0) for v, c in signed) / len(signed) if signed else 0.0,
        "both_polar": len(signed),
    }


def read_bench(bench_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            found[path.name] = {"data": data, "mtime": path.stat().st_mtime}
    return found


def read_benchmarks(folder: Path) -> list[dict[str, Any]]:
    """The latest public-benchmark results, one per benchmark and split."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("bench-*.json"))]


def make_plots(data: ReportData, out: Path) -> None:
    gold, plots = data.gold, data.plots
    by_task: dict[str, list[TaskReport]] = {}
    for r in data.reports:
        by_task.setdefault(r.task, []).append(r)
        key = f"{r.task}:{r.run}"
        plots[f"confusion:{key}"] = confusion_plot(r.confusion, r.labels, f"{r.task}: {r.run}",
                                                   out / f"confusion-{r.task}-{slug(r.run)}.png")
        if r.ece is not None:
            plots[f"reliability:{key}"] = reliability_diagram(r.reliability, f"{r.task}: {r.run}", r.ece,
                                                              out / f"reliability-{r.task}-{slug(r.run)}.png")
    for task, reports in by_task.items():
        series = {"gold (test set)": reports[0].gold_distribution}
        series.update({f"predicted: {r.run}": r.predicted_distribution for r in reports})
        if task in data.sample_distributions:
            series["predicted on sample data"] = data.sample_distributions[task]
        if task == "sentiment" and data.lexicon_gold is not None:
            series["VADER (lexicon)"] = data.lexicon_gold.predicted_distribution
        plots[f"distribution:{task}"] = distribution_plot(series, TASKS[task], f"{task} labels",
                                                          out / f"distribution-{task}.png")
    for run in data.runs:
        if run.task == "sentiment" or (run.task == "stance" and not run.meta.get("default")):
            continue
        scored = [(i, run.predictions[i.id]) for i in gold if run.task in i.labels and i.id in run.predictions]
        right = [p.confidence or 0.0 for i, p in scored if p.label == i.labels[run.task]]
        wrong = [p.confidence or 0.0 for i, p in scored if p.label != i.labels[run.task]]
        plots[f"confidence:{run.task}"] = confidence_histogram(right, wrong, f"{run.task}: {run.name}",
                                                               out / f"confidence-{run.task}.png")
    emotion = next(r for r in data.runs if r.task == "emotion")
    points = {}
    for name, items in (("test set", data.gold), ("sample data", data.sample)):
        ids = [i.id for i in items if i.id in emotion.predictions]
        valences = [emotion.predictions[i].valence or 0.0 for i in ids]
        points[name] = (valences, [data.compounds[i] for i in ids])
    plots["valence_vs_lexicon"] = valence_vs_lexicon(points, f"valence ({emotion.name}) vs VADER",
                                                     out / "valence-vs-lexicon.png")


async def build(
    gold_path: Path, sample_path: Path, *, threshold: float, emotion_overrides: dict[str, Any],
    stance_overrides: dict[str, Any], variants: list[dict[str, Any]], limit: int | None, reuse: list[Run],
) -> ReportData:
    from gateway.quality import VaderLexicon

    sample, rejected = load_sample(sample_path)
    data = ReportData(gold_path, sample_path, read_gold(gold_path)[:limit], sample[:limit], threshold)
    if rejected:
        data.notes.append(f"{rejected} records of the sample data fail validation (as in a replay) and are left out.")
    everything = data.gold + data.sample
    console.print(f"emotion on {len(everything)} tweets")
    emotion = await asyncio.to_thread(emotion_run_with_fallback, everything, emotion_overrides, data.notes)
    stance = await stance_runs(data.gold, data.sample, stance_overrides, variants, reuse)
    data.runs = [emotion, *stance, sentiment_run(emotion, threshold)]
    data.reports = [r for r in (report_for(data.gold, run) for run in data.runs) if r is not None]
    for run in data.runs:
        if run.task != "stance" or run.meta.get("default"):
            data.failures[f"{run.task}: {run.name}"] = failures(data.gold, run, limit=8)
            data.sample_distributions[run.task] = distribution(
                [run.predictions[i.id].label for i in data.sample if i.id in run.predictions], TASKS[run.task]
            )
    vader = VaderLexicon()
    compounds = dict(zip([i.id for i in everything], vader.compounds([i.text for i in everything]), strict=True))
    data.compounds = compounds
    data.lexicon = {
        "test set": lexicon_figures(data.gold, emotion, compounds, threshold),
        "sample data": lexicon_figures(data.sample, emotion, compounds, threshold),
    }
    lexicon_run = Run("sentiment", f"lexicon {vader.model} (±{LEXICON_BAND})")
    for item in data.gold:
        compound = compounds[item.id]
        lexicon_run.predictions[item.id] = Prediction(sentiment_from_valence(compound, LEXICON_BAND), None)
    data.lexicon_gold = report_for(data.gold, lexicon_run)
    return data


def main(
    gold_path: Annotated[Path, typer.Option("--gold")] = Path("data/labelled/test.csv"),
    sample_path: Annotated[Path, typer.Option("--sample")] = Path("data/sample_tweets.json"),
    out: Annotated[Path, typer.Option(help="the markdown file")] = Path("REPORT.md"),
    plots_dir: Annotated[Path, typer.Option()] = Path("docs/report"),
    bench_dir: Annotated[Path, typer.Option()] = Path("bench/results"),
    benchmarks_dir: Annotated[
        Path, typer.Option(help="where `make evaluate BENCH=all` wrote bench-*.json")
    ] = Path("evaluation/results"),
    lessons: Annotated[Path, typer.Option(help="hand-written lessons, included verbatim")] = Path(
        "evaluation/lessons.md"
    ),
    valence_threshold: Annotated[float, typer.Option()] = 0.2,
    emotion_set: Annotated[list[str] | None, typer.Option()] = None,
    stance_set: Annotated[list[str] | None, typer.Option(help="applied to every stance variant")] = None,
    stance_variant: Annotated[
        list[str] | None,
        typer.Option(help="besides the service default, e.g. 'method=label-scoring,prompt_version=v1' (repeatable)"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="first N tweets of each set (a quick look)")] = None,
    runs_file: Annotated[Path, typer.Option(help="every run's predictions are saved here")] = Path(
        "evaluation/results/report-runs.json"
    ),
    reuse: Annotated[
        bool, typer.Option(help="take explicit stance variants from --runs-file instead of scoring them again")
    ] = False,
    reuse_default: Annotated[bool, typer.Option(help="with --reuse, the service default's run too")] = False,
) -> None:
    """Write REPORT.md and its plots from the test set, the sample data and the benchmark results."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    variants = (  # the service default always comes first
        [{}, *(parse_overrides(v.split(","), "--stance-variant") for v in stance_variant)] if stance_variant else None
    )
    data = asyncio.run(
        build(gold_path, sample_path, threshold=valence_threshold,
              emotion_overrides=parse_overrides(emotion_set, "--emotion-set"),
              stance_overrides=parse_overrides(stance_set, "--stance-set"),
              variants=variants or default_variants(), limit=limit,
              reuse=load_runs(runs_file, with_default=reuse_default) if reuse and runs_file.is_file() else [])
    )
    save_runs(data.runs, runs_file)
    for stale in plots_dir.glob("*.png"):
        stale.unlink()
    make_plots(data, plots_dir)
    data.bench = read_bench(bench_dir)
    data.benchmarks = read_benchmarks(benchmarks_dir)
    data.lessons = lessons.read_text(encoding="utf-8") if lessons.is_file() else ""
    out.write_text(render(data, out.parent), encoding="utf-8")
    console.print(f"wrote {out} and {len(data.plots)} plots in {plots_dir}")


if __name__ == "__main__":
    typer.run(main)
