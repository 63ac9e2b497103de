"""Stance benchmark: naive generation vs label scoring with prefix-cache reuse, same GGUF,
same prompt, same tweets; plus dev-set accuracy per prompt version. Not a test.

    .venv/bin/python bench/stance_bench.py [--gguf PATH] [--prompt-version v3] [--repeat 2]

Writes bench/results/stance.json. Speeds are tweets/s on this machine with --threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.logic import first_label_in
from stance.model_files import packaged_gemma_gguf
from stance.prompts import DEFAULT_PROMPT_VERSION, PROMPT_VERSIONS
from stance.scorer import ScorerIdentity

HERE = Path(__file__).resolve().parent


def load_devset(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def naive_predictor(llm: Llama, scorer: LlamaCppScorer, max_tokens: int, reuse: bool) -> Callable[[str], str | None]:
    """Per-tweet create_completion on the full prompt, then parse the generated text.

    ``reuse=False`` resets the context before every call (no KV reuse at all, which is also
    what the spec's tweet-first prompt gets); ``reuse=True`` leaves llama-cpp-python's own
    longest-prefix match in ``generate`` on, its default behaviour.
    """
    bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="ignore")

    def predict(text: str) -> str | None:
        if not reuse:
            llm.n_tokens = 0
        prompt = scorer.parts.render(text).removeprefix(bos)  # create_completion adds BOS itself
        out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1)
        return first_label_in(str(out["choices"][0]["text"]))  # type: ignore[index]

    return predict


def timed(predict: Callable[[str], str | None], texts: Sequence[str], repeat: int) -> tuple[list[str | None], float]:
    predictions: list[str | None] = []
    started = time.perf_counter()
    for _ in range(repeat):
        predictions = [predict(t) for t in texts]
    elapsed = time.perf_counter() - started
    return predictions, len(texts) * repeat / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: Gemma 3 270M from the PyPI package)")
    parser.add_argument("--prompt-version", default=DEFAULT_PROMPT_VERSION, choices=list(PROMPT_VERSIONS))
    parser.add_argument("--devset", type=Path, default=HERE / "stance_devset.jsonl")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stance.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=4, help="generation budget of the naive baseline")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the dev set for the speed runs")
    args = parser.parse_args()

    gguf = args.gguf or packaged_gemma_gguf()
    rows = load_devset(args.devset)
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    llm = load_llama(gguf, args.n_ctx, args.threads, 512)
    print(f"model {gguf.name}, {len(rows)} dev tweets, {args.threads} threads, prompt {args.prompt_version}")

    per_version: dict[str, Any] = {}
    speed: dict[str, Any] = {}
    for version in PROMPT_VERSIONS:
        started = time.perf_counter()
        scorer = LlamaCppScorer(llm, ScorerIdentity(gguf.name, version), calibrate=True)
        calibration_s = time.perf_counter() - started
        assert scorer.content_free is not None
        raw = [scorer.raw_distribution(t) for t in texts]
        raw_pred = [max(p, key=p.__getitem__) for p in raw]
        calibrated = [s.label for s in scorer.score_texts(texts)]
        main_run = version == args.prompt_version
        naive_pred, naive_tps = timed(naive_predictor(llm, scorer, args.max_tokens, reuse=False), texts,
                                      args.repeat if main_run else 1)
        per_version[version] = {
            "scoring_accuracy_raw": accuracy(raw_pred, gold),
            "scoring_accuracy_calibrated": accuracy(calibrated, gold),
            "naive_generation_accuracy": accuracy(naive_pred, gold),
            "naive_unparseable": sum(p is None for p in naive_pred),
            "content_free_probabilities": scorer.content_free,
            "calibration_setup_s": round(calibration_s, 3),
            "prefix_tokens": len(scorer.prefix_tokens),
        }
        if main_run:
            _, naive_reuse_tps = timed(naive_predictor(llm, scorer, args.max_tokens, reuse=True), texts, args.repeat)
            _, scoring_tps = timed(lambda t, s=scorer: s.score_texts([t])[0].label, texts, args.repeat)
            speed = {
                "a_naive_generation_tweets_per_s": round(naive_tps, 2),
                "a_naive_generation_with_llamacpp_prefix_match_tweets_per_s": round(naive_reuse_tps, 2),
                "b_label_scoring_prefix_cache_tweets_per_s": round(scoring_tps, 2),
                "speedup_b_over_a": round(scoring_tps / naive_tps, 2),
                "speedup_b_over_a_with_prefix_match": round(scoring_tps / naive_reuse_tps, 2),
                "a_accuracy": per_version[version]["naive_generation_accuracy"],
                "b_accuracy": per_version[version]["scoring_accuracy_calibrated"],
            }
        print(f"{version}: " + ", ".join(f"{k}={v}" for k, v in per_version[version].items()
                                          if not isinstance(v, dict)))

    result = {
        "model": gguf.name,
        "prompt_version": args.prompt_version,
        "dev_tweets": len(rows),
        "threads": args.threads,
        "max_tokens_naive": args.max_tokens,
        "repeat": args.repeat,
        "machine": platform.machine(),
        "speed": speed,
        "per_prompt_version": per_version,
    }
    print(json.dumps(speed, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
