"""Usage back by account, per allocation (``accord.domain.enforcement.usage``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from accord.domain.enforcement.grants import GrantState, SiteGrant
from accord.domain.enforcement.usage import AccountUsage, compare_allocations
from accord.domain.ledger.entries import Entry, EntryKind
from accord.domain.ledger.usage import UsageRecord

T = datetime(2026, 11, 3, 10, tzinfo=UTC)


def grant(allocation: str, project: str = "evals") -> SiteGrant:
    return SiteGrant(allocation, project, "uk", "uk-fr", ("ada",), 600, date(2026, 12, 31), GrantState.OPEN)


def record(n: int, seconds: float, account: str | None, project: str = "evals") -> UsageRecord:
    return UsageRecord(f"jz:{n}", f"j{n}", "jz", "h100", "H100", "fr", "uk", "uk-fr", project, T,
                       datetime(2026, 11, 3, 11, tzinfo=UTC), 1, seconds, "completed", 0,
                       account=account, local_user="jz-ada" if account else None)


def entry(r: UsageRecord) -> Entry:
    return Entry(f"usage:{r.id}", EntryKind.USAGE, "uk-fr", "2026-11", "uk", "fr", "jz", r.project,
                 Decimal(1), (), job_id=r.job_id, usage_id=r.id, gpu_seconds=Decimal(repr(r.gpu_seconds)))


def test_two_allocations_of_one_project_are_compared_each_alone() -> None:
    records = [record(1, 3600, "acc-al1"), record(2, 1800, "acc-al2"), record(3, 600, "acc-al2")]
    slurm = [AccountUsage("2026-11", "acc-al1", "jz-ada", 3600, 1),
             AccountUsage("2026-11", "acc-al2", "jz-ada", 2400, 2),
             AccountUsage("2026-10", "acc-al2", "jz-ada", 9999, 1)]     # another period: not counted
    checks = compare_allocations("jz", "2026-11", [grant("al2"), grant("al1")], slurm, records,
                                 [entry(r) for r in records])
    assert [(c.allocation, c.account, c.slurm_gpu_seconds, c.usage_gpu_seconds, c.ledger_gpu_seconds, c.ok)
            for c in checks] == [("al1", "acc-al1", 3600, 3600, 3600, True),
                                 ("al2", "acc-al2", 2400, 2400, 2400, True)]
    assert checks[0].users == ("jz-ada",)


def test_usage_in_the_wrong_allocation_is_found() -> None:
    """Summed per project the books agree; per allocation they do not (a job charged to al1
    ran under al2's account)."""
    records = [record(1, 3600, "acc-al1")]
    slurm = [AccountUsage("2026-11", "acc-al2", "jz-ada", 3600, 1)]
    checks = compare_allocations("jz", "2026-11", [grant("al1"), grant("al2")], slurm, records, [])
    assert [(c.allocation, c.ok) for c in checks] == [("al1", False), ("al2", False)]


def test_usage_naming_no_allocation_is_its_own_row_checked_against_the_ledger() -> None:
    old = record(4, 900, None)
    checks = compare_allocations("jz", "2026-11", [grant("al1")], [], [old], [entry(old)])
    assert [(c.allocation, c.project, c.usage_gpu_seconds, c.ledger_gpu_seconds, c.ok) for c in checks] == [
        ("al1", "evals", 0, 0, True), (None, "evals", 900, 900, True)]
    over = entry(record(5, 5000, None))
    checks = compare_allocations("jz", "2026-11", [], [], [old], [entry(old), over])
    assert [(c.allocation, c.ok) for c in checks] == [(None, False)]


def test_the_reconcile_text_shows_each_allocation_and_the_rest() -> None:
    from accord.cli.ledger import _reconcile_text
    report = {"period": "2026-11", "ok": False, "sites": {"jz": {"ok": False, "error": "an agent site"}},
              "allocations": [
                  {"site": "jz", "allocation": "al1", "project": "evals", "agreement": "uk-fr",
                   "account": "acc-al1", "users": ["jz-ada"], "slurm_gpu_seconds": 3600.0,
                   "usage_gpu_seconds": 3600.0, "ledger_gpu_seconds": 3600.0, "ok": True},
                  {"site": "jz", "allocation": None, "project": "evals", "agreement": "uk-fr",
                   "account": None, "users": [], "slurm_gpu_seconds": 0.0,
                   "usage_gpu_seconds": 900.0, "ledger_gpu_seconds": 5900.0, "ok": False}]}
    text = _reconcile_text(report)
    assert "jz/al1 (acc-al1)" in text and "3600.0" in text
    row = next(line for line in text.splitlines() if "no allocation's account" in line)
    assert "jz/evals/uk-fr" in row and row.rstrip().endswith("DIFFERS") and " - " in row
