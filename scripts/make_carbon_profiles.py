"""Regenerate src/accord/data/carbon_profiles.json from the shared real series.

    uv run python scripts/make_carbon_profiles.py [--data DIR] [--check]

The shared data directory is ``--data``, else ``$ACCORD_SHARED_DATA``, else
``../shared/data`` beside the repository, else ``/work/shared/data``. With ``--check`` the
script writes nothing and exits 1 if the committed file differs from a fresh build.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accord.adapters.carbon.profiles import build_profiles
from accord.domain.errors import InvalidInput

OUT = Path(__file__).resolve().parent.parent / "src" / "accord" / "data" / "carbon_profiles.json"


def render(doc: object) -> str:
    """The file's text: one zone per block, one month per line, so diffs stay readable."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    # json puts each of a month's 24 numbers on its own line; fold them back onto one.
    lines, out = text.splitlines(), []
    buffer: list[str] = []
    for line in lines:
        stripped = line.strip()
        if buffer:
            buffer.append(stripped)
            if stripped.startswith("]"):
                out.append(buffer[0] + " ".join(buffer[1:-1]) + buffer[-1].lstrip())
                buffer = []
        elif stripped.endswith("[") and stripped.startswith('"') and stripped[1:3].rstrip('"').isdigit():
            buffer = [line]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build the profiles and write (or check) the JSON file; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data directory")
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    args = parser.parse_args(argv)
    try:
        doc = build_profiles(args.data)
    except InvalidInput as exc:
        print(f"make_carbon_profiles: {exc}", file=sys.stderr)
        return 2
    text = render(doc)
    if args.check:
        same = OUT.exists() and json.loads(OUT.read_text(encoding="utf-8")) == doc
        print(f"{OUT}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(doc['zones'])} zones, {len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
