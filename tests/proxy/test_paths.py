"""The path Tollgate judges is the path it forwards: no encoding of it escapes metering or limits."""

from __future__ import annotations

import http.client
import posixpath
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.app import create_app
from proxy.dialects.openai import METERED_PATHS
from proxy.errors import NotFound
from proxy.paths import read_path
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider, ServerThread

LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "0.000001"\n'  # no chat request fits: every one is refused
BODY = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    ("raw", "text", "canonical"),
    [
        (b"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/chat/completion%73", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/Chat/Completions/", "/v1/Chat/Completions/", "/v1/chat/completions"),
        (b"/v1/chat/completions;v=1", "/v1/chat/completions;v=1", "/v1/chat/completions"),
        (b"/v1/chat%2Fcompletions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/models/ft:gpt-4o:org::x1", "/v1/models/ft:gpt-4o:org::x1", "/v1/models/ft:gpt-4o:org::x1"),
    ],
)
def test_a_path_is_judged_decoded_and_canonical(raw: bytes, text: str, canonical: str) -> None:
    path = read_path(raw, unquote(raw.decode()), b"")
    assert (path.raw, path.text, path.canonical) == (raw.decode(), text, canonical)


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/chat/completions%3F",
        b"/v1/chat/completions%3f",
        b"/v1/chat/completions%23",
        b"/v1/chat/completions%0A",
        b"/v1/chat/completions%0D",
        b"/v1/chat/completions%09",
        b"/v1/chat/completions%00",
        b"/v1/chat/completions%5C",
        b"/v1/%2E%2E/admin",
        b"/v1//chat/completions",
        b"/v1/chat/completions\xc3\xa9",
        b"/v1/chat/completions%FF",
    ],
)
def test_paths_the_provider_could_read_otherwise_are_refused(raw: bytes) -> None:
    with pytest.raises(NotFound, match="does not forward"):
        read_path(raw, unquote(raw.decode("latin-1")), b"")


@pytest.fixture(scope="module")
def server(_provider_server: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Any]]:
    """A Tollgate under uvicorn (the real raw_path), where no chat request fits the user's limit."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('paths') / 'tollgate.db'}"
    config = make_config(_provider_server, db_url, LIMIT)
    app = create_app(config)
    with ServerThread(app) as running:
        yield running.port, app


def _post(port: int, path: str, user: str = "mallory") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, BODY, {"content-type": "application/json", "x-user-id": user})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("suffix", ["%3F", "%23", "%0A", "%0D", "%09", "%3Fx=1", "%23frag"])
def test_an_encoded_suffix_no_longer_bypasses_a_limit(
    server: tuple[int, Any], provider: FakeProvider, suffix: str
) -> None:
    port, _ = server
    provider.answer_any(json_answer(chat_completion()))
    assert _post(port, "/v1/chat/completions")[0] == 429
    status, body = _post(port, "/v1/chat/completions" + suffix)
    assert status == 404
    assert orjson.loads(body)["error"]["code"] == "not_found"
    assert provider.requests == []


def _as_served(raw: bytes) -> str:
    """The most a lenient provider could make of a forwarded path: what it might serve it as."""
    text = unquote(raw.decode("latin-1"))
    text = re.sub(r"[\r\n\t]", "", text)
    text = re.split(r"[?#]", text, maxsplit=1)[0]
    text = re.sub(r";[^/]*", "", text).lower()
    return posixpath.normpath(text.replace("\\", "/")).rstrip("/")


_pieces = st.sampled_from(
    ["%3F", "%3f", "%23", "%0A", "%0D", "%09", "%00", "%20", "%2F", "%2E", "%5C", "%25", ";x=1", "/", ".", "..", "~"]
)


@st.composite
def _paths(draw: st.DrawFn) -> str:
    """A metered path, mangled: characters encoded or re-cased, pieces inserted, a trailing slash."""
    path = draw(st.sampled_from(sorted(METERED_PATHS)))
    chars = []
    for char in path:
        choice = draw(st.integers(0, 9))
        if choice == 0 and char != "/":
            chars.append(f"%{ord(char):02{'X' if draw(st.booleans()) else 'x'}}")
        elif choice == 1:
            chars.append(char.upper())
        else:
            chars.append(char)
        if draw(st.integers(0, 30)) == 0:
            chars.append(draw(_pieces))
    if draw(st.booleans()):
        chars.append(draw(_pieces))
    return "".join(chars)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_paths())
@example(path="/v1/chat/completions%3F")
@example(path="/v1/chat/completion%73")
@example(path="/v1/responses/")
def test_any_path_that_reaches_a_metered_endpoint_is_metered(
    server: tuple[int, Any], provider: FakeProvider, path: str
) -> None:
    """Every request either never reaches the provider, or is judged metered (and so refused by the limit),
    or reaches it at a path no lenient provider could serve as a metered endpoint."""
    port, _ = server
    provider.reset()
    provider.answer_any(json_answer(chat_completion()))
    status, _ = _post(port, path)
    for received in provider.requests:
        assert _as_served(received.raw_path) not in METERED_PATHS, (path, received.raw_path, status)
