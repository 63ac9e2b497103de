"""The command line (``python -m ingestor``, run by ``main.main()``): replay a dataset into
Kafka with a progress bar and a summary, or watch a directory. What the commands run is wired in
by ``main`` as :class:`Runs` (the context's ``obj``), so this module holds no Kafka or
Elasticsearch client.

Human output (progress, table, errors) goes to stderr; stdout carries JSON log lines, the
last of which is the summary, so ``python -m ingestor replay f.json | tail -1`` parses. When
stdout is a terminal too, log lines are rendered by the same rich console instead, above the
progress bar, so they never cut through it or the summary table.
Exit codes: 0 done (rejects are data, not failures), 1 the source broke off mid-file,
2 unusable input or options, 3 Kafka (or, with --skip-existing, Elasticsearch) unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from common.logging import configure_logging
from common.metrics import start_metrics_server
from common.telemetry import configure_tracing, shutdown_tracing
from ingestor.errors import IndexUnavailableError, KafkaUnavailableError, ReaderError, SourceFormatError
from ingestor.formats import FORMATS, json_container
from ingestor.formats.tabular import DEFAULT_COLUMNS
from ingestor.logic import ReplaySummary
from ingestor.reader import Reader, warm_up
from ingestor.replay import ProgressCallback
from ingestor.settings import SERVICE, IngestorSettings
from ingestor.source import HEAD_BYTES

log = logging.getLogger(SERVICE)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)


@dataclass(frozen=True)
class ReplayOptions:
    """What one ``replay`` is asked for: the command's options, handed to ``main.replay`` whole."""

    fmt: str | None = None  # --format; None: detect
    columns: str | None = None  # --columns (csv)
    limit: int | None = None  # records at most
    rate: float | None = None  # tweets per second at most
    follow: bool = False
    skip_existing: bool = False


class ReplayRun(Protocol):
    """Replay one source into Kafka (``main.replay``)."""

    async def __call__(
        self,
        path: str,
        settings: IngestorSettings,
        options: ReplayOptions,
        *,
        stopping: asyncio.Event | None,
        on_progress: ProgressCallback | None,
    ) -> ReplaySummary: ...


class WatchRun(Protocol):
    """Replay every file that arrives in a directory until stopped (``main.watch``)."""

    async def __call__(
        self,
        directory: Path,
        settings: IngestorSettings,
        *,
        fmt: str | None,
        columns: str | None,
        skip_existing: bool,
        stopping: asyncio.Event | None,
        on_file: Callable[[ReplaySummary], None] | None,
    ) -> list[ReplaySummary]: ...


@dataclass(frozen=True)
class Runs:
    """What the commands run: ``app(obj=Runs(...))`` (``main.main()`` passes the real ones)."""

    replay: ReplayRun
    watch: WatchRun


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
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="dataset file, or - for JSON Lines on stdin")],
    format_: Annotated[
        str | None, typer.Option("--format", "-f", help=f"one of: {', '.join(FORMATS)} (default: detect)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after N records")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="at most N tweets per second")] = None,
    columns: Annotated[
        str | None, typer.Option(help="csv column names, e.g. text=body,id=tweet_key (see `formats`)")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(help="keep reading lines appended to a JSON Lines file; resumes from its checkpoint"),
    ] = False,
    skip_existing: Annotated[bool, typer.Option(help="do not publish tweets already indexed")] = False,
    state_dir: Annotated[Path | None, typer.Option(help="checkpoints (default INGESTOR_STATE_DIR)")] = None,
    summary_json: Annotated[Path | None, typer.Option(help="also write the summary as JSON here")] = None,
) -> None:
    """Replay PATH into Kafka: valid tweets to tweets.raw, everything else to tweets.rejected."""
    runs = _runs(ctx)
    if not follow and (processes := _reading_processes(path)):
        warm_up(processes)  # a large file is read in child processes: they start while this one does
    settings = _start(state_dir)
    options = ReplayOptions(
        fmt=format_, columns=columns, limit=limit, rate=rate, follow=follow, skip_existing=skip_existing
    )

    async def run(stopping: asyncio.Event, on_progress: ProgressCallback) -> ReplaySummary:
        return await runs.replay(path, settings, options, stopping=stopping, on_progress=on_progress)

    with _failures():
        summary = asyncio.run(_with_progress(run))
    console.print(_summary_table(summary))
    if summary_json is not None:
        summary_json.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    log.info("replay summary", extra={"summary": summary.model_dump(mode="json")})
    if summary.errors:
        for error in summary.errors:
            console.print(f"[bold red]source error:[/] {error}")
        raise typer.Exit(1)


@app.command()
def watch(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="directory new dataset files arrive in")],
    format_: Annotated[str | None, typer.Option("--format", "-f", help="default: detect per file")] = None,
    columns: Annotated[str | None, typer.Option(help="csv column names (see `formats`)")] = None,
    skip_existing: Annotated[bool, typer.Option(help="do not publish tweets already indexed")] = False,
    state_dir: Annotated[Path | None, typer.Option(help="ledger and checkpoints (default INGESTOR_STATE_DIR)")] = None,
) -> None:
    """Replay every file that arrives in DIRECTORY, each exactly once across restarts, until stopped.

    A file is picked up once its size has been stable for INGESTOR_WATCH_SETTLE_S; names like
    *.tmp, *.part or .hidden are never read (write there, then rename).
    """
    runs = _runs(ctx)
    warm_up()  # large files are read in a child process: one starts while this one does
    settings = _start(state_dir)

    def done(summary: ReplaySummary) -> None:
        console.print(
            f"[green]{summary.source}[/]: read {summary.read:,} · published {summary.published:,} · "
            f"rejected {summary.rejected:,} · already indexed {summary.already_indexed:,}"
        )

    async def run() -> list[ReplaySummary]:
        stopping = _stop_on_signals()
        return await runs.watch(directory, settings, fmt=format_, columns=columns, skip_existing=skip_existing,
                                stopping=stopping, on_file=done)

    with _failures():
        summaries = asyncio.run(run())
    log.info("watch stopped", extra={"files": len(summaries), "published": sum(s.published for s in summaries)})


def _runs(ctx: typer.Context) -> Runs:
    runs = ctx.find_object(Runs)
    if runs is None:
        raise RuntimeError("nothing to run: start the command line with app(obj=Runs(...)), as main.main() does")
    return runs


def _reading_processes(path: str) -> int:
    """How many processes the replay reads ``path`` in (``reader.open_reader``): none for stdin
    and small files, several for large JSON Lines (``INGESTOR_READER_PROCESSES``), else one."""
    with contextlib.suppress(OSError, ValueError):
        settings = IngestorSettings()
        if path == "-" or Path(path).stat().st_size < settings.reader_process_min_bytes:
            return 0
        if settings.reader_processes == 1:
            return 1
        with open(path, "rb") as handle:
            lines = json_container(handle.read(HEAD_BYTES)) == "json-lines"
        return settings.reader_processes if lines else 1
    return 0


def _start(state_dir: Path | None) -> IngestorSettings:
    settings = IngestorSettings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    configure_logging(SERVICE, settings.telemetry.log_level)
    if sys.stdout.isatty():  # a person is watching: one console for logs, progress and the table
        logging.getLogger().handlers[:] = [RichHandler(console=console, show_path=False)]
    configure_tracing(SERVICE, settings.telemetry, head_sampled=True)  # the replay samples each tweet itself
    start_metrics_server(settings.metrics_port, SERVICE, settings.telemetry.metrics_host)
    return settings


# The expected failures: the words that open their line, and the exit code.
_EXPECTED_FAILURES: tuple[tuple[type[Exception], str, int], ...] = (
    (SourceFormatError, "error:", 2),
    (ReaderError, "error:", 1),
    (KafkaUnavailableError, "Kafka unavailable:", 3),
    (IndexUnavailableError, "Elasticsearch unavailable:", 3),
)


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """The expected failures as one clear line and an exit code, never a traceback."""
    try:
        yield
    except tuple(kind for kind, _, _ in _EXPECTED_FAILURES) as exc:
        heading, code = next((h, c) for kind, h, c in _EXPECTED_FAILURES if isinstance(exc, kind))
        console.print(f"[bold red]{heading}[/] {exc}")
        raise typer.Exit(code) from None
    finally:
        shutdown_tracing()


def _stop_on_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)  # finish the batch in hand, then summarise
    return stopping


async def _with_progress(run: Callable[[asyncio.Event, ProgressCallback], Awaitable[ReplaySummary]]) -> ReplaySummary:
    """Run a replay with a progress bar on the console, until done or a signal stops it."""
    stopping = _stop_on_signals()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("starting", total=None)

    def on_progress(summary: ReplaySummary, source: Reader) -> None:
        progress.start()  # only once reading has begun, so early errors print alone
        done = source.bytes_read()
        progress.update(
            task,
            description=f"read {summary.read:,} · published {summary.published:,} · rejected {summary.rejected:,}",
            completed=done or 0,
            total=source.total_bytes,
        )

    try:
        return await run(stopping, on_progress)
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
        *((("already indexed (--skip-existing)", f"{summary.already_indexed:,}"),) if summary.already_indexed else ()),
        *((("follow", ", ".join(summary.follow_events)),) if summary.follow_events else ()),
        *((f"  {reason}", f"{n:,}") for reason, n in sorted(summary.rejected_by_reason.items())),
        ("elapsed", f"{summary.elapsed_s:.2f} s"),
        ("rate", f"{summary.rate_per_s:,.0f} records/s"),
        ("reconciles (read = published + rejected + already indexed)", "yes" if summary.reconciles else "[red]NO[/]"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
