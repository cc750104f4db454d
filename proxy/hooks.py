"""Hooks named in the config as ``"pkg.module:function"``, imported once at start.

``usage_handlers`` and ``alerts.alert_handlers`` name their functions this way. The
part after the colon may be a dotted path, for a method or a callable object
(``pkg.module:Class.method``). A spec that cannot be used is an error at start,
naming the setting and the spec, never a surprise on the first record or alert.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any


def load_hooks(specs: Sequence[str], setting: str) -> list[Callable[..., Any]]:
    """The callables ``specs`` name; ValueError names ``setting`` and the first spec that is not one."""
    return [_load_hook(spec, setting) for spec in specs]


def _load_hook(spec: str, setting: str) -> Callable[..., Any]:
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"{setting}: {spec!r} is not of the form 'pkg.module:function'")
    try:
        target: object = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{setting}: cannot load {spec!r}: {exc}") from None
    if not callable(target):
        raise ValueError(f"{setting}: {spec!r} is {type(target).__name__}, not a function")
    return target
