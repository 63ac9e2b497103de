"""Where issue 13's sentiment goal is lost: the MiniLM features, or the seven emotion scores.

    PYTHONPATH=.:libs:services .venv/bin/python bench/sentiment_ceiling_bench.py [--heads]

- ``probe``: a class-balanced linear probe straight on the frozen MiniLM features of TweetEval
  sentiment val (2,000 real tweets, human labels), scored as the valence map is (macro-recall,
  5-fold stratified CV), over an L2 grid; on the mean-pooled layers 1-6 (the emotion head's
  features), with the embedding layer, and with max-pooled or first-token vectors beside them.
- ``--heads``: emotion heads fitted as ``make train-emotion-head`` fits them (GoEmotions-Ekman
  train + TweetEval emotion train, 600 steps) for a grid of L2 / class power / TweetEval
  weight, each scored on GoEmotions dev, TweetEval emotion val and, through its own fitted
  valence map, TweetEval sentiment val (5-fold CV): the trade-off between the emotion goals and
  the sentiment goal. About two minutes a head on two cores; the features come from the
  training command's cache (computed once, minutes).

Reads ``../shared/data/labelled`` (or downloads it, as the training command does); never a
test split. Writes bench/results/sentiment_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from common.linear_head import softmax_rows
from emotion.logic import length_buckets
from emotion.model import pad_rows
from training.emotion_head import (
    VARIANTS,
    Config,
    FeatureStore,
    features_cache_dir,
    fit_head,
    goemotions,
    goemotions_report,
    rows_of,
    select,
    sentiment_figures,
    sentiment_val,
    temperature_figures,
    tweeteval_emotion,
    tweeteval_report,
)
from training.linear import fit_softmax, one_hot, recall_per_class, stratified_folds

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH = 384
PROBE_L2 = (0.01, 0.1, 0.3, 1.0, 3.0)
HEADS = ("L1-6:0.01:0.5:3", "L1-6:0.03:0.5:3", "L1-6:0.05:0.5:3", "L1-6:0.05:0.75:3", "L1-6:0.1:0.25:3",
         "L1-6:0.1:0.5:3", "L1-6:0.1:0.75:3", "L1-6:0.01:0.5:10", "L1-6:0.01:1.0:3")


def probe_cv(x: np.ndarray, gold: np.ndarray, l2: float) -> float:
    predicted = np.zeros(len(gold), dtype=int)
    for held in stratified_folds(gold, 5):
        keep = np.setdiff1d(np.arange(len(gold)), held)
        weight = (len(keep) / (3 * np.bincount(gold[keep], minlength=3)))[gold[keep]]
        fit = fit_softmax(x[keep], one_hot(gold[keep], 3).astype(float), l2=l2, sample_weight=weight, steps=400)
        predicted[held] = fit.logits(x[held]).argmax(axis=1)
    return round(float(recall_per_class(predicted, gold, 3).mean()), 4)


def pooled_blocks(store: FeatureStore, texts: list[str]) -> dict[str, np.ndarray]:
    """Per layer 0-6: the masked max and the first token's vector, each L2-normalised as the
    service's mean blocks are (the mean blocks come from the feature cache)."""
    encoder = store.encoder
    ids = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_length)["input_ids"]
    layers = len(encoder.layers)
    out = {name: np.zeros((len(ids), layers * WIDTH), dtype=np.float32) for name in ("max", "first")}
    for bucket in length_buckets([len(row) for row in ids], encoder.bucket_size, encoder.bucket_tokens):
        input_ids, mask = pad_rows([ids[i] for i in bucket], encoder.pad_id)
        hidden = encoder.forward(input_ids, mask)
        out["max"][bucket] = np.where(mask[..., None] > 0, hidden, -np.inf).max(axis=1)
        out["first"][bucket] = hidden[:, 0]
    return {name: _normalised(blocks, layers) for name, blocks in out.items()}


def _normalised(blocks: np.ndarray, layers: int) -> np.ndarray:
    per_layer = blocks.reshape(len(blocks), layers, WIDTH)
    return (per_layer / np.linalg.norm(per_layer, axis=-1, keepdims=True)).reshape(len(blocks), -1)


def probe(store: FeatureStore) -> dict[str, Any]:
    texts, gold = sentiment_val()
    mean = store.features(texts)
    extra = pooled_blocks(store, list(texts))
    inputs = {
        "mean layers 1-6 (the emotion head's features)": select(mean, range(1, 7)),
        "mean layers 0-6": select(mean, range(7)),
        "mean 1-6 + max 4-6": np.hstack([select(mean, range(1, 7)), select(extra["max"], range(4, 7))]),
        "mean 1-6 + max 1-6": np.hstack([select(mean, range(1, 7)), select(extra["max"], range(1, 7))]),
        "mean 1-6 + first token 1-6": np.hstack([select(mean, range(1, 7)), select(extra["first"], range(1, 7))]),
    }
    results = {}
    for name, x in inputs.items():
        results[name] = {str(l2): probe_cv(x, gold, l2) for l2 in PROBE_L2}
        print(f"probe [{name}]: " + ", ".join(f"L2 {k} {v:.3f}" for k, v in results[name].items()), flush=True)
    return results


def heads(store: FeatureStore, configs: list[str]) -> list[dict[str, Any]]:
    train = {s.name: (store.features(s.texts), s) for s in (goemotions("goemotions_ekman_train.csv"),
                                                          tweeteval_emotion("tweeteval_emotion_train.csv"))}
    go, tw = goemotions("goemotions_ekman_dev.csv"), tweeteval_emotion("tweeteval_emotion_val.csv")
    go_x, tw_x = store.features(go.texts), store.features(tw.texts)
    texts, gold = sentiment_val()
    sentiment_x = store.features(texts)
    rows = []
    for entry in configs:
        variant, l2, power, weight = entry.split(":")
        config = Config(variant, float(l2), float(power), float(weight))
        began = time.perf_counter()
        fit, layers = fit_head(train, config, 600), VARIANTS[variant]
        raw = fit.logits(select(go_x, layers))
        temperature, _ = temperature_figures(raw, go)
        scores = rows_of(softmax_rows(fit.logits(select(sentiment_x, layers)) / temperature))
        _, sentiment = sentiment_figures(scores, gold, "bench")
        row = {**config.as_dict(), "temperature": round(temperature, 3),
               "goemotions_dev_macro_f1": goemotions_report(softmax_rows(raw / temperature), go)["macro_f1"],
               "tweeteval_val_macro_f1": tweeteval_report(
                   softmax_rows(fit.logits(select(tw_x, layers)) / temperature), tw)["macro_f1"],
               "sentiment_cv_macro_recall": sentiment["fitted_cv"]["macro_recall"],
               "fit_s": round(time.perf_counter() - began)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", action="store_true", help="also fit the emotion-head grid (~2 min a head)")
    parser.add_argument("--configs", default=",".join(HEADS), help="VARIANT:L2:CLASS_POWER:TWEET_WEIGHT,...")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    store = FeatureStore(args.threads, features_cache_dir())
    results: dict[str, Any] = {"goal_sentiment_macro_recall": 0.63, "goal_goemotions_dev_macro_f1": 0.55,
                               "probe_sentiment_cv_macro_recall": probe(store)}
    if args.heads:
        results["heads"] = heads(store, [c for c in args.configs.split(",") if c])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sentiment_ceiling.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
