"""The facts every replica of one hub must share, recorded by the first to start: a second
replica with a different signing key, admin token or local job directory is refused at
start, with what differs and how to make it the same (``docs/design/replicas.md``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from accord.adapters.sql.schema import hub_identity
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Conflict


def claim(store: SqlStore, facts: Mapping[str, tuple[str, str]], adopt: bool = False) -> None:
    """Record each fact (name -> (value, how to set it)) the hub does not know yet; with
    ``adopt``, overwrite what it knows (after rotating a secret).

    Raises:
        Conflict: a fact differs from the one the hub recorded (each named, with the fix).
        Unavailable: the database cannot be reached.
    """
    rows = [{"name": name, "value": value} for name, (value, _) in facts.items()]
    with store.transaction() as conn:
        ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = ins(hub_identity).values(rows)
        if adopt:
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                    set_={"value": stmt.excluded.value}))
        else:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        rows_now = conn.execute(select(hub_identity.c.name, hub_identity.c.value))
        known = {str(r[0]): str(r[1]) for r in rows_now}
    differs = [f"{name}: this replica has {value!r}, the hub's is {known[name]!r}; {fix}"
               for name, (value, fix) in facts.items() if known.get(name) != value]
    if differs:
        raise Conflict("this replica does not match the hub it joins (same database):\n  "
                       + "\n  ".join(differs)
                       + "\n(after rotating a secret on purpose: accord up --adopt-identity)")
