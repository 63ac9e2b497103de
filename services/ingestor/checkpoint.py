"""Durable ingestion state, kept in a state directory outside the data (``INGESTOR_STATE_DIR``).

- A :class:`Checkpoint` says where to resume one input: the file's identity (device, inode and
  a fingerprint of its first bytes) and a :class:`Cursor` (byte offset, plus how many records
  of the record at that offset were already published). It is written atomically (temporary
  file, fsync, rename) and only after Kafka acknowledged everything before the cursor.
- The :class:`Ledger` lists the files ``ingestor watch`` finished, by identity, so a restart
  never replays them and a renamed file is still recognised.

Files are named after what they track and where it goes (path or identity, broker and topic
prefix), so one state directory serves several inputs and several clusters.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel

FINGERPRINT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Cursor:
    """Resume at byte ``offset``, skipping the first ``skip`` records read from there.

    A record is an item the source yields; a line holding a v2 page yields many, so a batch
    that ends inside a page resumes at the page's line and skips what was already sent.
    """

    offset: int
    skip: int = 0


@dataclass(frozen=True, slots=True)
class Mark:
    """In a source's items: once every item before this mark is acknowledged, resume at ``cursor``
    (in ``file``; None: the file the replay was opened on)."""

    cursor: Cursor
    file: FileIdentity | None = None


class FileIdentity(BaseModel):
    device: int
    inode: int
    fingerprint: str  # sha256 of the first ``fingerprint_bytes`` bytes
    fingerprint_bytes: int

    def same_file(self, path: Path) -> bool:
        """``path`` is this file: same device and inode, and its first bytes are unchanged."""
        try:
            stat = path.stat()
            if (stat.st_dev, stat.st_ino) != (self.device, self.inode) or stat.st_size < self.fingerprint_bytes:
                return False
            with path.open("rb") as handle:
                return fingerprint(handle.read(self.fingerprint_bytes)) == self.fingerprint
        except OSError:
            return False


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def identity_of(handle: IO[bytes], head: bytes) -> FileIdentity:
    """The identity of an open file whose first bytes (up to :data:`FINGERPRINT_BYTES`) are ``head``."""
    stat = os.fstat(handle.fileno())
    return FileIdentity(
        device=stat.st_dev, inode=stat.st_ino, fingerprint=fingerprint(head), fingerprint_bytes=len(head)
    )


def read_identity(path: Path) -> FileIdentity:
    with path.open("rb") as handle:
        return identity_of(handle, handle.read(FINGERPRINT_BYTES))


class Checkpoint(BaseModel):
    path: str
    file: FileIdentity
    offset: int
    skip: int = 0
    updated_at: datetime

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.offset, self.skip)


class StateDir:
    """One directory of checkpoints and ledgers, scoped to a broker and topic prefix."""

    def __init__(self, root: Path, scope: str) -> None:
        self.root = root
        self._scope = scope  # e.g. "127.0.0.1:9092|test-abc." : state for one cluster's topics

    def _name(self, kind: str, key: str) -> Path:
        digest = hashlib.sha256(f"{self._scope}\0{key}".encode()).hexdigest()[:20]
        return self.root / f"{kind}-{digest}.json"

    def checkpoint_file(self, key: str) -> Path:
        return self._name("checkpoint", key)

    def ledger_file(self, directory: Path) -> Path:
        return self._name("ledger", str(directory.resolve())).with_suffix(".jsonl")

    def load(self, key: str) -> Checkpoint | None:
        try:
            return Checkpoint.model_validate_json(self.checkpoint_file(key).read_bytes())
        except FileNotFoundError:
            return None

    def save(self, key: str, path: Path, file: FileIdentity, cursor: Cursor) -> None:
        checkpoint = Checkpoint(
            path=str(path), file=file, offset=cursor.offset, skip=cursor.skip, updated_at=datetime.now(UTC)
        )
        write_atomically(self.checkpoint_file(key), checkpoint.model_dump_json().encode())

    def forget(self, key: str) -> None:
        self.checkpoint_file(key).unlink(missing_ok=True)


def write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Ledger:
    """Append-only list of finished files (one JSON object per line, fsynced per entry)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: set[tuple[int, int, str]] = set()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                self._done.add((entry["device"], entry["inode"], entry["fingerprint"]))
            except (ValueError, KeyError):
                continue  # a line torn by a crash mid-append: that file is simply not done

    def __len__(self) -> int:
        return len(self._done)

    def has(self, file: FileIdentity) -> bool:
        return (file.device, file.inode, file.fingerprint) in self._done

    def add(self, path: Path, file: FileIdentity, published: int, error: str | None = None) -> None:
        entry = {**file.model_dump(), "path": str(path), "published": published, "error": error,
                 "at": datetime.now(UTC).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._done.add((file.device, file.inode, file.fingerprint))
