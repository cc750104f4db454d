"""Hooks named ``pkg.module:function`` load the same way for usage and alert handlers."""

from __future__ import annotations

import pytest

from proxy.app import create_app
from proxy.config import parse_config
from proxy.hooks import load_hooks

WEBHOOK = "not callable"


def record_hook(record: object) -> None:
    """Target of the loading tests."""


class Sink:
    def collect(self, alert: object) -> None:
        """A method, named through a dotted attribute."""


def test_functions_and_dotted_attributes_load() -> None:
    specs = ["tests.proxy.test_hooks:record_hook", "tests.proxy.test_hooks:Sink.collect"]
    assert load_hooks(specs, "usage_handlers") == [record_hook, Sink.collect]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("no_colon_here", "is not of the form 'pkg.module:function'"),
        (":record_hook", "is not of the form"),
        ("tests.proxy.test_hooks:", "is not of the form"),
        ("tollgate_no_such_module:hook", "cannot load"),
        ("tests.proxy.test_hooks:Sink.missing", "cannot load"),
        ("tests.proxy.test_hooks:WEBHOOK", "is str, not a function"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_setting_and_the_spec(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_hooks(["tests.proxy.test_hooks:record_hook", spec], "usage_handlers")
    message = str(raised.value)
    assert message.startswith("usage_handlers: ") and repr(spec) in message and why in message


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ('usage_handlers = ["tests.proxy.test_hooks:Sink.missing"]', "usage_handlers"),
        ('[alerts]\nalert_handlers = ["tests.proxy.test_hooks:Sink.missing"]', "alert_handlers"),
    ],
)
def test_the_app_refuses_a_bad_hook_at_start(text: str, setting: str) -> None:
    with pytest.raises(ValueError, match=f"^{setting}: cannot load 'tests.proxy.test_hooks:Sink.missing'"):
        create_app(parse_config(text))
