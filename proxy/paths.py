"""The path of a request: what is forwarded, and what is judged.

A client's path reaches Tollgate percent-encoded (the ASGI ``raw_path``). Tollgate
forwards exactly those bytes, and judges, once decoded, whether the path is metered.
The two must agree: a path judged "not metered" that the provider then serves as a
metered endpoint would bypass metering and every limit (``/v1/chat/completions%3F``,
decoded to a ``?`` that the HTTP client reads as a query, was such a path).

So:

- the raw path is forwarded byte for byte, never rebuilt from the decoded one;
- a path whose decoded form holds a control character, ``?``, ``#`` or ``\\`` is
  refused, as is any raw byte outside printable ASCII: no client needs them, and
  HTTP clients and servers disagree on what they mean;
- dot and empty segments are refused (they could walk out of the API's prefix);
- the decision "metered or not" is taken on ``canonical``: the decoded path,
  lower-cased, without ``;parameters`` or trailing slashes. That is the most any
  provider could normalise the forwarded path to, so whatever it serves as a
  metered endpoint, Tollgate has judged metered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from proxy.errors import NotFound
from proxy.recording.records import MAX_LABEL_CHARS, label_problem

# Printable ASCII without space: what a client's request line holds once it percent-encodes.
_RAW_OK = re.compile(rb"[\x21-\x7e]*")
_DECODED_REFUSED = re.compile(r"[\x00-\x1f\x7f?#\\]")
_PARAMETERS = re.compile(r";[^/]*")


@dataclass(frozen=True, slots=True)
class RequestPath:
    raw: str
    """As the client sent it, percent-escapes kept: what goes upstream."""
    text: str
    """Decoded once: what rows and messages show."""
    canonical: str
    """Lower-cased, without parameters and trailing slashes: what decides whether it is metered."""


def read_path(raw_path: bytes | None, path: str, query: bytes) -> RequestPath:
    """The ``RequestPath`` of an ASGI request, or ``NotFound`` saying why Tollgate will not forward it."""
    raw = raw_path if raw_path is not None else path.encode("utf-8")
    if not _RAW_OK.fullmatch(raw) or not _RAW_OK.fullmatch(query):
        raise NotFound(_refused(path, "it holds spaces, control characters or bytes that are not percent-encoded"))
    raw_text = raw.decode("ascii")
    try:
        text = unquote(raw_text, errors="strict") if "%" in raw_text else raw_text
    except UnicodeDecodeError:
        raise NotFound(_refused(path, "its percent-escapes are not UTF-8")) from None
    problem = label_problem(text)
    if problem is not None:
        raise NotFound(f"Tollgate does not forward this path: it {problem}.")
    if _DECODED_REFUSED.search(text):
        raise NotFound(_refused(text, "it holds an encoded control character, '?', '#' or '\\'"))
    if "/." in text or "//" in text:
        # Dot segments and empty segments could walk out of the API's prefix at the provider.
        raise NotFound(_refused(text, "it has dot or empty segments"))
    canonical = _PARAMETERS.sub("", text).lower().rstrip("/") or "/"
    return RequestPath(raw=raw_text, text=text, canonical=canonical)


def _refused(path: str, why: str) -> str:
    shown = path[:MAX_LABEL_CHARS].encode("unicode_escape").decode("ascii")
    return f"Tollgate does not forward the path {shown!r}: {why}."
