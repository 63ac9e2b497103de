"""``python -m gateway.dlq list|show|redrive`` (``make dlq``): the dead-letter tool's commands.

    list     every *.dlq topic and tweets.rejected: messages held, how many match the filters,
             how many were re-driven already, and the top reasons
    show     the dead letters themselves (newest last), as a table or JSON Lines
    redrive  republish matching dead letters to their source topic (``--dry-run`` counts only);
             running it again republishes nothing twice (see ``gateway.dead_letters``)

Filters: ``--reason`` (a reason or its category: ``invalid_tweet`` matches ``invalid_tweet:text``)
and ``--service`` (emotion, stance, gateway-indexer, ingestor, gateway-api), both repeatable;
``--topic`` narrows to one topic. Kafka is ``KAFKA_BOOTSTRAP_SERVERS`` / ``KAFKA_TOPIC_PREFIX``,
from the settings ``main`` passes in as the context object.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from gateway.dead_letters import DeadLetterStore, Letter
from gateway.dlq.logic import matches, topic_count
from gateway.settings import GatewaySettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
console = Console()
T = TypeVar("T")

Reason = Annotated[list[str] | None, typer.Option("--reason", "-r", help="reason or category; repeatable")]
Service = Annotated[list[str] | None, typer.Option("--service", "-s", help="failing service; repeatable")]
Topic = Annotated[str | None, typer.Option("--topic", "-t", help="one topic (prefix optional)")]


@dataclass(frozen=True)
class Selection:
    """The dead letters a command works on: ``--reason``, ``--service`` and ``--topic``."""

    reasons: list[str]
    services: list[str]
    topic: str | None

    async def letters(self, store: DeadLetterStore, *, rejected: bool = True) -> dict[str, list[Letter]]:
        """The matching letters of each selected topic (``rejected``: tweets.rejected too)."""
        topics = await store.topics(rejected=rejected)
        if self.topic is not None:
            wanted = {self.topic, f"{store.settings.topic_prefix}{self.topic}"}
            topics = [t for t in topics if t in wanted]
            if not topics:
                raise typer.BadParameter(f"no dead-letter topic {self.topic!r}", param_hint="--topic")
        return {
            t: [letter async for letter in store.scan(t) if matches(letter, self.reasons, self.services)]
            for t in topics
        }


def _selection(reason: Reason = None, service: Service = None, topic: Topic = None) -> Selection:
    return Selection(reason or [], service or [], topic)


def selecting(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the options of :func:`_selection` in place of its ``selection``
    parameter (after ``ctx``), handed to it as one :class:`Selection`: the shared options of
    click's decorators, for typer, which reads the options from the signature."""
    options = inspect.signature(_selection, eval_str=True).parameters
    own = inspect.signature(command, eval_str=True).parameters

    @functools.wraps(command)
    def with_selection(**values: Any) -> None:
        picked = {name: values.pop(name) for name in options}
        command(selection=_selection(**picked), **values)

    ctx, *rest = (p for name, p in own.items() if name != "selection")
    parameters = [ctx, *options.values(), *rest]
    with_selection.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    with_selection.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_selection


def _run(ctx: typer.Context, work: Callable[[DeadLetterStore], Coroutine[Any, Any, T]]) -> T:
    settings = ctx.obj
    if not isinstance(settings, GatewaySettings):
        raise typer.BadParameter("run through gateway.dlq.main, which passes the settings")

    async def run() -> T:
        store = DeadLetterStore(settings.kafka)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


@app.command("list")
@selecting
def list_topics(
    ctx: typer.Context,
    selection: Selection,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per topic")] = False,
) -> None:
    """Counts per dead-letter topic."""

    async def work(store: DeadLetterStore) -> None:
        selected = await selection.letters(store)
        sizes = await store.sizes(selected)
        done = await store.redriven()
        rows = [
            topic_count(
                name.removeprefix(store.settings.topic_prefix),
                sizes.get(name, 0),
                letters,
                done,
                rejects=name == store.settings.topics.rejected,
            )
            for name, letters in selected.items()
        ]
        if as_json:
            for row in rows:
                console.out(json.dumps(asdict(row)), highlight=False)
            return
        table = Table("topic", "messages", "matching", "re-driven", "top reasons (matching)")
        for row in rows:
            redriven = "-" if row.redriven is None else str(row.redriven)
            reasons = ", ".join(f"{r} x{n}" for r, n in list(row.reasons.items())[:3])
            table.add_row(row.topic, str(row.messages), str(row.matching), redriven, reasons)
        console.print(table)

    _run(ctx, work)


@app.command()
@selecting
def show(
    ctx: typer.Context,
    selection: Selection,
    limit: Annotated[int, typer.Option(min=1, help="at most this many per topic (the newest)")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines, whole values")] = False,
) -> None:
    """The dead letters themselves."""

    async def work(store: DeadLetterStore) -> None:
        selected = await selection.letters(store)
        if as_json:
            for letters in selected.values():
                for letter in letters[-limit:]:
                    row = asdict(letter) | {"headers": {k: v.decode(errors="replace") for k, v in letter.headers}}
                    console.out(json.dumps(row, ensure_ascii=False), highlight=False)
            return
        table = Table("where", "service", "reason", "key", "failed at", "value")
        for letters in selected.values():
            for letter in letters[-limit:]:
                at = (letter.failed_at or "")[:19]
                table.add_row(letter.ref, letter.service, letter.reason, letter.key or "", at, letter.value[:80])
        console.print(table)

    _run(ctx, work)


@app.command()
@selecting
def redrive(
    ctx: typer.Context,
    selection: Selection,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be republished; publish nothing")
    ] = False,
) -> None:
    """Republish matching dead letters to their source topic, each at most once."""

    async def work(store: DeadLetterStore) -> None:
        selected = await selection.letters(store, rejected=False)
        letters = [letter for group in selected.values() for letter in group]
        result = await store.redrive(letters, dry_run=dry_run)
        verb = "would republish" if dry_run else "republished"
        targets = ", ".join(f"{t.removeprefix(store.settings.topic_prefix)} x{n}" for t, n in result.by_target.items())
        count = result.selected - result.already if dry_run else result.redriven
        console.print(
            f"{result.selected} matching dead letters; {result.already} re-driven earlier; "
            f"{verb} {count}{f' ({targets})' if targets else ''}"
        )

    _run(ctx, work)
