"""The hub's record of site enforcement (``site_links``, migration 0013) on SQLite and
PostgreSQL: identities and grants upserted per sync, drift kept until new drift is found,
Slurm's per-account totals by period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from accord.adapters.sql.link_store import SqlSiteLinks
from accord.adapters.sql.store import SqlStore
from accord.domain.enforcement.identity import LinkState
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.enforcement.wire import GrantReport, GrantStatus, Link, LinkKind, SiteReport

AT = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def test_reports_are_kept_per_site_and_subject(store: SqlStore) -> None:
    links = SqlSiteLinks(store)
    first = SiteReport((Link("ada", "jz-ada", LinkState.CREATING),),
                       (GrantReport("al1", GrantStatus.PENDING, "acc-al1"),),
                       ("raised by hand (put back)",), "",
                       (AccountUsage("2026-11", "acc-al1", "jz-ada", 120.0, 2),))
    links.save_report("jeanzay", first, AT)
    later = SiteReport((Link("ada", "jz-ada", LinkState.OK), Link("bad.user", "", LinkState.ERROR, "no")),
                       (GrantReport("al1", GrantStatus.OK, "acc-al1"),), (), "")
    links.save_report("jeanzay", later, AT + timedelta(seconds=2))
    links.save_report("isambard", SiteReport((Link("ada", "is-ada", LinkState.OK),)), AT)
    rows = {(r.kind, r.subject): r for r in links.site_links("jeanzay")}
    assert rows[(LinkKind.IDENTITY, "ada")].state == "ok"
    assert rows[(LinkKind.IDENTITY, "bad.user")].reason == "no"
    assert rows[(LinkKind.GRANT, "al1")].state == "ok"
    assert rows[(LinkKind.DRIFT, "")].reason == "raised by hand (put back)"   # kept: no new drift since
    assert rows[(LinkKind.DRIFT, "")].updated_at == AT
    assert rows[(LinkKind.SYNC, "")].updated_at == AT + timedelta(seconds=2)
    assert [(r.site, r.value) for r in links.user_links("ada")] == [("isambard", "is-ada"),
                                                                    ("jeanzay", "jz-ada")]
    assert links.site_usage("jeanzay", "2026-11") == [AccountUsage("2026-11", "acc-al1", "jz-ada", 120.0, 2)]
    assert links.site_usage("jeanzay", "2026-10") == []
