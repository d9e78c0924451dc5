"""Load a federation from a TOML file, with problems located by line.

``tomllib`` gives no positions, so :func:`locate_lines` maps each table and key
to the line that defines it with a light scan of the text; a problem's dotted
path is located by its longest prefix found.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.limits import FILE_BYTES
from accord.domain.federation.model import Federation
from accord.domain.federation.schema import parse_federation

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_federation(path: Path | str) -> Federation:
    """Read and validate a federation file.

    Raises:
        InvalidInput: the file is missing, unreadable, larger than
            :data:`~accord.domain.federation.limits.FILE_BYTES`, not TOML, or invalid; every
            problem has the file name and, where known, the line.
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:      # read no more than the bound: it could be anything
            data = fh.read(FILE_BYTES.maximum + 1)
        if len(data) > FILE_BYTES.maximum:
            _too_large(f"over {FILE_BYTES.maximum:,} bytes", source)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput([Problem("federation", "file not found", source,
                                    "the path of a federation TOML file", source)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem("federation", f"cannot read file: {exc}", source=source)]) from exc
    return parse_federation_text(text, source)


def parse_federation_text(text: str, source: str = "<federation>") -> Federation:
    """Parse and validate federation TOML text.

    Raises:
        InvalidInput: as :func:`load_federation`.
    """
    if len(text) > FILE_BYTES.maximum:   # more characters than the bound's bytes: not encoded
        _too_large(f"{len(text):,} characters", source)
    if (size := len(text.encode(errors="surrogatepass"))) > FILE_BYTES.maximum:
        _too_large(f"{size:,} bytes", source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POS.search(str(exc))
        line = int(match.group(1)) if match else max(1, len(text.splitlines()))
        message = _TOML_POS.sub("", str(exc)).strip()
        raise InvalidInput([Problem("toml", f"malformed TOML: {message}", source=source,
                                    line=line)]) from exc
    try:
        return parse_federation(doc)
    except InvalidInput as exc:
        lines = locate_lines(text)
        located = [replace(p, source=source, line=_find(lines, p.where)) for p in exc.problems]
        raise InvalidInput(sorted(located, key=lambda p: p.line or 0)) from None


def _too_large(size: str, source: str) -> None:
    """Raises InvalidInput: a file of ``size`` is over the bound."""
    raise InvalidInput([Problem("federation", "file is too large", size,
                                f"at most {FILE_BYTES.maximum:,} bytes", source)])


def locate_lines(text: str) -> dict[str, int]:
    """Map dotted paths (``sites[1].pools[0].gpus``) to 1-based line numbers.

    >>> m = locate_lines('[[sites]]\\nid = "a"\\n[[sites]]\\nid = "b"\\n[[sites.pools]]\\ngpus = 4\\n')
    >>> m["sites[1].id"], m["sites[1].pools[0].gpus"]
    (4, 6)
    """
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    current = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            current = _header_path(header.group(1) == "[[", header.group(2), counters, current)
            lines.setdefault(current, number)
            continue
        key = _KEY.match(raw)
        if key:
            name = key.group(1).strip('"')
            lines.setdefault(f"{current}.{name}" if current else name, number)
    return lines


def _header_path(is_array: bool, dotted: str, counters: dict[str, int], current: str) -> str:
    parts = [p.strip().strip('"') for p in dotted.split(".")]
    resolved: list[str] = []
    for depth, part in enumerate(parts):
        prefix = ".".join(resolved)
        key = f"{prefix}.{part}" if prefix else part
        last = depth == len(parts) - 1
        if last and is_array:
            index = counters.get(key, -1) + 1
            counters[key] = index
            for stale in [k for k in counters if k.startswith(f"{key}[{index - 1}].")]:
                del counters[stale]
            resolved.append(f"{part}[{index}]")
        elif key in counters:
            resolved.append(f"{part}[{counters[key]}]")
        else:
            resolved.append(part)
    return ".".join(resolved)


def _find(lines: dict[str, int], where: str) -> int | None:
    path = where
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
