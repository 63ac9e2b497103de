"""One llama.cpp decode at a time, on the cores this process may use now.

A llama context is not thread-safe, so decodes take turns (the lock). With cores shared by
demand (``common.core_lease``, ``STANCE_CORE_LEASE_DIR``/``CORE_LEASE_DIR``) each decode also
leases the host's free cores and runs with that many threads: alone on the host, stance uses
every core; beside a busy emotion service, its share.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from common.core_lease import Cores, FixedThreads


class DecodeSlot:
    def __init__(self, llm: Any, cores: Cores | None = None) -> None:
        self._llm = llm
        self._threads = int(getattr(llm, "n_threads", 1) or 1)
        self.cores: Cores = cores or FixedThreads(self._threads)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[int]:
        """Hold the context and the cores for one decode; yields the threads it runs with."""
        with self._lock, self.cores.hold() as threads:
            if threads != self._threads:
                import llama_cpp

                llama_cpp.llama_set_n_threads(self._llm.ctx, threads, threads)
                self._threads = threads
            yield threads
