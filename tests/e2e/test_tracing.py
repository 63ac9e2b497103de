"""Follow one tweet end to end: Jaeger traces, /metrics that reconcile, logs with trace ids."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import MakeStack
from tests.e2e.stack import Stack
from tests.e2e.test_pipeline import labelled, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.model, pytest.mark.jaeger]

JAEGER = "http://127.0.0.1:16686"
PIPELINE_SERVICES = {"ingestor", "emotion", "stance", "gateway-indexer"}


def _dataset(path: Path, n: int) -> Path:
    # Fresh ids every run: Jaeger keeps the traces of earlier runs, which must not match.
    base = 1_000_000_000_000_000_000 + secrets.randbelow(10**15) * 1000  # stays below 2**63
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "id": str(base + i),
                    "user": {"username": f"Tracer {i}", "handle": f"@tracer{i}", "verified": True},
                    "meta": {"created_at": f"2024-07-0{1 + i}T10:00:00Z", "hashtags": ["#otel"]},
                    "payload": {"tweet": {"content": f"Tracing tweet {i}: I fully support the new bike lanes!"}},
                    "metrics": {"retweets": 1, "likes": 2},
                }
            )
        )
    lines.append('{"id": 1.5, "payload": {}}')  # one reject, so the counters have something to reconcile
    path.write_text("\n".join(lines) + "\n")
    return path


def _trace_for(tweet_id: str) -> dict[str, Any] | None:
    params = {"service": "ingestor", "tags": json.dumps({"tweet.id": tweet_id}), "lookback": "1h", "limit": "5"}
    found = httpx.get(f"{JAEGER}/api/traces", params=params, timeout=10).json().get("data") or []
    if not found:
        return None
    full = httpx.get(f"{JAEGER}/api/traces/{found[0]['traceID']}", timeout=10).json()["data"][0]
    # Services export in batches on their own schedules: wait until the tweet's last stage
    # (the indexer's span for each label) has arrived before judging the trace's shape.
    ids = {s["spanID"] for s in full["spans"]}
    indexed = [s for s in full["spans"] if s["operationName"] == "gateway.index"]
    parents_arrived = all(
        r["spanID"] in ids for s in full["spans"] for r in s["references"] if r["refType"] == "CHILD_OF"
    )
    return full if len(indexed) >= 3 and parents_arrived else None


def _metrics(port: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and labels.items() <= dict(ls).items())


@pytest.fixture
def traced_stack(make_stack: MakeStack, tiny_emotion_model: Path, stance_gguf: Path) -> Stack:
    stack = make_stack(
        {
            "EMOTION_MODEL": str(tiny_emotion_model),
            "STANCE_GGUF_PATH": str(stance_gguf),
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_TRACES_SAMPLER_RATIO": "1.0",
            "LOG_LEVEL": "DEBUG",
        }
    )
    for name in ("gateway-indexer", "gateway", "emotion", "stance"):
        stack.start(name)
    stack.wait_ready()
    return stack


def test_one_tweet_is_followed_across_every_service(traced_stack: Stack, tmp_path: Path) -> None:
    stack = traced_stack
    summary = stack.replay(_dataset(tmp_path / "traced.jsonl", 4))
    assert (summary["published"], summary["rejected"]) == (4, 1)
    items = wait_for(stack.all_tweets, lambda i: len(labelled(i, "emotion", "stance")) == 4, stack, "labels")
    tweet_id = items[0]["id"]

    trace = wait_for(lambda: _trace_for(tweet_id), lambda t: t is not None, stack, "a complete trace", 120)
    spans = {span["spanID"]: span for span in trace["spans"]}
    services = {trace["processes"][s["processID"]]["serviceName"] for s in spans.values()}
    assert services >= PIPELINE_SERVICES
    roots = [s for s in spans.values() if not any(r["refType"] == "CHILD_OF" for r in s["references"])]
    assert [(trace["processes"][r["processID"]]["serviceName"], r["operationName"]) for r in roots] == [
        ("ingestor", "ingestor.publish")
    ], "one root, the ingestor's; every other span has its parent in the same trace"
    tagged = [s for s in spans.values() if {"key": "tweet.id", "type": "string", "value": tweet_id} in s["tags"]]
    assert {trace["processes"][s["processID"]]["serviceName"] for s in tagged} >= PIPELINE_SERVICES

    for operation in ("emotion label", "stance label"):
        [span] = [s for s in spans.values() if s["operationName"] == operation]
        assert any(r["refType"] == "FOLLOWS_FROM" for r in span["references"]), f"{operation} links to its batch"

    detail = httpx.get(f"{stack.api}/tweets/{tweet_id}", timeout=10).json()
    assert detail["trace_url"].endswith(f"/trace/{trace['traceID']}")

    # The same trace through the API (Jaeger's query API, no UI): every stage once, indexed per write.
    stages = httpx.get(f"{stack.api}/tweets/{tweet_id}/trace", timeout=10).json()
    assert stages["trace_id"] == trace["traceID"]
    by_stage = [(s["stage"], s["service"]) for s in stages["stages"]]
    assert by_stage[0] == ("ingested", "ingestor") and by_stage.count(("indexed", "gateway-indexer")) >= 3
    assert {("emotion", "emotion"), ("stance", "stance")} <= set(by_stage)
    assert all(s["model"] for s in stages["stages"] if s["stage"] in ("emotion", "stance"))

    # Logs: a line emitted while labelling this tweet carries this tweet's trace id.
    lines = [json.loads(line) for line in (stack.logs / "emotion.log").read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("tweet.id") == tweet_id]
    assert mine and all(line["trace_id"] == trace["traceID"] for line in mine)

    # Metrics: each worker's counters reconcile with the replay.
    for service, port_var in (("emotion", "EMOTION_METRICS_PORT"), ("stance", "STANCE_METRICS_PORT")):
        metrics = _metrics(stack.env[port_var])
        consumed = _total(metrics, "pipeline_records_consumed_total", service=service)
        produced = _total(metrics, "pipeline_records_produced_total", service=service)
        dead = _total(metrics, "pipeline_records_dead_lettered_total", service=service)
        assert consumed == 4 and consumed == produced + dead, (service, consumed, produced, dead)
