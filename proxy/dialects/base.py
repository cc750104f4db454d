"""What a provider's API looks like to Tollgate: the one interface every dialect implements.

A dialect knows a wire format and nothing else (no ASGI, no database, no limits):

- which requests are its API's (``claims``: by path, and where two APIs share a path, by
  method or header), and which of them are metered (``endpoint``);
- where a client's key comes from and where the provider's goes (``client_key``,
  ``key_headers``, ``provider_key_header``, ``upstream_query``);
- what a request says about itself: its model, whether it streams, its user, and the
  facts its cost bound needs (``read_request``);
- how to make a stream report usage, and how to hide what that added
  (``with_usage_reporting``, ``stream_reader``), and how to lower its output cap
  (``with_output_cap``, for a spend limit that clamps);
- how usage reads, in a whole answer and in stream events (``usage_from_body``,
  ``stream_reader``), and the text to estimate from when it never arrives;
- how its errors look (``error_body``) and which header carries the client's key;
- usage that comes later (``queued_job`` and ``fetches_job``: OpenAI's background Responses).

Adding a provider means adding a module with one ``Dialect`` subclass, adding it to the
list in ``proxy.dialects``, and its tests; nothing else on the request path changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from proxy.errors import TollgateError
from proxy.keys import bearer_token
from proxy.usage import Usage

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A metered endpoint of a dialect."""

    name: str  # e.g. "chat", "responses"
    embeddings: bool = False  # input only: its bound has no output
    usage_opt_in: bool = False  # its streams report usage only when asked to


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a metered request says about itself, read once from its parsed body."""

    model: str | None
    stream: bool = False
    user: str | None = None
    output_cap: int | None = None  # the largest output cap the provider might honour
    choices: int = 1
    media_parts: int = 0  # images, audio and files, whose tokens do not follow their bytes
    stored_input: frozenset[str] = frozenset()  # names of members that bring in input stored at the provider
    hosted_tools: frozenset[str] = frozenset()  # tools the provider runs, feeding results back as input
    max_tool_calls: int | None = None
    fallback_models: tuple[str, ...] = ()  # models a router may answer with instead


class StreamReader:
    """Reads one stream's events as they pass: its usage, its end, and what the client should see."""

    usage: Usage | None = None
    finished: bool = False
    """The stream's closing event has arrived."""

    def read(self, event: bytes) -> bytes:
        """One complete event (with its blank line) in; the bytes the client gets for it out."""
        raise NotImplementedError

    def read_item(self, item: bytes) -> None:
        """One complete item of a stream that is a JSON array rather than SSE (see ``Dialect.streams_json``)."""
        raise NotImplementedError

    def streamed_text(self, events: bytes) -> str:
        """The text the stream carried, to estimate its output from."""
        raise NotImplementedError


class Dialect:
    kind: ClassVar[str]
    """The provider kind it speaks, as ``[[providers]] kind`` names it."""
    key_header: ClassVar[bytes] = b"authorization"
    """Where a client sends its key (as ``Bearer <key>``)."""
    key_hint: ClassVar[str] = "'Authorization: Bearer <key>'"
    """How a client of this API sends its key, in words for an error."""
    key_headers: ClassVar[frozenset[bytes]] = frozenset({b"authorization"})
    """Every header that may carry the client's key: none of them goes upstream with a managed key."""
    account_headers: ClassVar[frozenset[bytes]] = frozenset()
    """Answer headers that name the provider account: hidden from clients of managed keys."""
    sdk_base_url: ClassVar[tuple[str, str] | None] = None
    """(the environment variable its SDKs read their base URL from, the path to append), for ``serve``'s start."""

    def serves(self, canonical_path: str) -> bool:
        """Whether requests to this path may belong to this API."""
        raise NotImplementedError

    def claims(self, method: str, canonical_path: str, headers: Headers) -> bool:
        """Whether this request belongs to this API; paths two APIs share are told apart by method or header."""
        return self.serves(canonical_path)

    def client_key(self, headers: Headers, query: bytes) -> str | None:
        """The key the client presented, if any."""
        return bearer_token(_header(headers, self.key_header))

    def provider_key_header(self, api_key: str) -> tuple[str, str]:
        """The header that carries Tollgate's provider key upstream, for a managed key's request."""
        return "authorization", f"Bearer {api_key}"

    def upstream_query(self, query: bytes, managed: bool) -> bytes:
        """The query string that goes upstream (a managed key's request drops a key the client put there)."""
        return query

    def model_in_path(self, path: str) -> str | None:
        """The model a (decoded) path names, for APIs that name it there rather than in the body."""
        return None

    def endpoint(self, method: str, canonical_path: str) -> Endpoint | None:
        """The metered endpoint a request goes to, or None when it carries no usage."""
        raise NotImplementedError

    def upstream_path(self, raw_path: str) -> str:
        """The part of the raw path that follows the provider's ``base_url``."""
        raise NotImplementedError

    def read_request(self, endpoint: Endpoint, payload: dict[str, Any]) -> RequestFacts:
        raise NotImplementedError

    def model_of(self, payload: Any) -> str | None:
        """The model an unmetered JSON request names, if any (to route it)."""
        model = payload.get("model") if isinstance(payload, dict) else None
        return model if isinstance(model, str) and model else None

    def with_usage_reporting(self, endpoint: Endpoint, body: bytes, payload: dict[str, Any]) -> tuple[bytes, bool]:
        """The body of a stream that will report its usage, and whether Tollgate turned that on (to hide it)."""
        return body, False

    def with_output_cap(self, endpoint: Endpoint, payload: dict[str, Any], cap: int) -> dict[str, Any] | None:
        """The request with its output capped at ``cap`` tokens (a spend limit's clamp); None if it cannot be."""
        return None

    def usage_from_body(self, body: bytes) -> Usage | None:
        raise NotImplementedError

    def streams_json(self, endpoint: Endpoint) -> bool:
        """Whether the endpoint's answer, when it is not SSE, is a JSON array streamed over time.

        Such an answer is relayed as it arrives and read item by item (``StreamReader.read_item``),
        instead of being read whole first.
        """
        return False

    def stream_reader(self, hide_usage: bool) -> StreamReader:
        raise NotImplementedError

    def prompt_text(self, payload: dict[str, Any] | None) -> tuple[str, int]:
        """(the prompt's text, how many messages it has), to estimate its tokens from."""
        raise NotImplementedError

    def answer_text(self, body: bytes) -> str:
        """The text of a whole answer, to estimate its output from."""
        raise NotImplementedError

    def queued_job(self, body: bytes) -> str | None:
        """The id of a job an answer only queued: its usage comes when its result is fetched."""
        return None

    def fetches_job(self, method: str, path: str) -> str | None:
        """The id of the queued job whose result a request fetches (or cancels), else None."""
        return None

    def finished_job(self, body: bytes) -> bool:
        """Whether an answer to such a fetch is the job's final result, with its usage."""
        return False

    def error_body(self, error: TollgateError) -> bytes:
        """A refusal as this API writes its own errors."""
        raise NotImplementedError


def _header(headers: Headers, name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


def read_count(table: Any, key: str) -> int:
    """A token count from a provider's JSON: a non-negative integer, else 0 (what a provider sends is never trusted)."""
    if not isinstance(table, dict):
        return 0
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def read_label(value: Any, max_chars: int = 256) -> str | None:
    """A name from a provider's or client's JSON (a model, a service tier), if a row can hold it."""
    if not isinstance(value, str) or not value or len(value) > max_chars or "\x00" in value:
        return None
    return value
