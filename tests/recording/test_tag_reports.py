"""Reports grouped and filtered by a tag read the recorded tags the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.recording.reports import usage_report
from proxy.recording.store import Store
from tests.recording.test_store import _BASE


def _store_with_tags(url: str) -> Store:
    store = Store(url)
    store.create_tables()
    tags = ['{"env": "prod", "feature": "search"}', '{"env": "prod"}', '{"env": "dev"}', None]
    store.insert_records(
        [dataclasses.replace(_BASE, request_id=f"r{n}", tags=t, cost_pico=10**6 * (n + 1)) for n, t in enumerate(tags)]
    )
    return store


def _check_tags(store: Store) -> None:
    by_env = {r.group: r.requests for r in usage_report(store, "tag:env")}
    assert by_env == {"prod": 2, "dev": 1, None: 1}
    [prod_search] = usage_report(store, None, tags={"env": "prod", "feature": "search"})
    assert prod_search.requests == 1
    assert usage_report(store, "tag:feature", tags={"env": "dev"})[0].group is None


def test_tags_group_and_filter_on_sqlite(db_url: str) -> None:
    _check_tags(_store_with_tags(db_url))


@pytest.mark.postgres
def test_tags_group_and_filter_on_postgresql(postgres_url: str) -> None:
    store = _store_with_tags(postgres_url)
    try:
        _check_tags(store)
    finally:
        store.dispose()


@pytest.mark.parametrize("group", ["tag:", 'tag:a"b', "tag:a b", "colour"])
def test_a_group_no_tag_header_could_name_is_refused(db_url: str, group: str) -> None:
    with pytest.raises(ValueError, match="tag name|cannot group by"):
        usage_report(Store(db_url), group)
