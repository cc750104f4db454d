"""Provider APIs, one module each; ``DIALECTS`` is the list a request's path is matched against, in order.

See ``proxy.dialects.base`` for what a dialect says, and ``proxy.core`` for how the
request path uses it.
"""

from __future__ import annotations

from proxy.dialects.base import Dialect
from proxy.dialects.openai import OpenAI

# A request goes to the first dialect whose paths it uses; more specific APIs come first.
DIALECTS: tuple[Dialect, ...] = (OpenAI(),)


def dialect_for(canonical_path: str) -> Dialect | None:
    """The dialect whose paths ``canonical_path`` (see ``proxy.paths``) uses, or None."""
    return next((dialect for dialect in DIALECTS if dialect.serves(canonical_path)), None)
