"""`make demo`'s last step: wait until the replayed tweets are labelled, show some, print URLs."""

from __future__ import annotations

import argparse
import sys
import time

import httpx
from rich.console import Console
from rich.table import Table


def fetch_all(client: httpx.Client) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/tweets", params=params).raise_for_status().json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


JAEGER_PLACEHOLDER = "placeholder for the Jaeger UI"  # the page a Jaeger built without its UI serves on /


def jaeger_line(url: str) -> str:
    """The UI's address only where a UI answers: a Go-module build of Jaeger serves the query API
    and a placeholder page instead (deploy/local/infra.sh builds one where the release archive
    is unreachable)."""
    try:
        page = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return f"Jaeger:     not answering at {url}"
    if page.is_success and JAEGER_PLACEHOLDER not in page.text:
        return f"Jaeger UI:  {url}"
    return (
        "Jaeger:     no web UI in this build (built from its Go module); a tweet's trace: GET /tweets/<id>/trace,"
        f" or the query API {url}/api/traces"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--jaeger", default="http://127.0.0.1:16686")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)
    deadline = time.monotonic() + args.timeout
    with httpx.Client(base_url=args.url, timeout=30) as client, console.status("waiting for labels...") as status:
        while True:
            items = fetch_all(client)
            done = [t for t in items if t.get("emotion") and t.get("stance")]
            status.update(f"labelled {len(done)}/{len(items)} tweets (emotion and stance)...")
            if items and len(done) == len(items):
                break
            if time.monotonic() > deadline:
                console.print(f"[red]only {len(done)}/{len(items)} tweets labelled after {args.timeout:.0f}s;"
                              " see `make status` and deploy/local/services.sh logs <name>[/red]")
                return 1
            time.sleep(1)
    table = Table(title=f"{len(items)} tweets indexed and labelled (showing 8)", show_lines=True)
    table.add_column("id", no_wrap=True)
    table.add_column("author", no_wrap=True)
    table.add_column("text", overflow="fold", max_width=70)
    for column in ("emotion", "valence", "stance"):
        table.add_column(column, no_wrap=True)
    for tweet in items[:8]:
        emotion, stance = tweet["emotion"], tweet["stance"]
        assert isinstance(emotion, dict) and isinstance(stance, dict)
        author = tweet["author"]
        table.add_row(
            str(tweet["id"]),
            str(author["handle"] if isinstance(author, dict) else author),
            str(tweet["text"])[:120],
            f"{emotion['label']} ({emotion['score']:.2f})",
            f"{emotion.get('valence') or 0:+.2f}",
            f"{stance['label']} ({stance['score']:.2f})",
        )
    console.print(table)
    console.print(f"API:        {args.url}/tweets   (docs: {args.url}/docs)")
    console.print(jaeger_line(args.jaeger), markup=False)
    console.print("Status:     make status     Stop: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
