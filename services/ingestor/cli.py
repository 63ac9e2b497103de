"""``python -m ingestor``: replay a dataset into Kafka with a progress bar and a summary.

Human output (progress, table, errors) goes to stderr; stdout carries JSON log lines, the
last of which is the summary, so ``python -m ingestor replay f.json | tail -1`` parses.
Exit codes: 0 done (rejects are data, not failures), 1 the source broke off mid-file,
2 unusable input or options, 3 Kafka unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from common.logging import configure_logging
from common.metrics import start_metrics_server
from common.telemetry import configure_tracing, shutdown_tracing
from ingestor.errors import KafkaUnavailableError, SourceFormatError
from ingestor.formats import FORMATS
from ingestor.formats.tabular import DEFAULT_COLUMNS
from ingestor.logic import ReplaySummary
from ingestor.main import replay as run_replay
from ingestor.settings import IngestorSettings
from ingestor.source import Source

log = logging.getLogger("ingestor")
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)


@app.callback()
def ingestor() -> None:
    """Validate tweet datasets and replay them into Kafka (tweets.raw / tweets.rejected)."""


@app.command()
def formats() -> None:
    """List the supported input formats and the CSV column names recognised by default."""
    table = Table("format", "what it reads", title="formats (auto-detected; --format overrides)")
    for name, description in FORMATS.items():
        table.add_row(name, description)
    columns = Table("field", "header names tried, in order", title="csv columns (--columns field=name)")
    for field, names in DEFAULT_COLUMNS.items():
        columns.add_row(field, ", ".join(names))
    console.print(table, columns)


@app.command()
def replay(
    path: Annotated[str, typer.Argument(help="dataset file, or - for JSON Lines on stdin")],
    format_: Annotated[
        str | None, typer.Option("--format", "-f", help=f"one of: {', '.join(FORMATS)} (default: detect)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after N records")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="at most N tweets per second")] = None,
    columns: Annotated[
        str | None, typer.Option(help="csv column names, e.g. text=body,id=tweet_key (see `formats`)")
    ] = None,
    follow: Annotated[bool, typer.Option(help="keep reading lines appended to a JSON Lines file")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="also write the summary as JSON here")] = None,
) -> None:
    """Replay PATH into Kafka: valid tweets to tweets.raw, everything else to tweets.rejected."""
    settings = IngestorSettings()
    configure_logging("ingestor", settings.telemetry.log_level)
    configure_tracing("ingestor", settings.telemetry)
    start_metrics_server(settings.metrics_port, "ingestor", settings.telemetry.metrics_host)
    try:
        summary = asyncio.run(_replay(path, settings, format_, columns, limit, rate, follow))
    except SourceFormatError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except KafkaUnavailableError as exc:
        console.print(f"[bold red]Kafka unavailable:[/] {exc}")
        raise typer.Exit(3) from None
    finally:
        shutdown_tracing()
    console.print(_summary_table(summary))
    if summary_json is not None:
        summary_json.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    log.info("replay summary", extra={"summary": summary.model_dump(mode="json")})
    if summary.errors:
        for error in summary.errors:
            console.print(f"[bold red]source error:[/] {error}")
        raise typer.Exit(1)


async def _replay(
    path: str,
    settings: IngestorSettings,
    fmt: str | None,
    columns: str | None,
    limit: int | None,
    rate: float | None,
    follow: bool,
) -> ReplaySummary:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)  # finish the batch in hand, then summarise
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("starting", total=None)

    def on_progress(summary: ReplaySummary, source: Source) -> None:
        progress.start()  # only once reading has begun, so early errors print alone
        done = source.bytes_read()
        progress.update(
            task,
            description=f"read {summary.read:,} · published {summary.published:,} · rejected {summary.rejected:,}",
            completed=done or 0,
            total=source.total_bytes,
        )

    try:
        return await run_replay(
            path,
            settings,
            fmt=fmt,
            columns=columns,
            limit=limit,
            rate=rate,
            follow=follow,
            stopping=stopping,
            on_progress=on_progress,
        )
    finally:
        progress.stop()


def _summary_table(summary: ReplaySummary) -> Table:
    table = Table(title=f"replay of {summary.source} ({summary.format or 'unknown format'})", show_header=False)
    rows = [
        ("read", f"{summary.read:,}"),
        ("valid", f"{summary.valid:,}"),
        ("duplicates within the file", f"{summary.duplicates:,}"),
        ("published to " + summary.topics.get("raw", "tweets.raw"), f"{summary.published:,}"),
        ("rejected to " + summary.topics.get("rejected", "tweets.rejected"), f"{summary.rejected:,}"),
        *((f"  {reason}", f"{n:,}") for reason, n in sorted(summary.rejected_by_reason.items())),
        ("elapsed", f"{summary.elapsed_s:.2f} s"),
        ("rate", f"{summary.rate_per_s:,.0f} records/s"),
        ("reconciles (read = published + rejected)", "yes" if summary.reconciles else "[red]NO[/]"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
