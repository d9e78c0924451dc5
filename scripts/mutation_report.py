"""The score of the last mutation run (scripts/mutation), per module, and every survivor.

A survivor listed in scripts/mutation-equivalent.txt (``<mutant name>  <why>``, one a line)
is an equivalent mutant: it changes no behaviour any caller can observe, so no test can kill
it; it is reported as such and left out of the score. Exit status 1 when an unexplained
mutant survives or the score is under the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

TARGET = 0.90
KILLED = {1: "killed", 3: "killed", 37: "caught by mypy"}
STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", None: "not run"}


def main() -> int:
    """Print the table and the survivors; 0 if the target is met with every survivor explained."""
    root = Path(__file__).resolve().parent.parent
    explained = _equivalents(root / "scripts" / "mutation-equivalent.txt")
    rows: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in sorted((root / "mutants" / "src").rglob("*.py.meta")):
        module = str(meta.relative_to(root / "mutants")).removesuffix(".meta")
        counts = rows.setdefault(module, Counter())
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status = KILLED.get(code) or STATUS.get(code, f"suspicious (exit {code})")
            if status == "survived" and name in explained:
                status = "equivalent"
            counts[status] += 1
            if status in ("survived", "no tests", "timeout") or status.startswith("susp"):
                survivors.append(f"{status}: {name}")
    if not rows:
        print("no mutation results: run scripts/mutation first", file=sys.stderr)
        return 1
    return _print(rows, survivors, explained)


def _print(rows: dict[str, Counter[str]], survivors: list[str], explained: dict[str, str]) -> int:
    total = Counter[str]()
    print(f"{'module':42} {'mutants':>7} {'killed':>7} {'mypy':>5} {'equiv':>5} {'survived':>8} {'other':>5} "
          f"{'score':>6}")
    for module, c in [*rows.items(), ("all", total)]:
        if module != "all":
            total.update(c)
        killed, mypy, equiv, alive = c["killed"], c["caught by mypy"], c["equivalent"], c["survived"]
        other = sum(c.values()) - killed - mypy - equiv - alive
        scored = sum(c.values()) - equiv
        score = (killed + mypy) / scored if scored else 1.0
        print(f"{module:42} {sum(c.values()):7} {killed:7} {mypy:5} {equiv:5} {alive:8} {other:5} "
              f"{score:6.1%}")
    print(f"\ncommit {_head()}; target {TARGET:.0%} of non-equivalent mutants killed")
    for line in survivors:
        print(line)
    scored = sum(total.values()) - total["equivalent"]
    score = (total["killed"] + total["caught by mypy"]) / scored if scored else 1.0
    return 0 if score >= TARGET and not survivors else 1


def _equivalents(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(" ")
                out[name] = why.strip()
    return out


def _head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
