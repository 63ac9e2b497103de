"""Where the emotion service's CPU goes: the real service vs the bare classifier, one run.

    PYTHONPATH=. .venv/bin/python bench/emotion_service_profile.py [--tweets 1000] [--model DIR]
        [--with-stance] [--bucket-sizes 4,8,16] [--py-spy OUT.txt] [--cprofile OUT.txt]
        [--set EMOTION_X=Y ...] [--no-service]

Same texts (bench/workload.py), same distilroberta-shaped model (bench/emotion_bench.py), same
torch threads (the CPU budget of deploy/local/cpu_budget.py: 1 on a 2-core host). Three
figures, CPU milliseconds per tweet, all measured in this run:

- ``bare``: ``classify`` on consecutive batches of EMOTION_BATCH (the pipeline bench's baseline),
  in this process.
- ``handler``: the service's ``EmotionHandler`` on in-memory Kafka records of the same tweets,
  same batches, in this process: classifier + decoding + label events + spans, no Kafka.
- ``service``: the real service (``python -m emotion``) as its own process on the running Kafka
  under a private topic prefix, fed by the real ingestor; /proc CPU of the emotion process from
  the moment the warm-up tweets are committed until every tweet's offset is committed.

``--py-spy`` samples every thread of the service process meanwhile (py-spy must be installed;
it is a profiling tool, not a dependency); ``--cprofile`` writes the handler run's top
functions. ``--with-stance`` keeps the stance scorer busy in another process meanwhile (the
pipeline's neighbour). ``--bucket-sizes`` compares EMOTION_BUCKET_SIZE values on the bare
classifier. ``--set`` passes EMOTION_* overrides to every run, the service's included.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench.emotion_bench import build_model, classifier, timed
from bench.pipeline_bench import EMOTION_BATCH, WARMUP, cpu_seconds
from bench.workload import generate_texts, write_jsonl
from common.events import Author, TweetRecord
from common.settings import KafkaSettings
from deploy.local.cpu_budget import available_cores, plan
from emotion.handlers import emotion_handler
from tests.conftest import _delete_topics
from tests.e2e.stack import Stack
from tests.support.kafka_probe import committed_and_ends

RESULTS = Path(__file__).resolve().parent / "results"


def records(texts: list[str]) -> list[ConsumerRecord]:
    """Kafka records as the ingestor writes them (TweetRecord JSON keyed by id, no headers)."""
    out = []
    for i, text in enumerate(texts):
        tweet = TweetRecord(id=str(1_700_000_000_000_000_000 + i), author=Author(handle=f"bench{i % 97}"),
                            created_at=datetime(2024, 1, 1 + i % 28, 12, tzinfo=UTC), text=text, source="bench")
        value = tweet.model_dump_json().encode()
        out.append(ConsumerRecord(topic="bench.tweets.raw", partition=i % 3, offset=i, timestamp=0, timestamp_type=0,
                                  key=tweet.id.encode(), value=value, checksum=None, serialized_key_size=19,
                                  serialized_value_size=len(value), headers=[]))
    return out


def handler_cpu(handler: Any, batch: list[ConsumerRecord], profile: cProfile.Profile | None) -> float:
    """CPU seconds of this process to handle ``batch`` in EMOTION_BATCH slices (after one warm-up slice)."""

    async def run() -> float:
        await handler(batch[:EMOTION_BATCH])
        cpu = time.process_time()
        if profile is not None:
            profile.enable()
        for i in range(0, len(batch), EMOTION_BATCH):
            await handler(batch[i : i + EMOTION_BATCH])
        if profile is not None:
            profile.disable()
        return time.process_time() - cpu

    return asyncio.run(run())


def batch_stats(metrics_url: str) -> dict[str, float]:
    """Batches the loop handled and inference calls made so far, from the service's /metrics."""
    import httpx

    values: dict[str, float] = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        for metric in ("pipeline_batch_size_count", "pipeline_batch_size_sum", "emotion_inference_seconds_count"):
            if name.startswith(metric + "{"):
                values[metric] = values.get(metric, 0.0) + float(value)
    return values


def service_cpu(tmp: Path, model: Path, texts: list[str], env: dict[str, str], py_spy: Path | None) -> dict[str, Any]:
    """CPU seconds of the real emotion process while it labels ``texts`` (warm-up excluded)."""
    prefix = f"profile-{uuid.uuid4().hex[:8]}."
    stack = Stack.create(tmp, prefix, f"profile-{uuid.uuid4().hex[:8]}",
                         {"EMOTION_MODEL": str(model), "EMOTION_BATCH_SIZE": str(EMOTION_BATCH), "LOG_LEVEL": "INFO",
                          **env})
    kafka = KafkaSettings(bootstrap_servers=stack.env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                          topic_prefix=prefix)
    topics = [kafka.topics.raw]

    def committed() -> tuple[int, int]:
        done, ends = asyncio.run(committed_and_ends(kafka, kafka.group("emotion"), topics))
        return sum(done.values()), sum(ends.values())

    def wait_for(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while committed()[0] < n:
            stack.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} offsets not committed within {timeout:.0f} s")
            time.sleep(0.5)

    warmup, dataset = tmp / "warmup.jsonl", tmp / "tweets.jsonl"
    write_jsonl(warmup, generate_texts(WARMUP, seed=99), id_base=1_800_000_000_000_000_000)
    write_jsonl(dataset, texts)
    spy: subprocess.Popen[bytes] | None = None
    try:
        stack.start("emotion")
        stack.replay(warmup)
        wait_for(WARMUP, 600)
        pid = stack.processes["emotion"].pid
        if py_spy is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                    "--format", "raw", "--rate", "50", "--threads", "--nonblocking",
                                    "--output", str(py_spy)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        metrics = f"http://127.0.0.1:{stack.env['EMOTION_METRICS_PORT']}/metrics"
        before = batch_stats(metrics)
        start, cpu = time.perf_counter(), cpu_seconds(pid)
        stack.replay(dataset)
        wait_for(WARMUP + len(texts), 3600)
        wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
        after = {key: value - before.get(key, 0.0) for key, value in batch_stats(metrics).items()}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        log = (tmp / "emotion.log").read_text(errors="replace")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stack.stop_all()
        _delete_topics(kafka.bootstrap_servers, prefix)
    batches = after.get("pipeline_batch_size_count", 0.0)
    return {"cpu_s": cpu, "wall_s": wall, "log_lines": log.count("\n"), "batches": int(batches),
            "mean_batch": round(after.get("pipeline_batch_size_sum", 0.0) / batches, 1) if batches else None,
            "inference_calls": int(after.get("emotion_inference_seconds_count", 0.0))}


def bucket_sweep(model: Path, texts: list[str], threads: int, sizes: list[int], rounds: int = 3) -> dict[int, float]:
    """Bare CPU ms per tweet (polls of EMOTION_BATCH) for each EMOTION_BUCKET_SIZE, rounds interleaved
    so that a change in the host's load hits every size alike; the median round of each."""
    clfs = {size: classifier(model, threads, True, EMOTION_BATCH, bucket_size=size) for size in sizes}
    runs: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size, clf in clfs.items():
            runs[size].append(1000 * timed(clf, texts, EMOTION_BATCH)[1] / len(texts))
    return {size: round(sorted(values)[len(values) // 2], 2) for size, values in runs.items()}


STANCE_LOOP = """
import sys
from pathlib import Path
from bench.pipeline_bench import stance_alone
texts = Path(sys.argv[2]).read_text().splitlines()
while True:
    stance_alone(Path(sys.argv[1]), texts, int(sys.argv[3]))
"""


def stance_load(tmp: Path, texts: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The stance scorer labelling tweets in a loop in another process (the pipeline's neighbour)."""
    from stance.model_files import packaged_gemma_gguf

    gguf = packaged_gemma_gguf()  # its own file name, so the default probe head serves as in the service
    corpus = tmp / "stance-texts.txt"
    corpus.write_text("\n".join(texts[:64]))
    process = subprocess.Popen([sys.executable, "-c", STANCE_LOOP, str(gguf), str(corpus), env["STANCE_N_THREADS"]],
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(["libs", "services", "."])},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(15)  # model loaded and scoring before the clock starts
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=1000)
    parser.add_argument("--bare-tweets", type=int, default=320, help="texts for the in-process runs")
    parser.add_argument("--model", type=Path, default=None, help="a save_pretrained directory (default: built)")
    parser.add_argument("--py-spy", type=Path, default=None, help="raw (collapsed) samples of the service process")
    parser.add_argument("--cprofile", type=Path, default=None, help="top functions of the in-process handler run")
    parser.add_argument("--set", action="append", default=[], metavar="EMOTION_X=Y", help="setting overrides")
    parser.add_argument("--with-stance", action="store_true",
                        help="the stance scorer (llama.cpp, its budgeted threads) busy in another process meanwhile, "
                             "as in the pipeline bench")
    parser.add_argument("--bucket-sizes", default="", metavar="4,8,16",
                        help="also the bare classifier's CPU per tweet at each of these bucket sizes")
    parser.add_argument("--no-service", action="store_true", help="in-process figures only")
    parser.add_argument("--out", type=Path, default=RESULTS / "emotion_service_profile.json")
    args = parser.parse_args()
    env = {**plan(available_cores(), emotion_replicas=1, stance_replicas=1).variables(),
           **dict(item.split("=", 1) for item in args.set)}
    os.environ.update(env)  # the in-process classifier sees the same settings as the service
    threads = int(env["EMOTION_TORCH_THREADS"])
    texts = generate_texts(args.tweets)
    base = texts[: args.bare_tweets]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = args.model or build_model(tmp)
        clf = classifier(model, threads, True, EMOTION_BATCH)
        bare_alone = timed(clf, base, EMOTION_BATCH)[1] if args.with_stance else None
        neighbour = stance_load(tmp, texts, env) if args.with_stance else None
        bare = timed(clf, base, EMOTION_BATCH)[1]
        buckets = ({str(size): ms for size, ms in bucket_sweep(
            model, base, threads, [int(size) for size in args.bucket_sizes.split(",")]).items()}
            if args.bucket_sizes else None)
        profile = cProfile.Profile() if args.cprofile else None
        handled = handler_cpu(emotion_handler(clf, "bench.tweets.labels"), records(base), profile)
        bare_again = timed(clf, base, EMOTION_BATCH)[1]  # bare before and after: drift on a shared host
        print(f"bare {1000 * bare / len(base):.1f}, {1000 * bare_again / len(base):.1f} ms/tweet; "
              f"handler {1000 * handled / len(base):.1f} ms/tweet", flush=True)
        try:
            service = None if args.no_service else service_cpu(tmp, model, texts, env, args.py_spy)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
    if profile is not None and args.cprofile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        args.cprofile.write_text(text.getvalue())
    bare_ms = 1000 * (bare + bare_again) / 2 / len(base)
    report: dict[str, Any] = {
        "what": "CPU ms per tweet: bare classifier vs the service's handler in-process vs the service process",
        "settings": env,
        "tweets": {"in_process": len(base), "service": len(texts)},
        "bare_cpu_ms_per_tweet": [round(1000 * bare / len(base), 2), round(1000 * bare_again / len(base), 2)],
        "bare_cpu_ms_per_tweet_stance_idle": round(1000 * bare_alone / len(base), 2) if bare_alone else None,
        "stance_busy_meanwhile": args.with_stance,
        "bare_cpu_ms_per_tweet_by_bucket_size": buckets,
        "handler_cpu_ms_per_tweet": round(1000 * handled / len(base), 2),
        "handler_over_bare": round(1000 * handled / len(base) / bare_ms, 3),
        "loadavg": os.getloadavg(),
    }
    if service is not None:
        service_ms = 1000 * service["cpu_s"] / len(texts)
        report |= {"service_cpu_ms_per_tweet": round(service_ms, 2), "service_wall_s": round(service["wall_s"], 1),
                   "service_share_of_one_core": round(service["cpu_s"] / service["wall_s"], 3),
                   "service_batches": {k: service[k] for k in ("batches", "mean_batch", "inference_calls")},
                   "bare_over_service_per_cpu_second": round(bare_ms / service_ms, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
