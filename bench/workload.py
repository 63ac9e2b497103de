"""Benchmark inputs with real tweet lengths, generated from the repo's data/sample_tweets.json.

Each generated tweet takes one sample tweet as its template and keeps its word count (so the
length distribution is the sample's: about 115 characters on average, like real tweets), with
about half its words swapped for words drawn from the whole sample vocabulary, so no two texts
are identical (no cache can shortcut a repeat). Seeded: every run sees the same texts.
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_tweets.json"


def sample_texts() -> list[str]:
    texts = []
    for record in json.loads(SAMPLE.read_text()):
        content = ((record.get("payload") or {}).get("tweet") or {}).get("content")
        if isinstance(content, str) and content.strip():
            texts.append(content)
    return texts


def generate_texts(n: int, seed: int = 8) -> list[str]:
    rng = random.Random(seed)
    templates = sample_texts()
    vocabulary = sorted({word for text in templates for word in text.split()})
    out = []
    for i in range(n):
        words = templates[i % len(templates)].split()
        out.append(" ".join(rng.choice(vocabulary) if rng.random() < 0.5 else w for w in words))
    return out


def write_jsonl(path: Path, texts: list[str], id_base: int = 1_700_000_000_000_000_000) -> None:
    """The spec's nested layout, one record per line, 64-bit ids as strings."""
    with path.open("w") as out:
        for i, text in enumerate(texts):
            record = {
                "id": str(id_base + i),
                "user": {"username": f"Bench {i % 97}", "handle": f"@bench{i % 97}", "verified": False},
                "meta": {"created_at": f"2024-0{1 + i % 9}-{1 + i % 28:02d}T12:00:00Z", "hashtags": ["#bench"]},
                "payload": {"tweet": {"content": text}},
                "metrics": {"retweets": i % 13, "likes": i % 31},
            }
            out.write(json.dumps(record) + "\n")


def tokenizer_corpus() -> list[str]:
    """Local English text for the offline BPE: the sample tweets and the repo's own docs."""
    docs = [p.read_text(errors="ignore") for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]]
    lines = [line for doc in docs for line in doc.splitlines() if line.strip()]
    return sample_texts() * 20 + lines


def length_stats(texts: list[str]) -> dict[str, float]:
    lengths = [len(t) for t in texts]
    return {"mean_chars": round(statistics.mean(lengths), 1), "median_chars": statistics.median(lengths),
            "max_chars": max(lengths)}
