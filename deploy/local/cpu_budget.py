"""CPU budget for one host: inference threads of the co-located services never exceed the cores.

    python deploy/local/cpu_budget.py --emotion 1 --stance 1 [--cores N] [--share-dir DIR]

With ``--share-dir`` (what ``services.sh`` passes) the cores are shared by demand: every
inference replica may use all of them, and ``common.core_lease`` hands each step the cores
free at that moment through lock files in DIR, so a service alone on the host uses every core
and busy services split them without oversubscribing. Without it, a static split as below.

Prints ``export VAR=value`` lines (for ``eval``) for every thread setting that is not already
set in the environment: an explicit setting always wins. Only the inference services count:
emotion (torch) and stance (llama.cpp); the ingestor, the indexer and the API spend their time
waiting on I/O. Each inference replica gets an equal share of the cores; what is left over goes
to stance first, the slower stage per tweet. When replicas outnumber the cores every replica
still gets one thread (it cannot get fewer) and a warning goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    emotion_threads: int
    stance_threads: int
    oversubscribed: bool

    def variables(self) -> dict[str, str]:
        return {
            # torch in the emotion service (applied before its model loads)
            "EMOTION_TORCH_THREADS": str(self.emotion_threads),
            "EMOTION_TORCH_INTEROP_THREADS": "1",  # eager BERT-style models run one op at a time
            # llama.cpp in the stance service: token generation and prompt processing
            "STANCE_N_THREADS": str(self.stance_threads),
            "STANCE_N_THREADS_BATCH": str(self.stance_threads),
            # the Rust tokenizer's own thread pool would add threads outside the budget
            "TOKENIZERS_PARALLELISM": "false",
        }


def plan(cores: int, emotion_replicas: int, stance_replicas: int) -> Budget:
    """Threads per replica so that sum(replicas * threads) ≤ cores whenever replicas ≤ cores."""
    if cores < 1 or emotion_replicas < 0 or stance_replicas < 0:
        raise ValueError("cores must be ≥ 1 and replica counts ≥ 0")
    replicas = emotion_replicas + stance_replicas
    if replicas == 0:
        return Budget(emotion_threads=cores, stance_threads=cores, oversubscribed=False)
    share = max(1, cores // replicas)
    left = max(0, cores - share * replicas)
    stance = share + (left // stance_replicas if stance_replicas else 0)
    left -= (stance - share) * stance_replicas
    emotion = share + (left // emotion_replicas if emotion_replicas else 0)
    return Budget(emotion_threads=emotion, stance_threads=stance, oversubscribed=replicas > cores)


def shared(cores: int, lease_dir: str) -> dict[str, str]:
    """Cores shared by demand: each replica may use them all; the lease decides per step."""
    if cores < 1:
        raise ValueError("cores must be ≥ 1")
    return {
        **Budget(emotion_threads=cores, stance_threads=cores, oversubscribed=False).variables(),
        "CORE_LEASE_DIR": lease_dir,
    }


def exports(budget: Budget | Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """``export`` lines for the variables the environment does not set already."""
    variables = budget.variables() if isinstance(budget, Budget) else budget
    return [f"export {name}={value}" for name, value in variables.items() if name not in environ]


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emotion", type=int, default=1, help="emotion replicas on this host")
    parser.add_argument("--stance", type=int, default=1, help="stance replicas (llama.cpp) on this host")
    parser.add_argument("--cores", type=int, default=None, help="default: the cores this process may run on")
    parser.add_argument("--share-dir", default=None, help="share the cores by demand through lock files here")
    args = parser.parse_args(argv)
    cores = args.cores or available_cores()
    if args.share_dir:
        sys.stdout.write("".join(line + "\n" for line in exports(shared(cores, args.share_dir), os.environ)))
        return
    budget = plan(cores, args.emotion, args.stance)
    if budget.oversubscribed:
        sys.stderr.write(
            f"cpu_budget: {args.emotion + args.stance} inference replicas on {cores} cores: one thread each, "
            "the host is oversubscribed\n"
        )
    sys.stdout.write("".join(line + "\n" for line in exports(budget, os.environ)))


if __name__ == "__main__":
    main()
