"""A streamed JSON array is split into its items however its pieces fall."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.json_array import JsonArrayItems, split_json_array

# Items whose strings hold what could end an item if read carelessly: brackets, braces, quotes, backslashes.
TRICKY = [
    {"text": 'a "quoted" ] } [ { word', "n": 1},
    {"text": "ends on a backslash \\", "nested": {"list": [1, [2, {"x": "]"}]]}},
    [{"inner": "array item"}, '\\"'],
]
ARRAY = b"[" + b"\r\n,\r\n".join(orjson.dumps(item, option=orjson.OPT_INDENT_2) for item in TRICKY) + b"]"


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_items_are_found_however_the_array_is_split(size: int) -> None:
    splitter = JsonArrayItems(1 << 20)
    items = [item for piece in _pieces(ARRAY, size) for item in splitter.feed(piece)]
    assert [orjson.loads(item) for item in items] == TRICKY


def test_each_item_comes_out_as_soon_as_it_closes() -> None:
    splitter = JsonArrayItems(1 << 20)
    first, second = orjson.dumps({"a": 1}), orjson.dumps({"b": 2})
    assert splitter.feed(b"[" + first + b",\n" + second[:3]) == [first]
    assert splitter.feed(second[3:]) == [second]
    assert splitter.feed(b"]") == []


def test_an_item_past_the_limit_stops_the_splitting() -> None:
    splitter = JsonArrayItems(10)
    assert splitter.feed(b'[{"text": "far more than ten bytes"') == []
    assert splitter.overflowed
    assert splitter.feed(b'}, {"a": 1}]') == []


def test_a_cut_short_array_gives_the_items_that_closed() -> None:
    assert split_json_array(b'[{"a": 1}, {"b": [2, 3') == [b'{"a": 1}']


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.lists(st.dictionaries(st.text(max_size=5), _JSON, max_size=3), max_size=4), st.integers(1, 40))
def test_any_array_of_objects_splits_into_its_objects(values: list[dict[str, Any]], size: int) -> None:
    splitter = JsonArrayItems(1 << 20)
    items = [item for piece in _pieces(orjson.dumps(values), size) for item in splitter.feed(piece)]
    assert [orjson.loads(item) for item in items] == values


@given(st.binary(max_size=200), st.integers(1, 40))
def test_any_bytes_split_without_error(data: bytes, size: int) -> None:
    splitter = JsonArrayItems(1 << 20)
    for piece in _pieces(data, size):
        assert all(isinstance(item, bytes) for item in splitter.feed(piece))
