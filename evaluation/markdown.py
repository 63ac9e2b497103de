"""REPORT.md as text, from the figures :mod:`evaluation.report` collected (no computation here
beyond formatting)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.metrics import TaskReport

if TYPE_CHECKING:
    from evaluation.report import ReportData

STANCE_GOAL_F1 = 0.60
STANCE_MAX_SHARE = 0.70


def _img(data: ReportData, key: str, base: Path, alt: str) -> str:
    path = data.plots.get(key)
    return f"![{alt}]({os.path.relpath(path, base)})" if path else ""


def _share(r: TaskReport) -> str:
    return ", ".join(f"{k} {v / r.n:.0%}" for k, v in r.predicted_distribution.items() if v) if r.n else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_table(reports: Sequence[TaskReport]) -> list[str]:
    lines = [
        "| task | model · prompt · method | n | accuracy | macro-F1 | ECE | predicted distribution |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in reports:
        ece = "-" if r.ece is None else f"{r.ece:.3f}"
        figures = f"{r.n} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {ece}"
        lines.append(f"| {r.task} | {_cell(r.run)} | {figures} | {_share(r)} |")
    return lines


def per_class_table(r: TaskReport) -> list[str]:
    lines = ["| label | gold | predicted | precision | recall | F1 |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, s in r.per_class.items():
        lines.append(
            f"| {label} | {s.support} | {r.predicted_distribution[label]} | {s.precision:.2f} | {s.recall:.2f} "
            f"| {s.f1:.2f} |"
        )
    return lines


def _stance_section(data: ReportData, base: Path) -> list[str]:
    from stance.prompts import PROMPT_VERSIONS

    stance = [r for r in data.reports if r.task == "stance"]
    lines = ["## Stance", ""]
    if not stance:
        return [*lines, "No stance labels in the gold set.", ""]
    lines += [
        "On the self-written smoke-test set (the headline stance figures are the benchmark table above; a head "
        "that scores high here may only be reading tone). "
        f"Old goal (issue 9): macro-F1 ≥ {STANCE_GOAL_F1:.2f} with the offline GGUF and no label predicted for more "
        f"than {STANCE_MAX_SHARE:.0%} of tweets (the gold's largest class is "
        f"{max(stance[0].gold_distribution.values()) / stance[0].n:.0%}).",
        "",
        "| model · prompt · method | accuracy | macro-F1 | largest predicted share | goal met |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in stance:
        top = max(r.predicted_distribution.values()) / r.n
        met = r.macro_f1 >= STANCE_GOAL_F1 and top <= STANCE_MAX_SHARE
        default = " (service default)" if r.meta.get("default") else ""
        if r.meta.get("reused_from"):
            default += f" (measured by the report of {r.meta['reused_from']})"
        lines.append(f"| {_cell(r.run)}{default} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {top:.0%} | "
                     f"{'yes' if met else 'no'} |")
    lines += ["", _img(data, "distribution:stance", base, "stance label distributions"), ""]
    lines += [_img(data, f"confusion:stance:{r.run}", base, f"confusion {r.run}") for r in stance]
    lines += ["", _img(data, "confidence:stance", base, "stance confidence"), ""]
    lines += [_img(data, f"reliability:stance:{r.run}", base, f"reliability {r.run}") for r in stance if r.ece]
    lines += ["", "### Prompt history, measured on the smoke-test set", "",
              "What each version changed and why is in [docs/stance.md](docs/stance.md). Here each version runs "
              "with label scoring on the self-written smoke-test set:", "",
              "| version | prompt length (chars) | accuracy | macro-F1 | predicted distribution |",
              "| --- | ---: | ---: | ---: | --- |"]
    for version, text in PROMPT_VERSIONS.items():
        match = [r for r in stance if r.meta.get("prompt_version") == version
                 and "probe" not in str(r.meta.get("method") or "")]
        for r in match[:1]:
            lines.append(f"| {version} | {len(text)} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {_share(r)} |")
        if not match:
            lines.append(f"| {version} | {len(text)} | not measured by this report | | |")
    return [*lines, ""]


def _sentiment_section(data: ReportData, base: Path) -> list[str]:
    lines = ["## Sentiment and valence", "",
             "Sentiment comes from the emotion backend's valence map: where a map was fitted for the backend (on "
             "TweetEval sentiment val), the most probable of its three bands; otherwise the sign of the valence, "
             f"positive above +{data.valence_threshold}, negative below -{data.valence_threshold}, neutral between. "
             "The lexicon baseline is VADER's compound score with its own ±0.05 band, the same "
             "heuristic the gateway's quality checks store on every tweet (`services/gateway/quality.py`).", ""]
    rows = [r for r in data.reports if r.task == "sentiment"]
    if data.lexicon_gold is not None:
        rows.append(data.lexicon_gold)
    lines += summary_table(rows)
    lines += ["", "Agreement of the model's valence polarity with the lexicon's:", "",
              "| data | tweets | polarity agreement (3 classes) | sign agreement where both are polar (n) |",
              "| --- | ---: | ---: | ---: |"]
    for name, f in data.lexicon.items():
        lines.append(f"| {name} | {f['tweets']} | {f['polarity_agreement']:.1%} | "
                     f"{f['sign_agreement_where_both_polar']:.1%} ({f['both_polar']}) |")
    lines += ["", _img(data, "valence_vs_lexicon", base, "valence vs lexicon"),
              _img(data, "distribution:sentiment", base, "sentiment distributions"), ""]
    lines += [_img(data, f"confusion:sentiment:{r.run}", base, "sentiment confusion") for r in rows if r.ece]
    return [*lines, ""]


def _bench_section(data: ReportData) -> list[str]:
    lines = ["## Throughput and lag", "",
             "In-process inference on the test set during this report (one process, no Kafka; the machine is "
             "shared, so rates are indicative):", "", "| task | model · prompt · method | tweets/s |",
             "| --- | --- | ---: |"]
    for r in data.reports:
        if "tweets_per_s" in r.meta:
            lines.append(f"| {r.task} | {_cell(r.run)} | {r.meta['tweets_per_s']:.2f} |")
    pipeline = data.bench.get("pipeline.json")
    lines.append("")
    if not pipeline:
        lines.append("No `bench/results/pipeline.json` was found: run `make bench` for the whole-pipeline figures "
                     "(per-stage throughput and the time until every tweet carries both labels).")
        return [*lines, ""]
    when = datetime.fromtimestamp(pipeline["mtime"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    p = pipeline["data"]
    lines += [f"Whole pipeline, from `bench/results/pipeline.json` (`make bench`, written {when}): "
              f"{_cell(str(p.get('what', '')))}. Lag here is the time from the start of the replay until every "
              "tweet is indexed / carries each label.", "",
              "| run | tweets | ingest tweets/s | indexed all (s) | emotion tweets/s | stance tweets/s (after "
              "emotion) | both labels, end to end (s) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, run in (p.get("runs") or {}).items():
        if not isinstance(run, dict):
            continue
        ingest = run.get("ingest") or {}
        lines.append(f"| {name} | {run.get('tweets', '-')} | {ingest.get('tweets_per_s', '-')} | "
                     f"{run.get('indexed_all_seconds', '-')} | {run.get('emotion_tweets_per_s', '-')} | "
                     f"{run.get('stance_tweets_per_s_after_emotion_done', '-')} | "
                     f"{run.get('end_to_end_seconds_both_labels', '-')} |")
    host = p.get("host") or {}
    if host:
        lines += ["", f"Host: {host.get('cores', '?')} cores, load average {host.get('loadavg_start', '?')} at the "
                  f"start. {_cell(str(host.get('note', '')))}"]
    return [*lines, ""]


def _failure_section(data: ReportData) -> list[str]:
    lines = ["## Failure cases", "", "The most confident wrong predictions on the smoke-test set, per task:", ""]
    for name, cases in data.failures.items():
        if not cases:
            continue
        lines += [f"### {_cell(name)}", "", "| id | text | gold | predicted | confidence |",
                  "| --- | --- | --- | --- | ---: |"]
        for f in cases:
            conf = "-" if f.confidence is None else f"{f.confidence:.2f}"
            lines.append(f"| {f.gold_id} | {_cell(f.text)} | {f.gold} | {f.predicted} | {conf} |")
        lines.append("")
    return lines


def benchmark_section(results: Sequence[dict[str, Any]]) -> list[str]:
    """One table: every public benchmark x method, its official metric beside the published
    figures (``make evaluate BENCH=all`` writes the results this reads)."""
    from evaluation.benchmarks import BENCHMARKS, REFERENCE_FIGURES

    lines = [
        "## Public benchmarks (headline figures)",
        "",
        "Real posts labelled by people (TweetEval, GoEmotions) or by the project's guideline-driven, double-annotated "
        "set of real tweets (`data/labelled/annotated_stance.csv`, docs/stance-guideline.md). Ours are on the dev/val "
        "splits (the test splits are withheld from the project); the published figures are on the test splits. "
        "Reproduce with `make evaluate BENCH=all`.",
        "",
        "| benchmark | split | method | metric | ours | per-class F1 | predicted share | gold share | ECE "
        "| published (test) |",
        "| --- | --- | --- | --- | ---: | --- | --- | --- | ---: | --- |",
    ]
    order = {name: n for n, name in enumerate(BENCHMARKS)}
    for result in sorted(results, key=lambda r: order.get(str(r["benchmark"]), 99)):
        for m in result["methods"]:
            head = f"| {result['benchmark']} | {result['split']} ({result['n']}) | {_cell(m['method'])} |"
            if "skipped" in m:
                lines.append(f"{head} | | not run here | {_cell(m['skipped'][:120])} | | | | |")
                continue
            subsets = "".join(
                f"; {k.removeprefix('subset:')}: {v['score']:.3f} (n={v['n']})" for k, v in m.items()
                if k.startswith("subset:")
            )
            note = f" ({_cell(m['note'])})" if m.get("note") else ""
            figure = f"**{m['score']:.3f}**{subsets}{note}"
            held_out = m.get("held_out")
            if isinstance(held_out, dict) and result["split"] == "dev":
                # fitted on this very split: the held-out figure leads, the in-sample one and the
                # other columns (scored in-sample) follow, so a reader never takes one for the other
                figure = (f"**{held_out['macro_recall']:.3f}** held out ({_cell(held_out['method'])}); "
                          f"in-sample {m['score']:.3f}, as are this row's other columns")
            lines.append(
                f"{head} {m['metric']} | {figure} | "
                + " ".join(f"{k} {v:.2f}" for k, v in m["per_class_f1"].items())
                + " | " + " ".join(f"{k} {v:.2f}" for k, v in m["predicted_share"].items())
                + " | " + " ".join(f"{k} {v:.2f}" for k, v in m["gold_share"].items())
                + f" | {m['ece']:.3f} | {REFERENCE_FIGURES.get(str(result['benchmark']), '')} |"
            )
    return [*lines, ""]


def render(data: ReportData, base: Path) -> str:
    gold_counts = {task: sum(task in i.labels for i in data.gold) for task in ("emotion", "stance", "sentiment")}
    emotion = [r for r in data.reports if r.task == "emotion"]
    out: list[str] = [
        "# Evaluation report",
        "",
        f"Generated by `make report` (`python -m evaluation.report`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Do not edit by hand.",
        "",
        "- **Headline figures** come from public, human-labelled benchmarks and the project's annotated real tweets: "
        "the first table below. Everything after it is a smoke test.",
        f"- **Smoke-test set**: `{data.gold_path}`, {len(data.gold)} tweets written and labelled for this project "
        f"(labels: {gold_counts['emotion']} emotion, {gold_counts['stance']} stance, "
        f"{gold_counts['sentiment']} sentiment). Self-written text does not measure quality on real posts: its "
        "stance labels follow the tone so closely that the gold sentiment alone scores like a model on it.",
        f"- **Sample data**: `{data.sample_path}`, {len(data.sample)} tweets without gold labels: predicted "
        "distributions and lexicon agreement only.",
        "- **Source**: the models in-process, loaded by the services' own constructors "
        "(`emotion.model.load_classifier`, `stance.main.build_scorer`); `python -m evaluation --source index` "
        "scores a running index the same way.",
        *[f"- **Note**: {n}" for n in data.notes],
        "",
        *benchmark_section(data.benchmarks),
        "## Smoke test: the self-written set",
        "",
        *summary_table(data.reports),
        "",
        "ECE: expected calibration error over 10 equal-width confidence bins (0 = confidence matches accuracy).",
        "",
        "## Emotion",
        "",
    ]
    for r in emotion:
        out += [f"`{r.run}`: accuracy {r.accuracy:.3f}, macro-F1 {r.macro_f1:.3f}, ECE {r.ece or 0:.3f}.", "",
                *per_class_table(r), "",
                _img(data, "distribution:emotion", base, "emotion distributions"),
                _img(data, f"confusion:emotion:{r.run}", base, "emotion confusion"),
                _img(data, "confidence:emotion", base, "emotion confidence"),
                _img(data, f"reliability:emotion:{r.run}", base, "emotion reliability"), ""]
    out += _stance_section(data, base)
    out += _sentiment_section(data, base)
    out += ["## Sample data", "", "Predicted label distributions on the sample data (no gold):", "",
            "| task | distribution |", "| --- | --- |"]
    out += [f"| {task} | {_dist(d)} |" for task, d in data.sample_distributions.items()]
    out += ["", *_bench_section(data), *_failure_section(data)]
    if data.lessons:
        out += [data.lessons.strip(), ""]
    return "\n".join(line for line in out if line is not None) + "\n"


def _dist(counts: dict[str, Any]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in counts.items() if v)
