"""The access line: what a request was and cost, never a key; unpriced reads unpriced."""

from __future__ import annotations

import dataclasses

from proxy.access_log import access_line
from tests.recording.test_store import _BASE


def test_the_line_has_method_path_status_user_model_tokens_cost_and_latency() -> None:
    line = access_line(dataclasses.replace(_BASE, cost_pico=21_000_000, key_name="laptop"))
    assert line.startswith("POST /v1/chat/completions 200 user=alice model=gpt-4o-2024-08-06 tokens=10/3")
    assert "cost=$0.000021" in line and "12.5ms" in line and line.endswith("id=r0")
    assert "laptop" not in line


def test_unpriced_usage_reads_unpriced_and_an_error_is_named() -> None:
    line = access_line(dataclasses.replace(_BASE, cost_pico=None, unpriced=True, status=429, error_type="spend_limit"))
    assert "cost=unpriced" in line and "error=spend_limit" in line
