"""``--follow``: tail a JSON Lines file across restarts, rotation and truncation.

Each line comes with its byte span and the identity of the file it came from; the items parsed
from a line are followed by :class:`Mark` s, so the replay knows where to resume once Kafka has
acknowledged them (see ``checkpoint``).

- **Resume**: the checkpointed file is found by identity. If it is still at its path, reading
  resumes at the checkpoint's offset; if it was rotated away (renamed beside it, as logrotate
  does), its rest is read first, then the new file from its start.
- **Rotation while running**: when the path names another inode, the old file is read to its
  end, then the new one from its start.
- **Truncation**: when the file is shorter than what was read (or its first bytes changed
  while the process was down), it is read again from its start.

Blocking I/O: runs in the replay's reader thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ingestor.checkpoint import FINGERPRINT_BYTES, Checkpoint, Cursor, FileIdentity, Mark, identity_of
from ingestor.source import IDLE, Idle, Item, Source, line_items

log = logging.getLogger("ingestor")


@dataclass(frozen=True, slots=True)
class TailLine:
    data: bytes
    start: int
    end: int
    file: FileIdentity
    skip: int = 0  # records of this line already published before a restart


class FollowedFile:
    def __init__(self, path: Path, poll_interval_s: float, resume: Checkpoint | None = None) -> None:
        self.path = path
        self.poll_interval_s = poll_interval_s
        self.resume = resume
        self.events: list[str] = []  # "resumed", "rotated", "truncated": for the log and the summary
        self._handle: IO[bytes] | None = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def lines(self) -> Iterator[TailLine | Idle]:
        checkpoint = self.resume
        start = skip = 0
        if checkpoint is not None:
            if checkpoint.file.same_file(self.path):
                start, skip = checkpoint.offset, checkpoint.skip
                self._event("resumed", offset=start)
            else:
                rotated = self._rotated_copy(checkpoint.file)
                if rotated is not None:
                    self._event("rotated", while_down=True, finishing=str(rotated), offset=checkpoint.offset)
                    yield from self._read(rotated, checkpoint.offset, follow=False, skip=checkpoint.skip)
                elif _same_inode(checkpoint.file, self.path):
                    self._event("truncated", while_down=True)
                else:
                    self._event("checkpointed file is gone", expected=str(checkpoint.path))
        yield from self._read(self.path, start, follow=True, skip=skip)

    def _read(self, path: Path, offset: int, *, follow: bool, skip: int = 0) -> Iterator[TailLine | Idle]:
        while True:
            handle = self._open(path)
            size = os.fstat(handle.fileno()).st_size
            if size < offset:
                self._event("truncated", offset=offset, size=size)
                offset = skip = 0
            handle.seek(offset)
            position = offset
            head = os.pread(handle.fileno(), min(FINGERPRINT_BYTES, offset), 0)
            file = identity_of(handle, head)
            pending, pending_start = b"", position
            while True:
                chunk = handle.readline()
                if chunk:
                    if not pending:
                        pending_start = position
                    pending += chunk
                    position += len(chunk)
                    if len(head) < FINGERPRINT_BYTES:
                        head = os.pread(handle.fileno(), min(FINGERPRINT_BYTES, position), 0)
                        file = identity_of(handle, head)
                    if pending.endswith(b"\n"):
                        yield TailLine(pending, pending_start, position, file, skip)
                        pending, skip = b"", 0
                    continue
                if not follow:
                    if pending:  # the last line of a rotated file never got its newline
                        yield TailLine(pending, pending_start, position, file, skip)
                    return
                if os.fstat(handle.fileno()).st_size < position or os.pread(handle.fileno(), len(head), 0) != head:
                    self._event("truncated", offset=position)  # or rewritten: its first bytes changed
                    offset = skip = 0
                    break
                if self._rotated_away(handle):
                    self._event("rotated", finished_bytes=position)
                    if pending:
                        yield TailLine(pending, pending_start, position, file)
                    offset = 0
                    break
                yield IDLE
                time.sleep(self.poll_interval_s)  # in the reader thread, after the batch was flushed

    def _open(self, path: Path) -> IO[bytes]:
        self.close()
        self._handle = path.open("rb")
        return self._handle

    def _rotated_away(self, handle: IO[bytes]) -> bool:
        """The path now names another file (rotation); a missing path is waited for."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return False
        mine = os.fstat(handle.fileno())
        return (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino)

    def _rotated_copy(self, file: FileIdentity) -> Path | None:
        """The checkpointed file under another name beside the path (``live.jsonl.1``)."""
        try:
            siblings = list(os.scandir(self.path.parent))
        except OSError:
            return None
        for entry in siblings:
            if entry.is_file() and entry.path != str(self.path) and file.same_file(Path(entry.path)):
                return Path(entry.path)
        return None

    def _event(self, what: str, **detail: object) -> None:
        self.events.append(what)
        log.info(f"follow: {what}", extra={"path": str(self.path), **detail})


def _same_inode(file: FileIdentity, path: Path) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return (stat.st_dev, stat.st_ino) == (file.device, file.inode)


def followed_items(lines: Iterator[TailLine | Idle], source: Source) -> Iterator[Item]:
    """Items of each line (less those already published before a restart), each followed by
    the mark to resume after it."""
    for line in lines:
        if isinstance(line, Idle):
            yield line
            continue
        items = list(line_items(line.data, f"byte {line.start}", source))
        for index, item in enumerate(items):
            done = index + 1 == len(items)
            if index >= line.skip:
                yield item
                yield Mark(Cursor(line.end) if done else Cursor(line.start, index + 1), line.file)


def open_followed(source: Source, path: Path, poll_interval_s: float, resume: Checkpoint | None) -> FollowedFile:
    """Point ``source`` (opened with ``follow=True``) at a tail of ``path`` resuming at ``resume``."""
    followed = FollowedFile(path, poll_interval_s, resume)
    source.items = followed_items(followed.lines(), source)
    return followed
