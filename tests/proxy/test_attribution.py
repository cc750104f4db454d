"""Attribution a client sends is bounded: a row never grows with what a client chooses to send."""

from __future__ import annotations

import pytest

from proxy.attribution import MAX_TAG_NAME_CHARS, MAX_TAGS, AttributionReader
from proxy.config import AttributionConfig
from proxy.errors import BadRequest
from tests.conftest import Tollgate
from tests.fakeprovider import FakeProvider

READER = AttributionReader(AttributionConfig())


def _tags(count: int, name: str = "t", value: str = "v") -> list[tuple[bytes, bytes]]:
    return [(f"x-tollgate-tag-{name}{i}".encode(), value.encode()) for i in range(count)]


def test_tags_up_to_the_cap_are_kept() -> None:
    assert len(READER.read(_tags(MAX_TAGS)).tags) == MAX_TAGS


@pytest.mark.parametrize(
    "headers",
    [_tags(MAX_TAGS + 1), _tags(1, name="n" * MAX_TAG_NAME_CHARS), _tags(1, value="v" * 257), _tags(1, value="a\x00")],
)
def test_too_many_or_too_long_tags_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(BadRequest, match="X-Tollgate-Tag-"):
        READER.read(headers)


def test_ten_thousand_tags_get_a_400_that_says_so(tollgate: Tollgate, provider: FakeProvider) -> None:
    headers = {f"x-tollgate-tag-k{i}": "v" for i in range(10_000)}
    response = tollgate.client.post("/v1/chat/completions", content=b'{"model": "gpt-4o-mini"}', headers=headers)
    assert response.status_code == 400
    assert f"at most {MAX_TAGS}" in response.json()["error"]["message"]
    assert provider.requests == []
