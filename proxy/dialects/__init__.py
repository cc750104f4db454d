"""Provider APIs, one module each; ``DIALECTS`` is the list a request's path is matched against, in order.

See ``proxy.dialects.base`` for what a dialect says, and ``proxy.core`` for how the
request path uses it.
"""

from __future__ import annotations

from proxy.dialects.anthropic import Anthropic
from proxy.dialects.azure import Azure
from proxy.dialects.base import Dialect, Headers
from proxy.dialects.gemini import Gemini
from proxy.dialects.openai import OpenAI

# A request goes to the first dialect that claims it; more specific APIs come first, OpenAI's (the
# fallback for refusals before a dialect is known) last.
DIALECTS: tuple[Dialect, ...] = (Azure(), Gemini(), Anthropic(), OpenAI())


def dialect_for(canonical_path: str, method: str = "POST", headers: Headers = ()) -> Dialect | None:
    """The dialect that claims a request to ``canonical_path`` (see ``proxy.paths``), or None."""
    for dialect in DIALECTS:  # a plain loop: a generator's frame costs more than the claims on this path
        if dialect.claims(method, canonical_path, headers):
            return dialect
    return None
