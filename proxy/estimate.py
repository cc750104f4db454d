"""Token estimates for when the provider's usage never arrived (a stream cut short, an answer without it).

The dialect says what text the prompt and the answer held; here it is counted with
tiktoken's ``o200k_base`` encoding, read from the copy that the litellm wheel ships
(located without importing litellm), so nothing is downloaded. If that copy is
missing, four characters count as one token. Either way the record says
``usage_source = "estimated"``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from pricing import TokenCounts

logger = logging.getLogger("tollgate.estimate")

# Per message, chat formats add a few tokens of their own around the content.
_TOKENS_PER_MESSAGE = 4


@functools.cache
def _encoder() -> Callable[[str], int]:
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # no local copy of the encoding, and no network to fetch it
        logger.warning("tiktoken encoding unavailable (%s); estimating 4 characters per token", type(exc).__name__)
        return lambda text: math.ceil(len(text) / 4)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_tokens(text: str) -> int:
    return _encoder()(text) if text else 0


def estimate_prompt(text: str, messages: int) -> int:
    """Tokens of a prompt's text, with what chat formats add around each of its messages."""
    return count_tokens(text) + _TOKENS_PER_MESSAGE * messages


def estimate_output(text: str, kept_bytes: int, total_bytes: int) -> int:
    """Tokens of the text an answer carried; ``text`` is what the first ``kept_bytes`` of it held.

    An answer longer than what was kept is counted in proportion, rather than held in memory whole.
    """
    tokens = count_tokens(text)
    if total_bytes > kept_bytes > 0:
        tokens = math.ceil(tokens * total_bytes / kept_bytes)
    return tokens


def estimate(prompt: tuple[str, int], output: str, kept_bytes: int = 0, total_bytes: int = 0) -> TokenCounts:
    """Estimated usage of a request whose usage never arrived: its prompt (text, messages) and output text."""
    return TokenCounts(input=estimate_prompt(*prompt), output=estimate_output(output, kept_bytes, total_bytes))
