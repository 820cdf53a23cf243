"""The fault campaign's short version (the long one: ``python -m tests.cluster.campaign``)."""

from __future__ import annotations

import pytest

from .campaign import campaign
from .conftest import Cluster, PrivateRedis

pytestmark = pytest.mark.anyio


async def test_a_short_fault_campaign(cluster: Cluster, private_redis: PrivateRedis) -> None:
    result = await campaign(cluster, private_redis, seconds=8.0, seed=20)
    assert len(result["faults"]) >= 3
