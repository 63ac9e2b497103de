"""Emotion classifier throughput vs batch size, padded to the batch's longest vs length-bucketed.

    PYTHONPATH=. .venv/bin/python bench/emotion_bench.py [--tweets 256] [--threads N] [--model DIR]

The model has the exact shape of distilroberta-base (random weights; built at run time unless
--model names a directory), the texts have real tweet lengths (bench/workload.py). Both modes
run in the same process on the same texts: "padded" pads each poll batch to its longest tweet
(the service before bucketing); "bucketed" sorts by token length and pads per bucket of
EMOTION_BUCKET_SIZE rows (the service's default). Threads default to the CPU budget's share for
emotion on this host (deploy/local/cpu_budget.py with one emotion and one stance replica).
Writes bench/results/emotion.json and bench/results/emotion_batch.png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.workload import generate_texts, length_stats, tokenizer_corpus
from deploy.local.cpu_budget import available_cores, plan
from emotion.model import EmotionClassifier, load_classifier
from emotion.settings import EmotionSettings
from tests.support.tiny_models import build_distilroberta_shaped_emotion_model

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 8, 32, 64)


def build_model(directory: Path) -> Path:
    return build_distilroberta_shaped_emotion_model(directory / "distilroberta-shaped", tokenizer_corpus())


def budget_threads() -> int:
    return plan(available_cores(), emotion_replicas=1, stance_replicas=1).emotion_threads


def classifier(model: Path, threads: int, bucketed: bool, batch: int, **extra: Any) -> EmotionClassifier:
    buckets = {} if bucketed else {"bucket_size": max(batch, 1), "bucket_tokens": 1 << 30}
    return load_classifier(EmotionSettings(model=str(model), EMOTION_TORCH_THREADS=threads, **buckets, **extra))


def rate(clf: EmotionClassifier, texts: list[str], batch: int) -> float:
    """Tweets/s of ``classify`` on consecutive batches of ``batch`` texts (one warm-up batch first)."""
    wall, _ = timed(clf, texts, batch)
    return len(texts) / wall


def timed(clf: EmotionClassifier, texts: list[str], batch: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds to classify ``texts`` after one warm-up batch."""
    clf.classify(texts[:batch])
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), batch):
        clf.classify(texts[i : i + batch])
    return time.perf_counter() - start, time.process_time() - cpu


def mean_tokens(model: Path, texts: list[str]) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    ids = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    return round(sum(len(x) for x in ids) / len(ids), 1)


def sweep(model: Path, texts: list[str], threads: int) -> dict[str, dict[int, float]]:
    result: dict[str, dict[int, float]] = {"padded": {}, "bucketed": {}}
    for batch in BATCHES:
        for mode in ("padded", "bucketed"):
            result[mode][batch] = round(rate(classifier(model, threads, mode == "bucketed", batch), texts, batch), 2)
            print(f"batch {batch:3d} {mode:8s} {result[mode][batch]:7.2f} tweets/s", flush=True)
    return result


def plot(result: dict[str, dict[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, points in result.items():
        ax.plot(list(points), list(points.values()), marker="o", label=mode)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("poll batch size (tweets)")
    ax.set_ylabel("tweets/s")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU budget's)")
    parser.add_argument("--model", type=Path, default=None, help="a save_pretrained directory")
    args = parser.parse_args()
    threads = args.threads or budget_threads()
    texts = generate_texts(args.tweets)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp))
        tokens = mean_tokens(model, texts)
        print(f"{len(texts)} tweets, {tokens} tokens each on average, {threads} torch threads", flush=True)
        result = sweep(model, texts, threads)
    best = {mode: max(points.values()) for mode, points in result.items()}
    report = {
        "model": "distilroberta-base shape (6 layers, hidden 768, 12 heads, vocab 50265), random weights",
        "tweets": len(texts),
        "texts": {**length_stats(texts), "mean_tokens": tokens},
        "torch_threads": threads,
        "tweets_per_s": result,
        "bucketed_over_padded_at_best": round(best["bucketed"] / best["padded"], 3),
        "loadavg": os.getloadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "emotion.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(result, RESULTS / "emotion_batch.png", f"emotion classifier, {threads} thread(s), distilroberta shape")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
