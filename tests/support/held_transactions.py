"""Test-only entry point: a labelling service whose transactions stay open a while before commit.

``python -m tests.support.held_transactions`` runs ``emotion.main.main`` (or stance's, with
``HELD_TRANSACTION_SERVICE=stance``) unchanged, except that the Kafka producer's
``commit_transaction`` first prints ``HELD-TRANSACTION open <n>``, waits
``HELD_TRANSACTION_S`` seconds, commits, and prints ``HELD-TRANSACTION committed <n>``. At the
"open" line the batch's label events are written and its offsets sent, but nothing is committed:
the fault suite SIGKILLs the worker there, and a log whose last such line is "open" proves the
kill landed inside a transaction. The variables are read only here: production code carries no
test hook.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any

from aiokafka import AIOKafkaProducer

MARK = "HELD-TRANSACTION"


def hold_commits(seconds: float) -> None:
    commit = AIOKafkaProducer.commit_transaction
    count = 0

    async def held(self: AIOKafkaProducer) -> Any:
        nonlocal count
        count += 1
        n = count
        print(f"{MARK} open {n}", flush=True)
        await asyncio.sleep(seconds)
        result = await commit(self)
        print(f"{MARK} committed {n}", flush=True)
        return result

    AIOKafkaProducer.commit_transaction = held


def main() -> None:
    hold_commits(float(os.environ.get("HELD_TRANSACTION_S", "1.0")))
    service = os.environ.get("HELD_TRANSACTION_SERVICE", "emotion")
    if service not in ("emotion", "stance"):
        sys.exit(f"HELD_TRANSACTION_SERVICE must be emotion or stance, not {service!r}")
    importlib.import_module(f"{service}.main").main()


if __name__ == "__main__":
    main()
