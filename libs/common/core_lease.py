"""Cores shared by demand between the inference services of one host.

A static split (issue 8's CPU budget) leaves a core idle whenever one service has nothing to
do. Instead, every inference step (an emotion length bucket, a stance tweet) runs under a
lease on some of the host's cores: the lease holds one lock file per core it takes, and the
step runs with that many threads. Locks are ``flock``s, so the number of inference threads on
the host never exceeds the cores (no oversubscription), and a process that dies releases its
locks with it.

Fairness: a process announces its demand while it has work (a file per process under
``demand/``, removed when the work is done or found stale). A step takes at most its fair
share, ``cores // busy processes`` (at least 1), plus any core nobody else is waiting for, so
a service alone on the host gets every core, and two busy services split them. Short leases
(one step each) let the split follow the work within one step's time.

Services on different hosts each lease their own host's cores: the directory is local.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def busy_processes(demand_dir: Path) -> list[int]:
    """Pids that announced demand and are still alive (stale files of dead processes go)."""
    alive = []
    for entry in demand_dir.glob("*.pid"):
        try:
            pid = int(entry.stem)
            os.kill(pid, 0)
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
            continue
        except (ValueError, PermissionError):
            continue  # not ours to judge: counts as busy only if we can tell
        alive.append(pid)
    return sorted(alive)


def fair_share(cores: int, busy: int, wanted: int) -> int:
    """Cores one process may take now: its share of the busy processes, at least 1, at most wanted."""
    return max(1, min(wanted, cores // max(1, busy)))


class CoreLease:
    """Leases on this host's ``cores`` cores, through lock files in ``directory``."""

    def __init__(self, directory: Path, cores: int, wanted: int | None = None) -> None:
        if cores < 1:
            raise ValueError("cores must be at least 1")
        self.directory = directory
        self.cores = cores
        self.wanted = min(wanted or cores, cores)
        self.demand_dir = directory / "demand"
        self.demand_dir.mkdir(parents=True, exist_ok=True)
        self._demand_file = self.demand_dir / f"{os.getpid()}.pid"
        self._slots = [directory / f"core-{n}.lock" for n in range(cores)]
        for slot in self._slots:
            slot.touch(exist_ok=True)

    @contextlib.contextmanager
    def demand(self) -> Iterator[None]:
        """Announce work for the duration (a batch): other processes then take only their share."""
        self._demand_file.write_text(str(os.getpid()))
        try:
            yield
        finally:
            self._demand_file.unlink(missing_ok=True)

    @contextlib.contextmanager
    def hold(self) -> Iterator[int]:
        """Lock as many cores as this process may use now (blocking for one when none is free)
        and yield how many: the thread count for one inference step."""
        busy = busy_processes(self.demand_dir)
        share = fair_share(self.cores, len(busy), self.wanted)
        mine = busy.index(os.getpid()) if os.getpid() in busy else 0
        # each busy process starts at a different core, so two of them do not queue on one lock
        order = [self._slots[(mine * share + n) % self.cores] for n in range(self.cores)]
        held: list[int] = []
        try:
            for slot in order:
                if len(held) >= share:
                    break
                fd = os.open(slot, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held.append(fd)
            if not held:
                fd = os.open(order[0], os.O_RDWR)
                fcntl.flock(fd, fcntl.LOCK_EX)  # every core is in use: wait for ours
                held.append(fd)
            yield len(held)
        finally:
            for fd in held:
                os.close(fd)  # closing releases the flock


class FixedThreads:
    """No sharing (``CORE_LEASE_DIR`` unset): every step runs with the configured threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    @contextlib.contextmanager
    def demand(self) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def hold(self) -> Iterator[int]:
        yield self.threads


Cores = CoreLease | FixedThreads


def host_cores(directory: Path | None, threads: int) -> Cores:
    """The host's shared cores through ``directory`` (at most ``threads`` per step), or, with no
    directory, ``threads`` for every step."""
    if directory is None:
        return FixedThreads(threads)
    return CoreLease(directory, len(os.sched_getaffinity(0)), threads)
