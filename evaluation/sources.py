"""Where predictions come from: the running index (Elasticsearch or the gateway API) or the
models in-process, loaded exactly as the services load them.

Each source returns :class:`Run` objects: one task, one model / prompt version / method, and
a prediction per gold id it could score. Tweets an index has not labelled are counted as
missing, never guessed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from evaluation.gold import GoldItem, sentiment_from_valence, sentiment_probabilities
from gateway.documents import scores_from_stored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float | None
    scores: dict[str, float] = field(default_factory=dict)
    valence: float | None = None
    # negative/neutral/positive from the emotion backend's fitted valence map (empty: none fitted,
    # sentiment is the thresholded valence)
    sentiment_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    task: str  # emotion | stance | sentiment
    name: str  # model, prompt version and method: what the figures are "per"
    meta: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # gold id -> prediction
    missing: list[str] = field(default_factory=list)  # gold ids the source had no label for
    seconds: float | None = None  # in-process inference time for the whole set


def stance_run_name(model: str, prompt_version: str | None, method: str | None) -> str:
    return " · ".join(part for part in (model, prompt_version, method) if part)


def sentiment_run(emotion: Run, threshold: float) -> Run:
    """Sentiment from the emotion backend's fitted valence map where it has one, else from the
    sign of the valence (±``threshold`` bounds neutral)."""
    run = Run("sentiment", emotion.name, {**emotion.meta, "valence_threshold": threshold}, missing=emotion.missing)
    for gold_id, p in emotion.predictions.items():
        if p.valence is None:
            run.missing.append(gold_id)
            continue
        if p.sentiment_scores:
            label = max(p.sentiment_scores, key=p.sentiment_scores.__getitem__)
            confidence: float | None = p.sentiment_scores[label]
        else:
            label = sentiment_from_valence(p.valence, threshold)
            confidence = sentiment_probabilities(p.scores)[label] if p.scores else None
        run.predictions[gold_id] = Prediction(label, confidence, valence=p.valence)
    return run


# ---- the index ----------------------------------------------------------------------------


def _from_label_doc(doc: dict[str, Any]) -> Prediction:
    scores = scores_from_stored(doc.get("scores"))
    label = str(doc["label"])
    confidence = scores.get(label, doc.get("score"))
    valence = doc.get("valence")
    return Prediction(
        label,
        float(confidence) if confidence is not None else None,
        scores,
        float(valence) if valence is not None else None,
    )


def runs_from_documents(gold: Sequence[GoldItem], documents: dict[str, dict[str, Any] | None]) -> list[Run]:
    """Group stored labels by model / prompt version / method; ``documents`` maps tweet id to
    its stored (or public) document, ``None`` when the tweet is not in the index."""
    runs: dict[tuple[str, str], Run] = {}
    missing: dict[str, list[str]] = {"emotion": [], "stance": []}
    for item in gold:
        doc = documents.get(item.tweet_id) or {}
        for task in ("emotion", "stance"):
            if task not in item.labels and not (task == "emotion" and "sentiment" in item.labels):
                continue
            label_doc = doc.get(task)
            if not label_doc or not label_doc.get("label"):
                missing[task].append(item.id)
                continue
            model = str(label_doc.get("model") or "unknown")
            version = label_doc.get("prompt_version") if task == "stance" else None
            method = label_doc.get("method") if task == "stance" else None
            name = stance_run_name(model, version, method)
            run = runs.setdefault(
                (task, name),
                Run(task, name, {"model": model, "prompt_version": version, "method": method,
                                 "provider": label_doc.get("provider")}),
            )
            run.predictions[item.id] = _from_label_doc(label_doc)
    result = list(runs.values())
    for run in result:
        run.missing = list(missing[run.task])
    for task, ids in missing.items():
        if ids and not any(r.task == task for r in result):
            result.append(Run(task, "none", {}, missing=list(ids)))
    return result


async def fetch_from_elasticsearch(
    es_url: str, index: str, tweet_ids: Sequence[str], *, chunk: int = 500
) -> dict[str, dict[str, Any] | None]:
    """Stored documents by ``_mget`` (they carry the prompt version the public API omits)."""
    found: dict[str, dict[str, Any] | None] = {}
    async with httpx.AsyncClient(base_url=es_url.rstrip("/"), timeout=30) as client:
        for start in range(0, len(tweet_ids), chunk):
            ids = list(tweet_ids[start : start + chunk])
            response = await client.post(f"/{index}/_mget", json={"ids": ids})
            response.raise_for_status()
            for doc in response.json()["docs"]:
                found[str(doc["_id"])] = doc.get("_source") if doc.get("found") else None
    return found


async def fetch_from_gateway(
    client: httpx.AsyncClient, tweet_ids: Sequence[str], *, concurrency: int = 8
) -> dict[str, dict[str, Any] | None]:
    """``GET /tweets/{id}`` for each tweet on ``client`` (based at the gateway); 404 = not indexed."""
    found: dict[str, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(tweet_id: str) -> None:
        async with gate:
            response = await client.get(f"/tweets/{tweet_id}")
        if response.status_code == 404:
            found[tweet_id] = None
            return
        response.raise_for_status()
        found[tweet_id] = response.json()

    await asyncio.gather(*(one(t) for t in tweet_ids))
    return found


# ---- the models, in-process ---------------------------------------------------------------


def emotion_run_in_process(gold: Sequence[GoldItem], overrides: dict[str, Any], batch_size: int = 32) -> Run:
    """The classifier ``load_classifier`` builds from ``EmotionSettings`` (env + overrides)."""
    from emotion.logic import normalise_scores, valence_map_for
    from emotion.model import load_classifier
    from emotion.settings import EmotionSettings

    settings = EmotionSettings(**overrides)
    classifier = load_classifier(settings)
    valence_map = valence_map_for(classifier)
    run = Run(
        "emotion",
        classifier.model_id,
        {
            "model": classifier.model_id,
            "revision": classifier.revision,
            "backend": settings.backend,
            "valence_map": valence_map.name,
        },
    )
    started = time.perf_counter()
    for start in range(0, len(gold), batch_size):
        batch = gold[start : start + batch_size]
        for item, raw in zip(batch, classifier.classify([i.text for i in batch]), strict=True):
            probs = normalise_scores(raw)
            label = max(probs, key=probs.__getitem__)
            row = {**raw, **probs}  # raw may carry the classifier's own sentiment (SENTIMENT_KEYS)
            sentiment = valence_map.sentiment(row)[1] if valence_map.fitted else {}
            run.predictions[item.id] = Prediction(label, probs[label], probs, valence_map.valence(row), sentiment)
    run.seconds = time.perf_counter() - started
    return run


def emotion_run_with_fallback(items: Sequence[GoldItem], overrides: dict[str, Any], notes: list[str]) -> Run:
    """The configured classifier; when the production model is not downloaded, the offline
    MiniLM fallback that ``make up`` would use, with a note saying so."""
    from common.errors import ModelUnavailableError

    try:
        return emotion_run_in_process(items, overrides)
    except ModelUnavailableError as exc:
        notes.append(
            f"The production emotion model is not downloaded here ({exc}); emotion figures come from the offline "
            "fallback `EMOTION_BACKEND=minilm-head`, as `make up` would use."
        )
        return emotion_run_in_process(items, {**overrides, "backend": "minilm-head"})


def stance_settings(overrides: dict[str, Any]) -> Any:
    """``StanceSettings`` from the environment plus ``overrides``; when the configured GGUF is
    absent (no ``make models``), the offline gemma GGUF from PyPI, recorded in the run's meta."""
    from stance.model_files import packaged_gemma_gguf
    from stance.settings import StanceSettings

    settings = StanceSettings(**overrides)
    if settings.provider == "llamacpp" and not Path(settings.resolved_gguf_path).expanduser().is_file():
        log.warning("stance GGUF %s is missing: using the PyPI gemma-3-270m GGUF", settings.resolved_gguf_path)
        settings = StanceSettings(**{**overrides, "gguf_path": packaged_gemma_gguf()})
    return settings


async def stance_run_in_process(gold: Sequence[GoldItem], overrides: dict[str, Any]) -> Run:
    """Whatever scorer the stance service would build from these settings (``build_scorer``)."""
    from common.errors import PermanentError
    from stance.logic import group_by_target
    from stance.main import build_scorer

    settings = stance_settings(overrides)
    scorer = await build_scorer(settings)
    try:
        method = getattr(scorer, "method", None)
        identity = scorer.identity
        meta = {
            "model": identity.model,
            "provider": scorer.provider,
            "prompt_version": identity.prompt_version,
            "method": method,
        }
        run = Run("stance", stance_run_name(identity.model, identity.prompt_version, method), meta)
        started = time.perf_counter()
        size = settings.batch_size
        # One scorer call per target and batch: the gold's optional target column names it.
        for target, positions in group_by_target([item.target or "" for item in gold]).items():
            for start in range(0, len(positions), size):
                batch = [gold[i] for i in positions[start : start + size]]
                results = await scorer.score([i.text for i in batch], target or None)
                for item, result in zip(batch, results, strict=True):
                    if isinstance(result, PermanentError):
                        run.missing.append(item.id)
                        continue
                    probs = dict(result.probabilities)
                    run.predictions[item.id] = Prediction(result.label, probs.get(result.label), probs)
        run.seconds = time.perf_counter() - started
        return run
    finally:
        await scorer.aclose()
