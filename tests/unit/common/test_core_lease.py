"""Cores shared by demand (common.core_lease): alone a process gets every core, busy processes
split them, the leased threads never exceed the cores, and a dead process frees its cores."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from common.core_lease import CoreLease, FixedThreads, busy_processes, fair_share, host_cores

CTX = multiprocessing.get_context("spawn")


def _hold_until_told(directory: str, cores: int, announce: bool, pipe: Connection) -> None:
    lease = CoreLease(Path(directory), cores)
    if announce:
        with lease.demand():
            pipe.send("busy")
            pipe.recv()
            with lease.hold() as threads:
                pipe.send(threads)
                pipe.recv()
        return
    with lease.hold() as threads:
        pipe.send(threads)
        pipe.recv()


def _other_process(
    tmp_path: Path, cores: int, announce: bool
) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    mine, theirs = CTX.Pipe()
    process = CTX.Process(target=_hold_until_told, args=(str(tmp_path), cores, announce, theirs), daemon=True)
    process.start()
    return process, mine


@pytest.mark.parametrize(
    ("cores", "busy", "wanted", "share"),
    [(2, 0, 2, 2), (2, 1, 2, 2), (2, 2, 2, 1), (4, 2, 4, 2), (4, 3, 4, 1), (2, 5, 2, 1), (8, 1, 3, 3)],
)
def test_fair_share_is_the_cores_over_the_busy_processes_at_least_one_at_most_wanted(
    cores: int, busy: int, wanted: int, share: int
) -> None:
    assert fair_share(cores, busy, wanted) == share


def test_alone_a_process_gets_every_core_up_to_what_it_wants(tmp_path: Path) -> None:
    with CoreLease(tmp_path, 4).demand(), CoreLease(tmp_path, 4).hold() as threads:
        assert threads == 4
    with CoreLease(tmp_path, 4, wanted=3).hold() as threads:
        assert threads == 3


def test_two_busy_processes_split_the_cores_and_never_hold_more_than_there_are(tmp_path: Path) -> None:
    other, pipe = _other_process(tmp_path, 2, announce=True)
    try:
        assert pipe.recv() == "busy"
        lease = CoreLease(tmp_path, 2)
        with lease.demand():
            pipe.send("go")
            theirs = pipe.recv()
            with lease.hold() as mine:
                assert (mine, theirs) == (1, 1)
            pipe.send("done")
    finally:
        other.join(10)


def test_a_core_held_by_another_process_is_not_leased_again(tmp_path: Path) -> None:
    # The other process took both cores while alone; ours waits for one instead of oversubscribing.
    other, pipe = _other_process(tmp_path, 2, announce=False)
    try:
        assert pipe.recv() == 2
        slots = [os.open(tmp_path / f"core-{n}.lock", os.O_RDWR) for n in range(2)]
        for fd in slots:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(fd)
        pipe.send("release")
    finally:
        other.join(10)
    with CoreLease(tmp_path, 2).hold() as threads:
        assert threads == 2  # released on exit


def test_a_killed_process_frees_its_cores_and_its_demand(tmp_path: Path) -> None:
    other, pipe = _other_process(tmp_path, 2, announce=True)
    assert pipe.recv() == "busy"
    pipe.send("go")
    assert pipe.recv() == 2
    assert busy_processes(tmp_path / "demand") == [other.pid]
    assert other.pid is not None
    os.kill(other.pid, signal.SIGKILL)
    other.join(10)
    assert busy_processes(tmp_path / "demand") == []  # the stale demand file is gone
    with CoreLease(tmp_path, 2).hold() as threads:
        assert threads == 2


def test_without_a_lease_directory_every_step_gets_the_configured_threads(tmp_path: Path) -> None:
    cores = host_cores(None, 3)
    assert isinstance(cores, FixedThreads)
    with cores.demand(), cores.hold() as threads:
        assert threads == 3
    assert isinstance(host_cores(tmp_path, 1), CoreLease)
