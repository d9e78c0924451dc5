"""What witness cosigning costs the hub (``docs/design/witnesses.md``): one collection from two
real ``accord witness serve`` processes on 127.0.0.2 and 127.0.0.3 (the ledger's tree built from
the database, two add-checkpoint round trips, the cosignatures checked and stored), and one
closed period's statement with and without its ``witnessing`` section, over a SQLite ledger of
``--entries`` entries (all of them in the statement's agreement and period).

    uv run python benchmarks/cosigning.py [--entries 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import SMALL_FEDERATION
from tests.contract.test_ledger_store import usage
from tests.integration.witnesses import PartnerWitnessProcess

from accord.adapters import keys
from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.sql.store import SqlStore
from accord.compose import ledger_service
from accord.service.ledger import LedgerService

ORIGIN = "accord.example/ledger/bench"


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def fill(store: SqlStore, ledger: LedgerService, entries: int) -> None:
    for i in range(entries):
        store.add_usage(replace(usage(i % 600), id=f"paris:{i}", job_id=f"j{i}"))
    while ledger.post_pending(2000):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        key = keys.load_or_create(data)
        log = f"{ORIGIN}={data / keys.PUBLIC}"
        witnesses = [PartnerWitnessProcess("uk-w", "uk", "127.0.0.2", root / "uk", str(root / "uk.db"), log),
                     PartnerWitnessProcess("fr-w", "fr", "127.0.0.3", root / "fr", str(root / "fr.db"), log)]
        try:
            for w in witnesses:
                w.keygen()
                w.start()
            measure(data, key, witnesses, args.entries, args.repeat)
        finally:
            for w in witnesses:
                w.stop()


def measure(data: Path, key: bytes, witnesses: list[PartnerWitnessProcess], entries: int,
            repeat: int) -> None:
    text = SMALL_FEDERATION + f'\n[witnessing]\norigin = "{ORIGIN}"\n' + "".join(w.toml() for w in witnesses)
    store = SqlStore(f"sqlite:///{data / 'accord.db'}")
    clock = FakeClock(datetime(2026, 12, 20, tzinfo=UTC))
    witnessed = ledger_service(parse_federation_text(text, "f.toml"), store, clock, key)
    alone = ledger_service(parse_federation_text(SMALL_FEDERATION, "f.toml"), store, clock, key)
    fill(store, witnessed, entries)
    witnessed.close_period("2026-10")
    grown = iter(range(repeat))

    def collect() -> None:   # each pass finds one more entry, so every witness is asked
        store.add_usage(replace(usage(0), id=f"paris:extra{next(grown)}", job_id="jx"))
        witnessed.post_pending()
        assert all(not o.error for o in witnessed.collect_cosignatures())

    print(f"ledger of {entries} entries, 2 witnesses on loopback, median of {repeat}:")
    print(f"  collection: {median_ms(collect, repeat):.0f} ms")
    for name, ledger in (("with witnessing", witnessed), ("without", alone)):
        ms = median_ms(lambda: ledger.statement("uk-fr", "2026-10"), repeat)   # noqa: B023
        print(f"  statement {name}: {ms:.0f} ms")
    store.close()


if __name__ == "__main__":
    main()
