"""How the simulator's kernel is compiled: its functions are plain Python over numbers and
numpy arrays, marked with :func:`kernel` and the numba options they want; the loop's
builder (:func:`accord.sim.native.build`) compiles them together, or hands them back as
they are so that tests run the very same source interpreted.

``INLINE`` functions are small and hot: inlined into their callers. ``LEAN`` ones allocate
nothing, so they are compiled without numba's reference counting (with it, the loop spent
two thirds of its time counting references to the arrays it passes around).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

COMPILED: dict[str, Any] = {"cache": True}
INLINE: dict[str, Any] = {"cache": True, "inline": "always"}
LEAN: dict[str, Any] = {"cache": True, "_nrt": False}
LEAN_INLINE: dict[str, Any] = {**LEAN, "inline": "always"}

MARKED: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
"""Every function marked, by name (names are unique across the kernel's modules)."""


def kernel(options: dict[str, Any]) -> Callable[[F], F]:
    """Mark a function of the kernel, to be compiled with numba's ``options``; the function
    itself is returned unchanged.

    Raises:
        ValueError: another function of the kernel has the same name.
    """
    def mark(f: F) -> F:
        known = MARKED.get(f.__name__)
        if known is not None and known[0].__code__ is not f.__code__:
            raise ValueError(f"two kernel functions are called {f.__name__}")
        MARKED[f.__name__] = (f, options)
        return f

    return mark
