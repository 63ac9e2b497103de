"""Fit the stance head for the configured GGUF from real, human-labelled tweets.

    make fit-stance-head                      # the GGUF the stance service would load
    .venv/bin/python -m training.stance_head --gguf PATH [--out FILE] [--threads 2]

Training data, real posts only:

- TweetEval stance train (SemEval-2016), each tweet with its target named in the prompt;
- the train split of ``data/labelled/annotated_stance.csv`` (stance toward the main subject).

For every tweet the GGUF runs the serving prompt once (the target in the cached prefix) and the
head reads what that one decode gives: 1,024 of the next-token logits (a linear image of the
final hidden state), the three label log-probabilities, the tweet's MiniLM embedding and that
embedding times the target's. The L2 strength, how much the GGUF's columns count and the weight
of an annotated tweet are chosen on the dev splits (TweetEval stance val, the annotated dev
split); a temperature fitted on the training rows' out-of-fold logits calibrates the
probabilities. The head is written to the head cache under the GGUF's SHA-256 (the service
finds it there), or to ``--out``. Features are cached per GGUF, prompt and text, so a rerun
only fits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.events import STANCE_LABELS
from common.linear_head import LinearHead, softmax_rows
from common.settings import pipeline_home
from evaluation.benchmarks import (
    BenchItem,
    Prediction,
    items_from_rows,
    max_share_gap,
    score_benchmark,
)
from evaluation.public_data import read_rows
from training.annotations import bench_items, read_annotated
from training.linear import fit_softmax, fit_temperature, one_hot
from training.stance_probe import logit_ids

ROOT = Path(__file__).resolve().parent.parent
HEAD_VERSION = "h3"
LOGIT_COUNT = 1024  # logits the head reads (>= any small model's hidden size)
STEPS = 800
CHUNK = 100  # tweets per cached feature file


@dataclass
class LabelledSet:
    name: str
    benchmark: str  # how it is scored (evaluation.benchmarks)
    items: list[BenchItem]

    @property
    def labels(self) -> list[str]:
        return [item.gold[0] for item in self.items]


def training_sets() -> tuple[list[LabelledSet], list[LabelledSet]]:
    """(train sets, dev sets); an annotated dev tweet drawn from TweetEval train is kept out of
    the SemEval training rows too, so no dev text is ever fitted on."""
    annotated = read_annotated()
    dev_texts = {t.text for t in annotated if t.split == "dev"}

    semeval_train = [
        i
        for i in items_from_rows("tweeteval-stance", read_rows("tweeteval_stance_train.csv"))
        if i.text not in dev_texts
    ]
    train = [
        LabelledSet("tweeteval-stance train", "tweeteval-stance", semeval_train),
        LabelledSet("annotated train", "annotated-stance", bench_items(annotated, "train")),
    ]
    dev = [
        LabelledSet(
            "tweeteval-stance val",
            "tweeteval-stance",
            items_from_rows("tweeteval-stance", read_rows("tweeteval_stance_val.csv")),
        ),
        LabelledSet("annotated dev", "annotated-stance", bench_items(annotated, "dev")),
    ]
    return train, dev


def features_cache_dir() -> Path:
    return pipeline_home() / "features" / "stance"


class FeatureExtractor:
    """The serving scorer's features for (text, target) pairs, cached on disk per GGUF+prompt."""

    def __init__(self, llm: Any, encoder: Any, gguf_sha: str) -> None:
        self.llm = llm  # stance.llama_scorer.LlamaCppScorer
        self.encoder = encoder  # stance.encoder.MiniLMEncoder
        self.ids = logit_ids(self.llm._llm.n_vocab(), LOGIT_COUNT)
        prompt_version = self.llm.identity.prompt_version
        self.key = hashlib.sha256(f"{gguf_sha}:{prompt_version}:{len(self.ids)}".encode()).hexdigest()[:16]
        self.target_vectors: dict[str, np.ndarray] = {}

    def rows(self, items: Sequence[BenchItem]) -> np.ndarray:
        """Feature rows in the order of ``items``; computed in cached chunks of one target, so
        an interrupted run resumes where it stopped."""
        from stance.logic import group_by_target
        from stance.prompts import target_phrase

        rows: list[np.ndarray | None] = [None] * len(items)
        done = 0
        for target, positions in group_by_target([item.target for item in items]).items():
            if target not in self.target_vectors:
                self.target_vectors[target] = self.encoder.embed([target_phrase(target)])[0]
            for start in range(0, len(positions), CHUNK):
                chunk = positions[start : start + CHUNK]
                block = self._chunk(target, [items[i].text for i in chunk])
                for i, row in zip(chunk, block, strict=True):
                    rows[i] = row
                done += len(chunk)
                print(f"  {done}/{len(items)} tweets", flush=True)
        return np.vstack([r for r in rows if r is not None])

    def _chunk(self, target: str, texts: list[str]) -> np.ndarray:
        from stance.probe_scorer import probe_features

        digest = hashlib.sha256("\x00".join([target, *texts]).encode()).hexdigest()[:16]
        path = features_cache_dir() / f"{self.key}-{digest}.npy"
        if path.is_file():
            return np.asarray(np.load(path))
        llm_rows = [self.llm.logit_features(text, self.ids, target) for text in texts]
        block = probe_features(llm_rows, self.encoder.embed(texts), self.target_vectors[target])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, block)
        return block


def predictions(probabilities: np.ndarray) -> list[Prediction]:
    return [
        Prediction(STANCE_LABELS[int(row.argmax())], {label: float(row[i]) for i, label in enumerate(STANCE_LABELS)})
        for row in probabilities
    ]


@dataclass(frozen=True)
class Choice:
    """One point of the settings grid chosen on dev."""

    l2: float
    llm_penalty: float  # l2 factor on the GGUF's columns (4 = those features count half)
    annotated_weight: float  # weight of an annotated tweet relative to a SemEval one

    @property
    def key(self) -> str:
        return f"l2={self.l2} llm_penalty={self.llm_penalty} annotated_weight={self.annotated_weight}"


# The region an earlier, wider search on the same dev splits pointed to (docs/stance.md has it).
GRID = tuple(Choice(l2, p, w) for l2 in (0.2, 0.3) for p in (4.0, 8.0) for w in (3.0, 5.0))
FOLDS = 5  # out-of-fold logits on train fit the temperature


def fit(x: np.ndarray, labels: Sequence[str], annotated: np.ndarray, llm_columns: int, choice: Choice) -> LinearHead:
    """Multinomial logistic regression over the standardised features, classes weighted as they
    come (balancing them was worse on dev)."""
    targets = one_hot([STANCE_LABELS.index(label) for label in labels], len(STANCE_LABELS))
    weights = np.where(annotated, choice.annotated_weight, 1.0)
    penalty = np.ones(x.shape[1])
    penalty[:llm_columns] = choice.llm_penalty
    return fit_softmax(x, targets, l2=choice.l2, sample_weight=weights, penalty=penalty, steps=STEPS)


def out_of_fold_temperature(
    x: np.ndarray, labels: Sequence[str], annotated: np.ndarray, llm_columns: int, choice: Choice
) -> float:
    """The temperature that calibrates held-out logits: each training row's logits come from a
    fit that did not see it (``FOLDS`` folds), so no dev tweet is used for calibration."""
    folds = np.random.default_rng(13).integers(0, FOLDS, len(labels))
    logits = np.zeros((len(labels), len(STANCE_LABELS)))
    for k in range(FOLDS):
        train = folds != k
        fitted = fit(
            x[train], [y for y, t in zip(labels, train, strict=True) if t], annotated[train], llm_columns, choice
        )
        logits[~train] = fitted.logits(x[~train])
    gold = one_hot([STANCE_LABELS.index(label) for label in labels], len(STANCE_LABELS)) > 0
    return fit_temperature(logits, gold)


def evaluate(
    fitted: LinearHead, dev_sets: Sequence[LabelledSet], features: dict[str, np.ndarray], temperature: float = 1.0
) -> dict[str, Any]:
    out = {}
    for labelled in dev_sets:
        probabilities = softmax_rows(fitted.logits(features[labelled.name]) / temperature)
        result = score_benchmark(labelled.benchmark, labelled.items, predictions(probabilities))
        result["max_share_gap_points"] = max_share_gap(result)
        out[labelled.name] = result
    return out


def main() -> None:
    from stance.head import StanceHead
    from stance.model_files import fitted_head_path, gguf_sha256
    from stance.probe_scorer import ENCODER_FEATURE, TARGET_FEATURE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: the one the stance service is configured with)")
    parser.add_argument("--prompt-version", help="default: STANCE_PROMPT_VERSION (v5)")
    parser.add_argument("--out", type=Path, help="write the head here instead of the head cache")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "stance_head.json")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("STANCE_N_THREADS", "2")))
    parser.add_argument("--limit", type=int, help="only the first N tweets of each set (a smoke run)")
    args = parser.parse_args()

    from evaluation.sources import stance_settings
    from stance.encoder import MINILM_REVISION, MiniLMEncoder
    from stance.llama_scorer import LlamaCppScorer, load_llama
    from stance.scorer import ScorerIdentity

    overrides: dict[str, Any] = {}
    if args.gguf:
        overrides["gguf_path"] = args.gguf
    if args.prompt_version:
        overrides["prompt_version"] = args.prompt_version
    settings = stance_settings(overrides)
    gguf = Path(settings.resolved_gguf_path)
    started = time.perf_counter()
    sha = gguf_sha256(gguf)
    llm = LlamaCppScorer(
        load_llama(gguf, settings.n_ctx, args.threads, settings.n_batch),
        ScorerIdentity(gguf.name, settings.prompt_version),
        calibrate=False,
        max_tweet_tokens=settings.max_tweet_tokens,
    )
    encoder = MiniLMEncoder(args.threads)
    extractor = FeatureExtractor(llm, encoder, sha)
    train_sets, dev_sets = training_sets()
    if args.limit:
        for labelled in [*train_sets, *dev_sets]:
            labelled.items = labelled.items[: args.limit]
    print(f"GGUF {gguf.name} (sha256 {sha[:12]}…), prompt {settings.prompt_version}", flush=True)
    features = {}
    for labelled in [*train_sets, *dev_sets]:
        print(f"{labelled.name}: {len(labelled.items)} tweets", flush=True)
        features[labelled.name] = extractor.rows(labelled.items)
    feature_seconds = time.perf_counter() - started

    fit_started = time.perf_counter()
    x = np.vstack([features[s.name] for s in train_sets])
    labels = [label for s in train_sets for label in s.labels]
    annotated = np.concatenate([np.full(len(s.items), s.benchmark == "annotated-stance") for s in train_sets])
    llm_columns = len(extractor.ids) + len(STANCE_LABELS)
    grid: dict[str, Any] = {}
    best: tuple[float, Choice | None, LinearHead | None] = (-1.0, None, None)
    for choice in GRID:
        fitted = fit(x, labels, annotated, llm_columns, choice)
        figures = evaluate(fitted, dev_sets, features)
        mean_score = float(np.mean([f["score"] for f in figures.values()]))
        grid[choice.key] = {
            "mean_dev_score": round(mean_score, 4),
            **{k: {m: v[m] for m in ("score", "max_share_gap_points", "ece")} for k, v in figures.items()},
        }
        print(choice.key, json.dumps(grid[choice.key]), flush=True)
        if mean_score > best[0]:
            best = (mean_score, choice, fitted)
    _, chosen, full = best
    assert chosen is not None and full is not None
    temperature = out_of_fold_temperature(x, labels, annotated, llm_columns, chosen)
    meta = {
        "version": HEAD_VERSION,
        "model": gguf.name,
        "gguf_sha256": sha,
        "hidden_size": llm.hidden_size,
        "prompt_version": settings.prompt_version,
        "features": ["logits", "label_logprobs", ENCODER_FEATURE, TARGET_FEATURE],
        "l2": chosen.l2,
        "llm_penalty": chosen.llm_penalty,
        "annotated_weight": chosen.annotated_weight,
        "steps": STEPS,
        "temperature": round(temperature, 4),
        "trained_on": {s.name: len(s.items) for s in train_sets},
        "encoder_revision": MINILM_REVISION,
    }
    # The temperature folded into the weights: softmax(z / T) is a linear map with W / T, b / T.
    head = StanceHead(
        full.mean,
        full.scale,
        full.weights / temperature,
        full.bias / temperature,
        STANCE_LABELS,
        meta,
        np.asarray(extractor.ids, np.int64),
    )
    fit_seconds = time.perf_counter() - fit_started
    out = args.out or fitted_head_path(sha, settings.prompt_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    head.save(out)
    shipped = evaluate(head, dev_sets, features)
    result = {
        "gguf": gguf.name,
        "gguf_sha256": sha,
        "prompt_version": settings.prompt_version,
        "head": str(out),
        "chosen": {"key": chosen.key, "temperature": round(temperature, 4)},
        "sizes": {s.name: len(s.items) for s in [*train_sets, *dev_sets]},
        "dev_before_temperature": evaluate(full, dev_sets, features),
        "dev_shipped_head": shipped,
        "grid": grid,
        "seconds": {
            "features": round(feature_seconds, 1),
            "fitting": round(fit_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "load_average": os.getloadavg(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    for set_name, figures in shipped.items():
        print(
            f"{set_name}: {figures['metric']} {figures['score']}, ECE {figures['ece']}, "
            f"share gap {figures['max_share_gap_points']} points, predicted {figures['predicted_share']}"
        )
    seconds = result["seconds"]
    print(f"wrote {out}; took {seconds['total']} s ({seconds['features']} s features, {seconds['fitting']} s fitting)")
    print(f"figures in {args.results}")


if __name__ == "__main__":
    main()
