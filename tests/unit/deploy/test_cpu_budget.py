"""The per-host CPU budget: pure arithmetic plus 'an explicit setting wins'."""

from __future__ import annotations

import pytest

from deploy.local.cpu_budget import exports, plan, shared


def test_two_cores_one_emotion_one_stance_get_one_thread_each() -> None:
    budget = plan(2, emotion_replicas=1, stance_replicas=1)
    assert (budget.emotion_threads, budget.stance_threads) == (1, 1)
    assert not budget.oversubscribed


@pytest.mark.parametrize("cores", range(1, 33))
@pytest.mark.parametrize("emotion", range(4))
@pytest.mark.parametrize("stance", range(4))
def test_threads_never_exceed_cores_while_replicas_fit(cores: int, emotion: int, stance: int) -> None:
    if emotion + stance == 0 or emotion + stance > cores:
        return
    budget = plan(cores, emotion, stance)
    used = emotion * budget.emotion_threads + stance * budget.stance_threads
    assert used <= cores
    assert budget.emotion_threads >= 1 and budget.stance_threads >= 1
    assert used >= cores - (emotion + stance)  # nearly every core is handed out


def test_leftover_core_goes_to_stance() -> None:
    budget = plan(7, emotion_replicas=1, stance_replicas=1)
    assert (budget.emotion_threads, budget.stance_threads) == (3, 4)


def test_more_replicas_than_cores_gives_one_thread_each_and_says_oversubscribed() -> None:
    budget = plan(2, emotion_replicas=3, stance_replicas=2)
    assert (budget.emotion_threads, budget.stance_threads) == (1, 1)
    assert budget.oversubscribed


def test_variables_already_in_the_environment_are_not_exported() -> None:
    lines = exports(plan(4, 1, 1), {"STANCE_N_THREADS": "3"})
    assert "export EMOTION_TORCH_THREADS=2" in lines
    assert "export STANCE_N_THREADS_BATCH=2" in lines
    assert not any(line.startswith("export STANCE_N_THREADS=") for line in lines)


def test_invalid_core_count_is_rejected() -> None:
    with pytest.raises(ValueError):
        plan(0, 1, 1)


def test_shared_cores_let_every_replica_use_them_all_through_one_lease_directory() -> None:
    variables = shared(2, "/run/cores")
    assert variables["CORE_LEASE_DIR"] == "/run/cores"
    assert (variables["EMOTION_TORCH_THREADS"], variables["STANCE_N_THREADS"], variables["STANCE_N_THREADS_BATCH"]) == (
        "2", "2", "2"
    )
    assert exports(variables, {"STANCE_N_THREADS": "1"}) == [
        f"export {name}={value}" for name, value in variables.items() if name != "STANCE_N_THREADS"
    ]
