"""Whatever a client sends, Tollgate forwards it or refuses it with an OpenAI-style error: never a 500."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
ANSWER = chat_completion()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Chat requests, right and wrong in every field Tollgate reads; any JSON value; any bytes.
chat_requests = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-unknown"]) | st.text(max_size=300) | json_values},
    optional={
        "messages": json_values,
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "user": st.text(max_size=300) | json_values,
        "max_tokens": st.integers() | json_values,
        "max_completion_tokens": st.integers() | json_values,
        "n": st.integers() | json_values,
    },
)
bodies = st.one_of(
    chat_requests.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)
header_values = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=300)


@pytest.fixture
def limited(tollgate_factory: Any, provider: FakeProvider) -> Tollgate:
    """A Tollgate with a blocking limit, so that admission reads every body too; one for all the examples."""
    provider.answer("POST", CHAT, json_answer(ANSWER))
    tollgate: Tollgate = tollgate_factory('[[limits]]\nscope = "user"\nmax_usd = "1000"\n')
    return tollgate


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, user=header_values, agent=header_values)
# Both answers are reached on every run, whatever hypothesis draws: forwarded, and refused for several reasons.
@example(body=b'{"model": "gpt-4o", "messages": [], "max_tokens": 5}', user="alice", agent="")
@example(body=b"{not json", user="alice", agent="")
@example(body=b'{"model": 5}', user="alice", agent="")
@example(body=b'{"model": "gpt-4o", "user": "a\\u0000b"}', user="", agent="")
@example(body=b'{"model": "gpt-4o"}', user="u" * 300, agent="")
def test_any_request_is_forwarded_or_refused_in_openai_shape(
    limited: Tollgate, body: bytes, user: str, agent: str
) -> None:
    headers = {"content-type": "application/json", "x-user-id": user, "x-agent-name": agent}
    response = limited.client.post(CHAT, content=body, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.content == ANSWER
        return
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and len(error["message"]) > 20
