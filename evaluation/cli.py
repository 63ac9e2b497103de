"""``python -m evaluation``: score a gold CSV against the running index or the models.

    python -m evaluation --gold data/labelled/test.csv --source models
    python -m evaluation --gold data/labelled/test.csv --source index [--gateway-url http://127.0.0.1:8000]
    python -m evaluation --gold data/labelled/test.csv --write-feed out/gold.jsonl   # then: make replay

The table goes to the terminal; the figures, every prediction and the reliability diagrams go
to ``--out-dir``. Exit codes: 0 done, 2 unusable gold file or options.
"""

from __future__ import annotations

import asyncio
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from evaluation.bench_runs import run_benchmark
from evaluation.benchmarks import BENCHMARKS
from evaluation.evaluate import (
    print_bench_table,
    print_table,
    reliability_pngs,
    report_for,
    results_payload,
    write_json,
)
from evaluation.gold import GoldFormatError, GoldItem, read_gold, write_feed
from evaluation.public_data import PublicDataError
from evaluation.sources import (
    Run,
    emotion_run_with_fallback,
    fetch_from_elasticsearch,
    fetch_from_gateway,
    runs_from_documents,
    sentiment_run,
    stance_run_in_process,
)

console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # logs and CI: a readable table
DEFAULT_GOLD = Path("data/labelled/test.csv")
DEFAULT_OUT = Path("evaluation/results")


class SourceKind(str, Enum):
    INDEX = "index"
    MODELS = "models"


def parse_overrides(pairs: list[str] | None, option: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        overrides[key.strip()] = value
    return overrides


async def collect_runs(
    gold: list[GoldItem],
    source: SourceKind,
    *,
    es_url: str,
    index: str,
    gateway_url: str | None,
    emotion_overrides: dict[str, Any],
    stance_overrides: dict[str, Any],
    prompt_versions: list[str],
    valence_threshold: float,
) -> list[Run]:
    tasks = {task for item in gold for task in item.labels}
    runs: list[Run] = []
    if source is SourceKind.INDEX:
        ids = [item.tweet_id for item in gold]
        if gateway_url:
            async with httpx.AsyncClient(base_url=gateway_url.rstrip("/"), timeout=30) as client:
                documents = await fetch_from_gateway(client, ids)
        else:
            documents = await fetch_from_elasticsearch(es_url, index, ids)
        runs = runs_from_documents(gold, documents)
    else:
        if tasks & {"emotion", "sentiment"}:
            notes: list[str] = []
            runs.append(await asyncio.to_thread(emotion_run_with_fallback, gold, emotion_overrides, notes))
            for note in notes:
                console.print(f"[yellow]{note}[/yellow]")
        if "stance" in tasks:
            versions: list[str | None] = [*prompt_versions] or [None]
            for version in versions:
                overrides = {**stance_overrides, **({"prompt_version": version} if version else {})}
                runs.append(await stance_run_in_process(gold, overrides))
    if "sentiment" in tasks:
        runs += [sentiment_run(r, valence_threshold) for r in runs if r.task == "emotion" and r.predictions]
    return runs


def evaluate(
    gold_path: Annotated[Path, typer.Option("--gold", help="CSV: id,text,emotion,stance,sentiment")] = DEFAULT_GOLD,
    source: Annotated[SourceKind, typer.Option(help="the running index, or the models in-process")] = SourceKind.MODELS,
    es_url: Annotated[str, typer.Option(envvar="GATEWAY_ES_URL")] = "http://127.0.0.1:9200",
    index: Annotated[str, typer.Option(envvar="GATEWAY_INDEX")] = "tweets",
    gateway_url: Annotated[
        str | None, typer.Option(help="read GET /tweets/{id} from the API instead of Elasticsearch")
    ] = None,
    emotion_set: Annotated[
        list[str] | None, typer.Option(help="EmotionSettings override, e.g. backend=minilm-zero-shot (repeatable)")
    ] = None,
    stance_set: Annotated[
        list[str] | None, typer.Option(help="StanceSettings override, e.g. gguf_path=/m.gguf (repeatable)")
    ] = None,
    prompt_version: Annotated[
        list[str] | None, typer.Option(help="one stance run per prompt version (repeatable; default: the settings')")
    ] = None,
    valence_threshold: Annotated[float, typer.Option(help="|valence| above this is positive/negative")] = 0.2,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N gold rows")] = None,
    out_dir: Annotated[Path, typer.Option(help="JSON and reliability diagrams go here")] = DEFAULT_OUT,
    bench: Annotated[
        str | None,
        typer.Option(help="a public benchmark instead of --gold: " + ", ".join(BENCHMARKS) + ", or all"),
    ] = None,
    split: Annotated[
        str, typer.Option(help="with --bench: dev (the dev/val split) or test (never downloaded)")
    ] = "dev",
    bench_file: Annotated[Path | None, typer.Option("--file", help="with --bench: read this CSV instead")] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="with --bench: only methods whose name contains this (repeatable)")
    ] = None,
    write_feed_to: Annotated[
        Path | None,
        typer.Option("--write-feed", help="write the gold texts as JSON Lines for `make replay FORMAT=jsonl` and exit"),
    ] = None,
) -> None:
    """Accuracy, macro-F1, confusion matrix and calibration (ECE) per task, model and prompt version."""
    if bench:
        run_benchmarks(bench, split, bench_file, method, limit, out_dir)
        return
    try:
        gold = read_gold(gold_path)[:limit]
    except (GoldFormatError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if write_feed_to:
        write_feed(gold, write_feed_to)
        console.print(f"wrote {len(gold)} tweets to {write_feed_to}: replay them with "
                      f"`make replay FILE={write_feed_to} FORMAT=jsonl`, then run --source index")
        return
    runs = asyncio.run(
        collect_runs(
            gold,
            source,
            es_url=es_url,
            index=index,
            gateway_url=gateway_url,
            emotion_overrides=parse_overrides(emotion_set, "--emotion-set"),
            stance_overrides=parse_overrides(stance_set, "--stance-set"),
            prompt_versions=prompt_version or [],
            valence_threshold=valence_threshold,
        )
    )
    reports = [r for r in (report_for(gold, run) for run in runs) if r is not None]
    print_table(reports, console)
    for run in runs:
        if run.missing:
            console.print(f"[yellow]{run.task} {run.name}: {len(run.missing)} gold tweets have no label[/yellow]")
    path = write_json(results_payload(gold_path, gold, source.value, runs, reports), out_dir / f"{source.value}.json")
    diagrams = reliability_pngs(reports, out_dir)
    console.print(f"results: {path}; reliability diagrams: {len(diagrams)} in {out_dir}")


def run_benchmarks(
    bench: str, split: str, file: Path | None, methods: list[str] | None, limit: int | None, out_dir: Path
) -> None:
    names = list(BENCHMARKS) if bench == "all" else [bench]
    if any(name not in BENCHMARKS for name in names) or split not in ("dev", "test"):
        console.print(f"[red]--bench must be one of {', '.join(BENCHMARKS)} or all, --split dev or test[/red]")
        raise typer.Exit(2)
    for name in names:
        try:
            payload = run_benchmark(name, split, file, methods, limit, out_dir)
        except (PublicDataError, ValueError, OSError) as exc:
            console.print(f"[red]{name}: {exc}[/red]")
            raise typer.Exit(2) from exc
        print_bench_table(payload, console)


def main() -> None:
    typer.run(evaluate)
