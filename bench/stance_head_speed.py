"""Stance scorer speed, before and after the h3 head, in one run on real tweets. Not a test.

    PYTHONPATH=. .venv/bin/python bench/stance_head_speed.py [--tweets 200] [--rounds 3] [--threads 2]

"Before" is probe-h2 on prompt v4 (the default until h3), "after" the shipped default (probe-h3
on prompt v5, target in the prefix). Both run the same real tweets (TweetEval stance val, its
targets named for h3 as the benchmark does; none named for h2, whose prompt has no target),
alternating round by round so a busy neighbour slows both alike. Writes
bench/results/stance_head_speed.json with tweets/s per round, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from evaluation.benchmarks import items_from_rows
from evaluation.public_data import read_rows
from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.logic import group_by_target
from stance.model_files import gguf_sha256, packaged_gemma_gguf
from stance.probe_scorer import DEFAULT_HEAD_PATH, choose_local_scorer
from stance.scorer import ScorerIdentity

HERE = Path(__file__).resolve().parent
H2_HEAD = HERE.parent / "tests" / "unit" / "stance" / "data" / "stance_head_h2.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stance_head_speed.json")
    args = parser.parse_args()

    gguf = packaged_gemma_gguf()
    sha = gguf_sha256(gguf)
    items = items_from_rows("tweeteval-stance", read_rows("tweeteval_stance_val.csv"))[: args.tweets]
    scorers: dict[str, Any] = {}
    variants = (("before: probe-h2 v4", "v4", H2_HEAD), ("after: probe-h3 v5", "v5", DEFAULT_HEAD_PATH))
    for name, version, head in variants:
        identity = ScorerIdentity(gguf.name, version)
        llm = LlamaCppScorer(load_llama(gguf, 2048, args.threads, 512), identity, calibrate=False)
        scorers[name] = choose_local_scorer(llm, "probe", head, args.threads, sha)
    rates: dict[str, list[float]] = {name: [] for name in scorers}
    for _ in range(args.rounds):
        for name, scorer in scorers.items():
            named = name.startswith("after")
            groups = group_by_target([i.target if named else "" for i in items])
            started = time.perf_counter()
            for target, positions in groups.items():
                scorer.score_texts([items[i].text for i in positions], target or None)
            rates[name].append(len(items) / (time.perf_counter() - started))
            print(f"{name}: {rates[name][-1]:.2f} tweets/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    before, after = medians.values()
    result = {
        "gguf": gguf.name,
        "tweets": len(items),
        "threads": args.threads,
        "tweets_per_s": {name: [round(v, 2) for v in values] for name, values in rates.items()},
        "median_tweets_per_s": {name: round(v, 2) for name, v in medians.items()},
        "after_over_before": round(after / before, 3),
        "prefix_tokens": {name: len(s._llm.prefix_tokens) for name, s in scorers.items()},
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
