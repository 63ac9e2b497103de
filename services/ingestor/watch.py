"""``ingestor watch DIR``: which files in a directory are ready to replay.

A file is ready once it is a regular file whose name does not mark it as unfinished (hidden,
``*.tmp``, ``*.part``, ``*.partial``, ``*.crdownload``, ``*.swp``) and whose size and mtime have
not changed for ``settle_s`` seconds: a writer still copying it in would change them. Writers
that can should write under a temporary name and rename when done (atomic on one filesystem).
Files come oldest first (mtime, then name), so a stream of files replays in arrival order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

UNFINISHED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


def unfinished_name(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(UNFINISHED_SUFFIXES)


class ReadyFiles:
    def __init__(self, directory: Path, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.settle_s = settle_s
        self._clock = clock
        self._seen: dict[str, tuple[int, int, float]] = {}  # path → (size, mtime_ns, unchanged since)

    def scan(self) -> list[Path]:
        now = self._clock()
        current: dict[str, tuple[int, int, float]] = {}
        ready: list[tuple[int, str]] = []
        for entry in os.scandir(self.directory):
            if unfinished_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed or removed between listing and stat
            size, mtime = stat.st_size, stat.st_mtime_ns
            previous = self._seen.get(entry.path)
            since = previous[2] if previous is not None and previous[:2] == (size, mtime) else now
            current[entry.path] = (size, mtime, since)
            if size > 0 and now - since >= self.settle_s:
                ready.append((mtime, entry.path))
        self._seen = current
        return [Path(path) for _, path in sorted(ready)]
