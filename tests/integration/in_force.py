"""Federation files whose agreements are in force on the day the tests run.

A real ``accord up`` (and a service on :class:`~accord.adapters.clock.SystemClock`) reads
the real clock: an agreement that ends on a fixed date would make every test that runs a
job under it fail once that day has passed (no agreement in force: the job is refused or
waits). So the end-to-end tests run on copies of their federations whose agreements end
:data:`YEARS_AHEAD` years after today; everything else, starts included (all in the
past), is left as written. :func:`in_force` checks the result rather than trusting the
rewrite: every agreement in force today, every GPU model with an exchange rate today.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from pathlib import Path

from accord.adapters.federation_file import parse_federation_text
from tests.conftest import DEMO

YEARS_AHEAD = 5
_END = re.compile(r"^end\s*=\s*\d{4}-\d{2}-\d{2}", re.MULTILINE)


def today() -> date:
    """Today in UTC, the calendar Accord's books use."""
    return datetime.now(UTC).date()


def agreements_end(day: date | None = None) -> date:
    """The last day of the year :data:`YEARS_AHEAD` years after ``day`` (default: today)."""
    return date((day or today()).year + YEARS_AHEAD, 12, 31)


def in_force(text: str, day: date | None = None) -> str:
    """``text`` (a federation TOML) with every agreement's ``end`` moved to
    :func:`agreements_end`; fails unless each agreement and each GPU model's exchange rate
    is then in force on ``day`` (default: today)."""
    day = day or today()
    out, moved = _END.subn(f"end = {agreements_end(day).isoformat()}", text)
    fed = parse_federation_text(out, "in-force.toml")
    assert moved == len(fed.agreements), f"moved {moved} end dates for {len(fed.agreements)} agreements"
    late = [a.id for a in fed.agreements if not a.in_force(day)]
    assert not late, f"agreements not in force on {day}: {late}"
    noon = datetime.combine(day, time(12), UTC)
    for model in fed.gpu_models:
        fed.rate(model.name, noon)   # raises if the model has no rate that day
    return out


def write_in_force(path: Path, text: str) -> Path:
    """Write :func:`in_force` of ``text`` to ``path``; the path."""
    path.write_text(in_force(text), encoding="utf-8")
    return path


def demo_in_force(path: Path) -> Path:
    """The demo federation shipped with Accord, its agreements in force today, at ``path``."""
    return write_in_force(path, DEMO.read_text(encoding="utf-8"))


def uk_fr_federation(sites: str, name: str, units: int = 100000, extra: str = "") -> str:
    """A federation of two partners (uk, fr), one H100 model at 1 unit an hour, the ``sites``
    given (TOML ``[[sites]]`` tables), and a uk-fr agreement in force today with ``units``
    each way; ``extra`` TOML appended."""
    return f"""
[federation]
name = "{name}"
reference_unit = "H100-hour"
[[gpu_models]]
name = "H100"
[[exchange_rates]]
gpu_model = "H100"
units_per_gpu_hour = 1.0
valid_from = 2024-01-01
[[partners]]
id = "uk"
name = "UK"
country = "GB"
[[partners]]
id = "fr"
name = "France"
country = "FR"
{sites}
[[agreements]]
id = "uk-fr"
name = "UK-France"
parties = ["uk", "fr"]
start = 2025-01-01
end = {agreements_end().isoformat()}
[[agreements.quotas]]
requester = "uk"
host = "fr"
units = {units}
[[agreements.quotas]]
requester = "fr"
host = "uk"
units = {units}
{extra}
"""
