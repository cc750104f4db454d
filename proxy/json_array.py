"""A JSON array that arrives in pieces, split into its items as each one closes.

Gemini's ``streamGenerateContent`` without ``?alt=sse`` answers with one JSON array whose
items (answer chunks, each with its running usage totals) arrive over time. It is relayed
as it arrives, so its items are found without waiting for the closing ``]``: the splitter
keeps only the open item, and scans each byte once, whatever the pieces' sizes, so a
bracket or a quote inside a string (escaped or not) never ends an item.

Only objects and arrays count as items; anything else at the top level (which no provider
sends) is passed over.
"""

from __future__ import annotations

import re

# The bytes that change the state, outside a string and inside one.
_OUTSIDE = re.compile(rb'[\[\]{}"]')
_INSIDE = re.compile(rb'["\\]')
_OPENERS = frozenset(b"[{")


class JsonArrayItems:
    """Feeds pieces of a JSON array in; gets its complete items out, each as its own bytes."""

    __slots__ = ("max_item_bytes", "overflowed", "_held", "_held_bytes", "_depth", "_in_string", "_escaped")

    def __init__(self, max_item_bytes: int) -> None:
        self.max_item_bytes = max_item_bytes
        self.overflowed = False
        """An item grew past ``max_item_bytes``: it is dropped, and nothing more is split."""
        self._held: list[bytes] = []  # the open item's pieces
        self._held_bytes = 0
        self._depth = 0  # 1 inside the array, 2 inside one of its items, and so on
        self._in_string = False
        self._escaped = False  # the last piece ended on a backslash inside a string

    def feed(self, piece: bytes) -> list[bytes]:
        if self.overflowed or not piece:
            return []
        items: list[bytes] = []
        start = 0 if self._depth >= 2 else -1  # where the open item begins in this piece (-1: none open)
        position = 0
        if self._escaped:  # the byte after a backslash is taken as it is
            self._escaped, position = False, 1
        size = len(piece)
        while position < size:
            if self._in_string:
                found = _INSIDE.search(piece, position)
                if found is None:
                    break
                position = found.end()
                if found.group() == b"\\":
                    if position == size:
                        self._escaped = True
                        break
                    position += 1
                else:
                    self._in_string = False
                continue
            found = _OUTSIDE.search(piece, position)
            if found is None:
                break
            char, position = piece[found.start()], found.end()
            if char == 0x22:  # a quote
                self._in_string = True
            elif char in _OPENERS:
                self._depth += 1
                if self._depth == 2:
                    start = found.start()
            else:
                self._depth = max(self._depth - 1, 0)
                if self._depth == 1 and start >= 0:
                    self._held.append(piece[start:position])
                    items.append(b"".join(self._held))
                    self._held, self._held_bytes, start = [], 0, -1
        if start >= 0:
            self._held.append(piece[start:])
            self._held_bytes += size - start
            if self._held_bytes > self.max_item_bytes:
                self._held, self._held_bytes, self.overflowed = [], 0, True
        return items


def split_json_array(data: bytes, max_item_bytes: int = 1 << 30) -> list[bytes]:
    """The complete items of a whole (or cut short) JSON array."""
    return JsonArrayItems(max_item_bytes).feed(data)
