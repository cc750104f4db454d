"""OpenAI's tokenizers, read offline from the copy of tiktoken's files that the litellm wheel ships.

tiktoken downloads an encoding's BPE file on first use; Tollgate never does (it may
have no network, and a download on the request path would be slow). The litellm wheel
carries ``cl100k_base``, ``o200k_base`` and ``p50k_base`` under
``litellm_core_utils/tokenizers``, named as tiktoken's cache names them (the SHA-1 of
the file's URL). Tollgate points ``TIKTOKEN_CACHE_DIR`` there, located without importing
litellm, and uses an encoding only if its file is on disk. Any other encoding
(``r50k_base`` of the oldest models, ``o200k_harmony``) is unavailable: such a model's
prompt keeps the byte bound.

Loading an encoding takes about two seconds, so the server loads the ones its limits
may need in a background thread at start (``preload``), off the request path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

logger = logging.getLogger("tollgate.tokenizer")

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_PREFIXES = ("openai/", "azure/", "azure_ai/")
_LOCK = threading.Lock()


class Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def cache_dir() -> Path | None:
    """Where the litellm wheel keeps tiktoken's files, or None when litellm is not installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


def on_disk(name: str) -> bool:
    """Whether the BPE file of encoding ``name`` is on disk, so that loading it downloads nothing."""
    folder = cache_dir()
    return folder is not None and (folder / hashlib.sha1(_BLOB.format(name).encode()).hexdigest()).is_file()


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model (``gpt-4o-mini`` is ``o200k_base``), or None if tiktoken knows none."""
    import tiktoken.model

    name = model
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    try:
        return tiktoken.model.encoding_name_for_model(name)
    except KeyError:
        return None


@functools.cache
def _load(name: str) -> Encoding | None:
    folder = cache_dir()
    if folder is None or not on_disk(name):
        logger.info("tiktoken encoding %s is not on disk: prompts it would count keep the byte bound", name)
        return None
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))
    import tiktoken

    try:
        encoding: Encoding = tiktoken.get_encoding(name)
    except Exception as exc:  # a damaged file, or a cache folder set elsewhere that lacks it
        logger.warning("tiktoken encoding %s could not be loaded (%s): prompts keep the byte bound", name, exc)
        return None
    return encoding


def encoding(name: str) -> Encoding | None:
    """The encoding ``name``, loaded once per process; None when it is not available offline."""
    with _LOCK:  # two threads asking at once load it once
        return _load(name)


def encoding_for(model: str) -> Encoding | None:
    name = encoding_name(model)
    return encoding(name) if name is not None else None


def preload(names: set[str]) -> threading.Thread | None:
    """Load the encodings ``names`` in a background thread, so that the first refusal does not wait for them."""
    if not names:
        return None
    thread = threading.Thread(
        target=lambda: [encoding(name) for name in sorted(names)], name="tollgate-tokenizer", daemon=True
    )
    thread.start()
    return thread
