"""Edits made directly in the ledger's tables, behind Accord's back, for the tests that
check ``verify`` finds and locates each one."""

from __future__ import annotations

from sqlalchemy import Connection, text

TAMPER = ["edit_body", "edit_column", "edit_hash", "delete", "insert", "swap", "edit_head",
          "stray_below", "stray_text"]


def tamper(conn: Connection, how: str, where: int, size: int) -> None:
    """Apply the edit ``how`` at entry ``where`` of a ledger of ``size`` entries."""
    run = conn.execute
    if how == "edit_body":
        run(text("UPDATE ledger_entries SET body = replace(body, '\"units\":\"', '\"units\":\"9') "
                 "WHERE seq = :s"), {"s": where})
    elif how == "edit_column":
        run(text("UPDATE ledger_entries SET period = '2030-01' WHERE seq = :s"), {"s": where})
    elif how == "edit_hash":
        run(text("UPDATE ledger_entries SET hash = upper(hash) WHERE seq = :s"), {"s": where})
    elif how == "delete":
        run(text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": where})
    elif how == "insert":  # a copy of entry `where` slipped in right after it
        run(text("UPDATE ledger_entries SET seq = seq + 1000 WHERE seq > :s"), {"s": where})
        run(text("UPDATE ledger_entries SET seq = seq - 999 WHERE seq > 1000"))
        run(text("INSERT INTO ledger_entries SELECT seq + 1, id || 'x', agreement, period, "
                 "job_id, usage_id, body, hash FROM ledger_entries WHERE seq = :s"), {"s": where})
    elif how == "swap":
        other = (where + 1) % size
        run(text("UPDATE ledger_entries SET seq = -1 WHERE seq = :a"), {"a": where})
        run(text("UPDATE ledger_entries SET seq = :a WHERE seq = :b"), {"a": where, "b": other})
        run(text("UPDATE ledger_entries SET seq = :b WHERE seq = -1"), {"b": other})
    elif how == "edit_head":
        run(text("UPDATE ledger_head SET seq = seq - 1"))
    elif how == "stray_below":
        stray(conn, -1, where)
    elif how == "stray_text":  # SQLite keeps text in an integer column; it sorts last
        stray(conn, "x", where)
    else:
        raise ValueError(f"unknown tampering {how!r}; known: {', '.join(TAMPER)}")


def stray(conn: Connection, seq: int | str, copy_of: int = 0) -> None:
    """A copy of entry ``copy_of`` inserted at ``seq`` (outside the chain's range)."""
    conn.execute(text("INSERT INTO ledger_entries SELECT :seq, id || 'stray', agreement, period, "
                      "job_id, usage_id, body, hash FROM ledger_entries WHERE seq = :s"),
                 {"seq": seq, "s": copy_of})
