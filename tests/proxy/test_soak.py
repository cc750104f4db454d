"""The soak of ``tests/bench/soak.py`` in a size CI can afford: the same faults, a few thousand requests."""

from __future__ import annotations

import sys

import pytest

from tests.bench.soak import Settings, run_soak
from tests.conftest import POSTGRES_URL

# About 10 s of load on two cores, with the database away for 2 s and one kill -9 and restart.
CI_SIZE = Settings(
    requests=3_000,
    concurrency=64,
    database="postgres" if POSTGRES_URL else "sqlite",
    outage_seconds=2.0,
    timeout=50.0,
)


@pytest.mark.slow
def test_soak_every_answered_request_has_one_row_and_no_limit_is_passed() -> None:
    result = run_soak(CI_SIZE)
    sys.stdout.write(result.render())  # shown by pytest when the test fails
    assert result.failures == []
    # A response answered as Tollgate was killed must have its row too: records are journaled before the
    # last bytes of their response go out.
    assert result.kill_race == []
