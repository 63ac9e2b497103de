"""The provider quota shared by the stance group: each replica takes quota / members."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from stance.api_client import ApiLimits, ChatCompletionsClient
from stance.breaker import CircuitBreaker
from stance.quota import SharedQuota, replica_share
from tests.fakes.fake_llm_api import running_fake_api


@pytest.mark.parametrize(("members", "share"), [(0, 12.0), (1, 12.0), (2, 6.0), (3, 4.0)])
def test_each_member_gets_an_equal_share_and_an_unjoined_group_counts_as_one(members: int, share: float) -> None:
    assert replica_share(12.0, members) == share


def test_a_quota_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        replica_share(0.0, 2)


class Members:
    def __init__(self, *counts: int | Exception) -> None:
        self.counts = list(counts)

    async def __call__(self) -> int:
        count = self.counts.pop(0)
        if isinstance(count, Exception):
            raise count
        return count


async def test_the_share_follows_the_membership_and_is_applied_only_when_it_changes() -> None:
    applied: list[float] = []
    quota = SharedQuota(12.0, Members(1, 3, 3, 2), applied.append, refresh_s=60)
    assert [await quota.refresh() for _ in range(4)] == [12.0, 4.0, 4.0, 6.0]
    assert applied == [4.0, 6.0]


async def test_an_unreadable_membership_keeps_the_last_share() -> None:
    applied: list[float] = []
    quota = SharedQuota(12.0, Members(2, ConnectionError("broker down"), 2), applied.append, refresh_s=60)
    assert [await quota.refresh() for _ in range(3)] == [6.0, 6.0, 6.0]
    assert applied == [6.0]


async def test_run_refreshes_until_stopped() -> None:
    applied: list[float] = []
    stopping = asyncio.Event()
    counts = Members(*([2] * 1000))
    quota = SharedQuota(10.0, counts, lambda share: (applied.append(share), stopping.set()), refresh_s=0.01)
    await asyncio.wait_for(quota.run(stopping), 10)
    assert applied == [5.0]


def _limits(rate: float) -> ApiLimits:
    return ApiLimits(
        requests_per_second=rate, max_concurrent=4, max_attempts=2, connect_timeout_s=1.0, total_timeout_s=2.0
    )


async def test_two_replicas_sharing_a_quota_stay_within_it_at_the_api() -> None:
    """Two clients (two replicas) each at their share: the server sees at most the group's quota."""
    group_quota = 10.0
    with running_fake_api() as api:
        clients = [
            ChatCompletionsClient(api.base_url, SecretStr("k"), _limits(group_quota), CircuitBreaker(50, 60))
            for _ in range(2)
        ]
        try:
            for client in clients:
                await SharedQuota(group_quota, Members(2), client.set_requests_per_second, 60).refresh()
            payload = {"model": "fake", "messages": [{"role": "user", "content": "Tweet: news"}]}
            await asyncio.gather(*(c.complete(payload) for c in clients for _ in range(15)))
        finally:
            for client in clients:
                await client.aclose()
        assert len(api.requests) == 30
        assert api.max_in_any_window(1.0) <= group_quota
        # Without sharing, each replica would send its full quota: twice as many in a window.
        assert api.max_in_any_window(1.0) >= group_quota / 2
