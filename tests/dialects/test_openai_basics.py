"""``read_basics``, read for every call, says what the whole ``read_request`` says of model, stream and user."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.dialects import DIALECTS
from proxy.dialects.base import RequestFacts
from proxy.dialects.openai import ENDPOINTS
from proxy.dialects.openai_requests import read_basics, read_request

PAYLOADS: list[dict[str, Any]] = [
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "gpt-4o-mini", "stream": True, "user": "ana", "n": 3, "max_tokens": 9},
    {"model": "", "stream": "true", "user": 7},
    {"model": 5, "stream": 1},
    {"input": [{"type": "input_image", "image_url": "data:..."}], "tools": [{"type": "web_search"}]},
    {},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_basics_match_the_whole_read(payload: dict[str, Any]) -> None:
    whole = read_request(payload)
    assert read_basics(payload) == RequestFacts(model=whole.model, stream=whole.stream, user=whole.user)


def test_every_dialect_reads_the_same_basics_as_its_whole_read() -> None:
    payload = PAYLOADS[1]
    endpoint = ENDPOINTS["/v1/chat/completions"]
    for dialect in DIALECTS:
        whole, basics = dialect.read_request(endpoint, payload), dialect.read_basics(endpoint, payload)
        assert (basics.model, basics.stream, basics.user) == (whole.model, whole.stream, whole.user), dialect.kind
