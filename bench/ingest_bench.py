"""Ingest at the broker's speed: the real ingestor vs a bare aiokafka producer, tracing overhead,
and a 1,000,000-tweet replay in flat memory. One run, one machine, one broker.

    PYTHONPATH=. .venv/bin/python bench/ingest_bench.py [--tweets 20000] [--million]

- Rates: wall-clock tweets/s (the goal's measure), and tweets per CPU-second of the variant:
  all its threads (the span exporter) and, for the ingest, the child process that reads,
  validates and serialises a large file on the spare core (``ingestor.reader``; its CPU,
  start-up included, is also reported alone: ``reader_cpu_s``). Each variant runs
  ``--rounds`` times round-robin; the medians are reported, every run is kept.
  ``reader_took_over_at`` is the item at which the reading moved from the ingest's own thread
  to that child once it had started (None: the file was done first). As the CLI does, the
  ingest starts that child (``reader.warm_up``) before configuring tracing, untimed like that;
  ``ingest_tracing_off_cold_reader`` does not, so its clock includes the child's start.
  ``broker_cpu_s_whole_run`` is what the broker, on the same cores, spent meanwhile.
- Input: generated tweets in the spec's nested layout with real tweet lengths (templates and
  vocabulary from data/sample_tweets.json, as bench/workload.py does), streamed to a temporary
  JSON Lines file; 64-bit ids.
- ``bare``: a bare aiokafka producer with the ingestor's producer settings (acks=all,
  idempotent, linger 5 ms, 256 KB batches) sends the very payloads the ingestor publishes (the
  validated TweetRecord JSON, keyed by id), built before the clock starts, one ``send`` a
  tweet: the baseline the 0.5x goal is set against (``ratios_vs_bare.*.wall``).
  ``bare-batches`` sends them through the producer's record-batch API instead
  (``create_batch``/``send_batch``, 500 tweets a round, one batch a partition, partitions
  computed before the clock), as the ingestor's publisher does: the fastest this client goes
  (``wall_vs_record_batches``).
- ``ingest``: ``ingestor.main.replay`` on the file, as the CLI runs it: read, parse, validate,
  reject repeats and serialise (in the reading child once it is up), trace, publish, wait for
  acknowledgements batch by batch. Tracing off (no OTLP endpoint), then on with ``OTEL_TRACES_SAMPLER_RATIO``
  1.0, 0.1 and 0.01 (head-sampled by the replay, as the CLI configures it), exporting OTLP/HTTP
  to a local sink that accepts and discards (the SDK's whole cost, independent of Jaeger's
  health); and at 0.1 with two reading processes taking the file's chunks in turn
  (``ingest_tracing_ratio_0.1_two_lanes``, ``INGESTOR_READER_PROCESSES=2``).
  Each run counts the ingestor spans that were sampled, which shows the ratio is honoured.
  ``--variants`` runs only the named ingest variants (the bare producers always run).
- ``stages``: where the ingest's CPU goes, per tweet, each stage timed alone in one process
  (no Kafka): reading the JSON Lines (parse), mapping the nested layout, validating with the
  strict ``TweetRecord``, serialising the payload; the reading side's whole work per tweet
  (``reader.Reader.judge``: all of those, plus repeats) and the pickling of its chunks to the
  parent and back; for a sampled tweet its span (start, traceparent, end) and the
  OTLP/protobuf encoding the exporter does for it; for an unsampled one its traceparent as the
  replay makes it (``HeadSampler``) and as the SDK made it (an unsampled span). The bare
  producer's own CPU per tweet is the budget they are compared with. Each stage runs a reader's
  chunk (500) at a time, with the harness's own inputs frozen out of the garbage collector: a
  full collection walking 100,000 retained records is a cost of the harness, not of the stage
  (before issue 16 item 2's second part, it doubled the validation figure).
- ``--million``: 1,000,000 tweets generated into a nested JSON array file (the spec's layout,
  streamed by ijson), replayed by the CLI in a child process whose RSS is sampled every 0.25 s
  (and the PSS of its process tree: with the reading child, which holds the ids seen).

Every variant runs in its own process (tracing is process-global) under its own topic prefix;
the topics are deleted afterwards. Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
ID_BASE = 1_750_000_000_000_000_000


def tweets(n: int, seed: int = 84) -> Iterator[dict[str, Any]]:
    """Nested-layout records, generated lazily: each keeps a sample tweet's word count (real
    lengths) with about half its words swapped for others from the sample vocabulary."""
    from bench.workload import sample_texts  # here: the reading child re-imports this module, keep that light

    rng = random.Random(seed)
    templates = [text.split() for text in sample_texts()]
    vocabulary = sorted({word for words in templates for word in words})
    for i in range(n):
        words = templates[i % len(templates)]
        text = " ".join(rng.choice(vocabulary) if rng.random() < 0.5 else w for w in words)
        yield {
            "id": str(ID_BASE + i),
            "user": {"username": f"Bench {i % 997}", "handle": f"@bench{i % 997}", "verified": False},
            "meta": {"created_at": f"2024-0{1 + i % 9}-{1 + i % 28:02d}T12:00:00Z", "hashtags": ["#bench"]},
            "payload": {"tweet": {"content": text}},
            "metrics": {"retweets": i % 13, "likes": i % 31},
        }


def write_lines(path: Path, n: int) -> None:
    with path.open("w") as out:
        for record in tweets(n):
            out.write(json.dumps(record) + "\n")


def write_array(path: Path, n: int) -> None:
    with path.open("w") as out:
        out.write("[")
        for i, record in enumerate(tweets(n)):
            out.write(("," if i else "") + json.dumps(record) + "\n")
        out.write("]\n")


# --- children: one measurement each, in its own process ---------------------------------------


async def bare(path: Path, prefix: str, *, batches: bool = False) -> dict[str, Any]:
    """One ``send`` a tweet (the baseline the goal is set against), or with ``batches`` the
    producer's record-batch API as the ingestor's publisher uses it (500 tweets a round, one
    batch a partition), its partitions computed before the clock like the payloads."""
    from aiokafka.partitioner import DefaultPartitioner

    from common.events import TweetRecord
    from common.kafka import ensure_topics, make_producer
    from common.records import map_nested
    from common.settings import KafkaSettings

    kafka = KafkaSettings(topic_prefix=prefix)
    payloads = []
    for line in path.open():
        record = TweetRecord.model_validate({**map_nested(json.loads(line)), "source": path.name})
        payloads.append((record.id.encode(), record.model_dump_json().encode()))
    await ensure_topics(kafka, [kafka.topics.raw])
    producer = make_producer(kafka, client_id="bench-bare")
    await producer.start()
    try:
        topic = kafka.topics.raw
        every = sorted(await producer.partitions_for(topic))
        partitions = [DefaultPartitioner()(key, every, every) for key, _ in payloads]
        start, cpu = time.perf_counter(), time.process_time()
        if batches:
            futures = []
            for first in range(0, len(payloads), 500):
                open_batches: dict[int, Any] = {}
                chunk = zip(payloads[first : first + 500], partitions[first : first + 500], strict=True)
                for (key, value), partition in chunk:
                    batch = open_batches.get(partition)
                    if batch is None or batch.append(timestamp=None, key=key, value=value) is None:
                        if batch is not None:
                            futures.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = open_batches[partition] = producer.create_batch()
                        batch.append(timestamp=None, key=key, value=value)
                for partition, batch in open_batches.items():
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
        else:
            futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await producer.stop()
    return {"tweets": len(payloads), **_rates(len(payloads), elapsed, cpu)}


def _rates(tweets: int, elapsed: float, cpu: float) -> dict[str, Any]:
    """Wall-clock rate, and CPU seconds (all threads and child processes) per tweet: on a busy
    machine the wall clock mostly measures the CPU share the scheduler gave the processes."""
    return {
        "elapsed_s": round(elapsed, 3),
        "tweets_per_s": round(tweets / elapsed),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_tweet": round(1000 * cpu / tweets, 4),
        "tweets_per_cpu_s": round(tweets / cpu),
    }


class SpanCounter:
    """A span processor that counts the ingestor's per-tweet spans that were sampled."""

    def __init__(self) -> None:
        self.sampled = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: Any) -> None:
        if span.name == "ingestor.publish":
            self.sampled += 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class TakeOver(logging.Handler):
    """Notes at which item the replay's reading moved to the child process, and the CPU time
    the child reports at its end."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: int | None = None
        self.cpu_s: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "reading moved to a child process":
            self.at = getattr(record, "items_read", None)
        elif record.getMessage() == "reading process done":  # one message per reading process
            self.cpu_s = (self.cpu_s or 0.0) + getattr(record, "cpu_s", 0.0)


async def ingest(path: Path, prefix: str, *, cold: bool = False) -> dict[str, Any]:
    from opentelemetry import trace

    from common.kafka import ensure_topics
    from common.settings import KafkaSettings
    from common.telemetry import configure_tracing, shutdown_tracing
    from ingestor.main import replay
    from ingestor.reader import warm_up
    from ingestor.settings import IngestorSettings

    if not cold:
        warm_up(IngestorSettings().reader_processes)  # as ingestor.cli does, before its logging and tracing
    settings = IngestorSettings(kafka=KafkaSettings(topic_prefix=prefix))
    telemetry = settings.telemetry
    configure_tracing("ingestor", telemetry, head_sampled=True)  # as ingestor.cli does
    counter = SpanCounter()
    provider = trace.get_tracer_provider()
    if hasattr(provider, "add_span_processor"):
        provider.add_span_processor(counter)
    took_over = TakeOver()
    logger = logging.getLogger("ingestor")
    logger.setLevel(logging.INFO)
    logger.addHandler(took_over)
    logger.propagate = False
    await ensure_topics(settings.kafka, settings.kafka.topics.all())  # as the bare run: not timed
    start, cpu = time.perf_counter(), time.process_time()
    summary = await replay(str(path), settings)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    children = took_over.cpu_s or 0.0
    flush_start = time.perf_counter()
    shutdown_tracing()
    return {
        "tweets": summary.published,
        **_rates(summary.published, elapsed, cpu + children),
        "parent_cpu_s": round(cpu, 3),
        "reader_cpu_s": round(children, 3),
        "reader_took_over_at": took_over.at,
        "reconciles": summary.reconciles,
        "tracing": bool(telemetry.otel_exporter_otlp_endpoint),
        "sampler_ratio": telemetry.otel_traces_sampler_ratio,
        "sampled_tweet_spans": counter.sampled,
        "span_flush_after_s": round(time.perf_counter() - flush_start, 3),
    }


class KeepSpans:
    """A span exporter that keeps what it is given (no encoding, no network)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stages(path: Path) -> dict[str, float]:
    """CPU microseconds per tweet of each ingest stage, timed alone (best of three)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from common.events import TweetRecord
    from common.json_lines import parse_json_line
    from common.records import map_nested
    from common.telemetry import HeadSampler
    from common.topics import Topics
    from ingestor.reader import Reader
    from ingestor.replay import publish_span
    from ingestor.source import open_source

    lines = path.read_bytes().splitlines(keepends=True)

    def cpu_us(work: Any) -> float:
        """Best of three, with the harness's own inputs (100,000s of objects) frozen out of the
        collector's sight: each full collection would walk them, a cost no stage has in the reader."""
        gc.collect()
        gc.freeze()
        try:
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                work()
                best = min(best, time.process_time() - started)
        finally:
            gc.unfreeze()
        return round(1e6 * best / len(lines), 2)

    def each(stage: Any, inputs: list[Any]) -> Any:
        """``stage`` on every input, a reader's chunk (500) at a time, each chunk's results dropped."""

        def work() -> None:
            for start in range(0, len(inputs), 500):
                results = [stage(one) for one in inputs[start : start + 500]]
                del results

        return work

    items = [parse_json_line(line, "line") for line in lines]
    fields = [{**map_nested(item.value), "source": path.name} for item in items]
    records = [TweetRecord.model_validate(each) for each in fields]
    # As in production: a batch processor (its queue is the per-span cost on the replay's side);
    # its exporter only keeps the spans, whose OTLP encoding is timed on its own below.
    kept = KeepSpans()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(kept, max_queue_size=4 * len(lines), schedule_delay_millis=60_000))
    tracer = provider.get_tracer("ingestor")
    topic = Topics().raw
    result = {
        "parse_json_line": cpu_us(each(lambda line: parse_json_line(line, "line"), lines)),
        "map_nested": cpu_us(each(lambda item: map_nested(item.value), items)),
        "validate_TweetRecord": cpu_us(each(TweetRecord.model_validate, fields)),
        "model_dump_json": cpu_us(each(lambda record: record.model_dump_json().encode(), records)),
        "sampled_span_and_traceparent": cpu_us(each(lambda record: publish_span(tracer, record.id, topic), records)),
    }
    provider.force_flush()
    spans = kept.spans[: len(lines)]
    result["otlp_encode_per_sampled_span"] = cpu_us(lambda: encode_spans(spans).SerializePartialToString())
    provider.shutdown()
    never = TracerProvider(sampler=ALWAYS_OFF).get_tracer("ingestor")
    result["unsampled_span_and_traceparent_sdk"] = cpu_us(each(lambda r: publish_span(never, r.id, topic), records))
    heads = HeadSampler(0.0)
    result["unsampled_traceparent_head_sampler"] = cpu_us(each(lambda _: heads.unsampled(), records))

    def judge_all(keep: bool = False) -> list[Any]:
        """The whole reading side; its chunks are kept only when asked (the child sends each on)."""
        source = open_source(str(path))
        reader, kept, exhausted = Reader(source), [], False
        while not exhausted:
            chunk = reader.judge(500)
            exhausted = chunk.exhausted
            if keep:
                kept.append(chunk)
        source.close()
        return kept

    result["reading_side_whole_Reader_judge"] = cpu_us(judge_all)
    chunks = judge_all(keep=True)
    result["verdicts_pickle_and_unpickle"] = cpu_us(lambda: [pickle.loads(pickle.dumps(chunk)) for chunk in chunks])
    return result


def child(mode: str, path: Path, prefix: str) -> None:
    if mode.startswith("bare"):
        result = asyncio.run(bare(path, prefix, batches=mode == "bare-batches"))
    else:
        result = asyncio.run(ingest(path, prefix, cold=mode == "ingest-cold"))
    print(json.dumps(result))


# --- parent -----------------------------------------------------------------------------------


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and discards it."""

    received_bytes = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Sink.received_bytes += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def run_child(mode: str, path: Path, env: dict[str, str]) -> dict[str, Any]:
    prefix = f"bench-ingest-{uuid.uuid4().hex[:8]}."
    broker = broker_pid()
    broker_cpu = process_cpu_s(broker)
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--file", str(path), "--prefix", prefix],
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'libs'}:{REPO / 'services'}", **env},
        capture_output=True, text=True, check=False, timeout=3600,
    )
    broker_cpu = process_cpu_s(broker) - broker_cpu
    delete_topics(prefix)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # The broker shares this host's cores: its CPU over the whole child (start-up included, and
    # whatever other clients of the shared broker asked of it meanwhile).
    result["broker_cpu_s_whole_run"] = round(broker_cpu, 3) if broker is not None else None
    return result


def broker_pid(port: int = 9092) -> int | None:
    """The process listening on the broker's port on this host, if it can be found."""
    try:
        tables = [Path(f"/proc/net/{name}").read_text().splitlines()[1:] for name in ("tcp", "tcp6")]
        rows = [row.split() for table in tables for row in table]
    except OSError:
        return None
    listening = "0A"
    inodes = {f"socket:[{f[9]}]" for f in rows if f[3] == listening and int(f[1].rsplit(":", 1)[1], 16) == port}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
    return None


def process_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def delete_topics(prefix: str) -> None:
    from tests.conftest import _delete_topics

    _delete_topics(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), prefix)


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("tweets_per_s", "tweets_per_cpu_s", "cpu_ms_per_tweet", "sampled_tweet_spans")
    return {key: statistics.median(run[key] for run in runs) for key in keys if key in runs[0]}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants (the CLI and the reading child,
    which holds the ids seen): shared pages counted once, unlike summed RSS."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total / 1024


def million(tmp: Path, count: int) -> dict[str, Any]:
    path = tmp / "million.json"
    started = time.perf_counter()
    write_array(path, count)
    generated_s = time.perf_counter() - started
    prefix = f"bench-ingest-{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'libs'}:{REPO / 'services'}", "KAFKA_TOPIC_PREFIX": prefix,
           "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    summary_file = tmp / "summary.json"
    command = [sys.executable, "-m", "ingestor", "replay", str(path), "--summary-json", str(summary_file)]
    samples: list[tuple[float, float]] = []
    tree: list[float] = []
    start = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        while process.poll() is None:
            rss = rss_mb(process.pid)
            if rss is not None:
                samples.append((round(time.perf_counter() - start, 2), round(rss, 1)))
                tree.append(tree_pss_mb(process.pid))
            time.sleep(0.25)
    elapsed = time.perf_counter() - start
    delete_topics(prefix)
    if process.returncode != 0:
        raise RuntimeError(f"the 1M replay exited {process.returncode}")
    summary = json.loads(summary_file.read_text())
    rss = [value for _, value in samples]
    tenth = rss[len(rss) // 10 : len(rss) // 10 + 1] or rss[:1]
    return {
        "tweets": count,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "generate_s": round(generated_s, 1),
        "published": summary["published"],
        "reconciles": summary["reconciles"],
        "elapsed_s": round(elapsed, 1),
        "tweets_per_s": round(summary["published"] / elapsed),
        "peak_rss_mb": max(rss),
        "rss_at_10pct_time_mb": tenth[0],
        "rss_at_end_mb": rss[-1],
        "rss_samples": samples[:: max(1, len(samples) // 60)],  # about 60 points over the run
        "peak_process_tree_pss_mb": round(max(tree), 1),  # with the reading child
        "goal_peak_rss_mb": 300,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, round-robin (medians)")
    parser.add_argument("--million", action="store_true", help="also replay 1,000,000 generated tweets (minutes)")
    parser.add_argument("--million-count", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--variants", help="comma-separated ingest variants to run (default: all; the bare producers always run)"
    )
    parser.add_argument("--child", choices=["bare", "bare-batches", "ingest", "ingest-cold"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.prefix)
        return

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    otlp = f"http://127.0.0.1:{sink.server_address[1]}"
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    results: dict[str, Any] = {"tweets": args.tweets, "cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        path = Path(tmp) / "tweets.jsonl"
        write_lines(path, args.tweets)
        results["file_mb"] = round(path.stat().st_size / 2**20, 2)
        results["cpu_us_per_tweet_by_stage"] = stages(path)
        run_child("ingest", path, off)  # warm-up: page cache, broker, imports
        variants: dict[str, tuple[str, dict[str, str]]] = {
            "bare_producer": ("bare", off),
            "bare_producer_record_batches": ("bare-batches", off),
            "ingest_tracing_off": ("ingest", off),
            "ingest_tracing_off_cold_reader": ("ingest-cold", off),
            **{
                f"ingest_tracing_ratio_{ratio}": (
                    "ingest", {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_TRACES_SAMPLER_RATIO": ratio}
                )
                for ratio in ("1.0", "0.1", "0.01")
            },
            # The default ratio with the file read by two processes, chunks in turn (lanes).
            "ingest_tracing_ratio_0.1_two_lanes": (
                "ingest",
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                    "OTEL_TRACES_SAMPLER_RATIO": "0.1",
                    "INGESTOR_READER_PROCESSES": "2",
                },
            ),
        }
        if args.variants:
            wanted = {"bare_producer", "bare_producer_record_batches", *args.variants.split(",")}
            variants = {name: variant for name, variant in variants.items() if name in wanted}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(args.rounds):  # round-robin, so a load change hits every variant alike
            for name, (mode, env) in variants.items():
                runs[name].append(run_child(mode, path, env))
        for name, measured in runs.items():
            results[name] = {**_medians(measured), "runs": measured}
        bare_rate, bare_cpu = (results["bare_producer"][key] for key in ("tweets_per_s", "tweets_per_cpu_s"))
        batches_rate = results["bare_producer_record_batches"]["tweets_per_s"]
        results["ratios_vs_bare"] = {
            name.removeprefix("ingest_"): {
                "wall": round(results[name]["tweets_per_s"] / bare_rate, 3),
                "cpu": round(results[name]["tweets_per_cpu_s"] / bare_cpu, 3),
                "wall_vs_record_batches": round(results[name]["tweets_per_s"] / batches_rate, 3),
            }
            for name in variants
            if name.startswith("ingest_")
        }
        results["goal_ratio"] = 0.5
        results["otlp_sink_received_mb"] = round(Sink.received_bytes / 2**20, 2)
        if args.million:
            results["million"] = million(Path(tmp), args.million_count)
    sink.shutdown()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
