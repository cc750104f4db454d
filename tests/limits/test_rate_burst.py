"""Bursts against rate limits across worker processes and instances: never past the limit (tests.limits.rate_burst)."""

from __future__ import annotations

import pytest

from tests.limits.rate_burst import BODY, Burst, run

RPM, CONCURRENT, TPM, REQUESTS = 60, 8, 1500, 200
BOUND = len(BODY) + 5  # what each request holds on tokens_per_minute


def _check(rpm: Burst, busy: Burst, tpm: Burst) -> None:
    assert rpm.seen == rpm.admitted <= RPM  # no overshoot: the provider saw only what was admitted
    assert rpm.admitted >= 0.9 * RPM  # and room held by one worker did not starve the others
    assert rpm.admitted + rpm.refused == REQUESTS
    assert busy.seen <= CONCURRENT  # at most 8 at once, over both waves
    assert busy.admitted >= 0.75 * CONCURRENT  # a slot one worker held did not starve the others for long
    assert busy.again > 0  # the slots came back when the first wave ended
    assert tpm.seen <= TPM  # the tokens used never pass the limit...
    assert tpm.admitted > TPM // BOUND  # ... and settling to the real count let more in than the bounds alone


@pytest.mark.slow
def test_two_instances_sharing_a_database_hold_rate_limits_together(any_db_url: str) -> None:
    _check(*run(any_db_url, instances=2, workers=1, requests=REQUESTS, rpm=RPM, concurrent=CONCURRENT, tpm=TPM))


@pytest.mark.slow
def test_workers_of_one_instance_on_sqlite_hold_rate_limits_together(db_url: str) -> None:
    _check(*run(db_url, instances=1, workers=2, requests=REQUESTS, rpm=RPM, concurrent=CONCURRENT, tpm=TPM))
