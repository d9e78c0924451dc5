"""Typed reading of nested mappings that collects every problem instead of stopping.

Used for the federation file and anything else a partner sends as a document:
each accessor returns a value (or ``None`` when the field is bad or missing) and
records a :class:`~accord.domain.errors.Problem` naming the field's path, the bad
value and what is allowed.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar

from accord.domain.errors import Problem

E = TypeVar("E", bound=enum.Enum)

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ID_ALLOWED = "1–63 lower-case letters, digits, '-' and '_', starting with a letter or digit"


COUNTRY_ALLOWED = "an ISO 3166-1 alpha-2 code: two capital letters A-Z, e.g. GB, FR"

# Bounds of any document read here, unless its reader passes tighter ones (the federation's
# are in accord.domain.federation.limits): no partner's document is unbounded.
TEXT_LENGTH = 4096     # characters of a text field
LIST_ITEMS = 10_000    # strings in a list
TABLES = 10_000        # tables in an array of tables


def is_country_code(text: str) -> bool:
    """Whether ``text`` is shaped like an ISO 3166-1 alpha-2 code (two ASCII capitals).

    >>> [is_country_code(c) for c in ("GB", "gb", "GBR", "ÉÉ")]
    [True, False, False, False]
    """
    return len(text) == 2 and text.isascii() and text.isalpha() and text.isupper()


def show(value: object) -> str:
    """Render a user's value for a message, short and unambiguous.

    >>> show("x"), show(3), show([1, 2])
    ("'x'", '3', '[1, 2]')
    """
    try:
        text = repr(value)
    except RecursionError:   # a list nested deeper than repr goes (a hostile JSON body)
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


class FieldReader:
    """Reads fields from mappings, appending problems to ``problems``."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: str, message: str, got: object = None, allowed: str | None = None) -> None:
        """Record a problem at ``where``."""
        self.problems.append(Problem(where, message, None if got is None else show(got), allowed))

    def table(self, parent: Mapping[str, object], key: str, path: str) -> Mapping[str, object]:
        """A sub-table; an empty mapping (and a problem) if it is not a table."""
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.add(_join(path, key), "must be a table", value, "a [table]")
            return {}
        return value

    def tables(self, parent: Mapping[str, object], key: str, path: str,
               *, max_items: int = TABLES) -> list[Mapping[str, object]]:
        """An array of tables (``[[key]]``), at most ``max_items`` of them (more: a problem
        and none read); tables that are not mappings are reported."""
        value = parent.get(key, [])
        where = _join(path, key)
        if not isinstance(value, list):
            self.add(where, "must be an array of tables", value, f"[[{key}]] entries")
            return []
        if len(value) > max_items:
            self.add(where, "has too many tables", f"{len(value)} tables", f"at most {max_items}")
            return []
        out: list[Mapping[str, object]] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                out.append(item)
            else:
                self.add(f"{where}[{i}]", "must be a table", item, "a table")
        return out

    def unknown_keys(self, table: Mapping[str, object], path: str, known: Sequence[str]) -> None:
        """Report keys that are not in ``known`` (catches typos)."""
        for key in table:
            if key not in known:
                self.add(_join(path, key), "unknown field", key, ", ".join(sorted(known)))

    def text(
        self, table: Mapping[str, object], key: str, path: str, *, required: bool = True,
        max_length: int = TEXT_LENGTH,
    ) -> str | None:
        """A non-empty string field of at most ``max_length`` characters."""
        value = table.get(key)
        where = _join(path, key)
        if value is None:
            if required:
                self.add(where, "is required", allowed="a non-empty string")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(where, "must be a non-empty string", value, "a non-empty string")
            return None
        if len(value) > max_length:
            self.add(where, f"is too long ({len(value)} characters)", value,
                     f"at most {max_length} characters")
            return None
        return value

    def ident(self, table: Mapping[str, object], key: str, path: str) -> str | None:
        """An identifier field (``uk-fr``, ``isambard-ai``)."""
        value = self.text(table, key, path)
        if value is not None and not ID_PATTERN.match(value):
            self.add(_join(path, key), "is not a valid id", value, ID_ALLOWED)
            return None
        return value

    def number(
        self,
        table: Mapping[str, object],
        key: str,
        path: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        required: bool = True,
        default: float | None = None,
    ) -> float | None:
        """A finite number within [minimum, maximum]."""
        value = table.get(key)
        where = _join(path, key)
        allowed = _range_text(minimum, maximum)
        if value is None:
            if required:
                self.add(where, "is required", allowed=allowed)
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.add(where, "must be a number", value, allowed)
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.add(where, "is out of range", value, allowed)
            return None
        return float(value)

    def integer(
        self, table: Mapping[str, object], key: str, path: str, *, minimum: int = 1,
        maximum: int | None = None,
    ) -> int | None:
        """A whole number from ``minimum`` to ``maximum``."""
        value = table.get(key)
        where = _join(path, key)
        allowed = f"a whole number >= {minimum}" if maximum is None else \
            f"a whole number from {minimum} to {maximum:,}"
        if value is None:
            self.add(where, "is required", allowed=allowed)
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(where, "must be a whole number", value, allowed)
            return None
        if maximum is not None and value > maximum:
            self.add(where, "is out of range", value, allowed)
            return None
        return value

    def choice(
        self,
        table: Mapping[str, object],
        key: str,
        path: str,
        kind: type[E],
        *,
        default: E | None = None,
    ) -> E | None:
        """A value of a closed vocabulary."""
        value = table.get(key)
        allowed = ", ".join(m.value for m in kind)
        if value is None:
            if default is None:
                self.add(_join(path, key), "is required", allowed=allowed)
            return default
        for member in kind:
            if member.value == value:
                return member
        self.add(_join(path, key), "is not a known value", value, allowed)
        return None

    def day(
        self, table: Mapping[str, object], key: str, path: str, *, required: bool = True,
        earliest: date = date.min, latest: date = date.max,
    ) -> date | None:
        """A calendar date (TOML date or ``YYYY-MM-DD`` string) from ``earliest`` to ``latest``."""
        value = table.get(key)
        where = _join(path, key)
        if value is None:
            if required:
                self.add(where, "is required", allowed="a date YYYY-MM-DD")
            return None
        found = _as_date(value)
        if found is None:
            self.add(where, "is not a date", value, "a date YYYY-MM-DD")
        elif not earliest <= found <= latest:
            self.add(where, "is out of range", found.isoformat(),
                     f"a date from {earliest.isoformat()} to {latest.isoformat()}")
            return None
        return found

    def strings(self, table: Mapping[str, object], key: str, path: str, *, max_items: int = LIST_ITEMS,
                max_length: int = TEXT_LENGTH) -> tuple[str, ...]:
        """A list of at most ``max_items`` non-empty strings of at most ``max_length``
        characters each (missing means empty)."""
        value = table.get(key, [])
        where = _join(path, key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(where, "must be a list of strings", value, 'e.g. ["a", "b"]')
            return ()
        if len(value) > max_items:
            self.add(where, "has too many items", f"{len(value)} items", f"at most {max_items}")
            return ()
        long = next((i for i, v in enumerate(value) if len(v) > max_length), None)
        if long is not None:
            self.add(f"{where}[{long}]", f"is too long ({len(value[long])} characters)", value[long],
                     f"at most {max_length} characters")
            return ()
        return tuple(value)

    def member(
        self, value: str | None, where: str, known: Sequence[str], what: str, hint: str = ""
    ) -> None:
        """Report ``value`` if it is not one of ``known`` (``hint`` says how to add one)."""
        if value is not None and value not in known:
            allowed = ", ".join(known) or "none are declared"
            self.add(where, f"names an unknown {what}", value, allowed + (f"; {hint}" if hint else ""))


def _as_date(value: object) -> date | None:
    """A TOML date (or datetime's day), or a ``YYYY-MM-DD`` string, as a date; else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"a number from {_num(minimum)} to {_num(maximum)}"
    if minimum is not None:
        return f"a number >= {_num(minimum)}"
    if maximum is not None:
        return f"a number <= {_num(maximum)}"
    return "a number"


def _num(x: float) -> str:
    """A bound as people read it.

    >>> _num(5000), _num(0.8), _num(1e12), _num(1e30)
    ('5,000', '0.8', '1,000,000,000,000', '1e+30')
    """
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
