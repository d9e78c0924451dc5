"""The one exception tree of Accord.

Every error a user, partner or operator can see is an :class:`AccordError`.
Adapters convert third-party failures (subprocess, SQL, HTTP) into these at the
edge, with ``raise ... from exc``; shells (API, CLI) map them to status codes.

::

    AccordError
    ├── InvalidInput          bad data from a user or partner; carries Problems
    ├── NotFound              an id that does not exist (or that the caller may not see)
    ├── Conflict              the request contradicts stored state
    │   └── InvalidTransition a job event that its current state does not allow
    ├── Unavailable           a dependency (site, database) cannot be reached now
    │   ├── Busy              it answers, but has no room now (e.g. no free GPUs)
    │   └── InDoubt           no answer in time: the request may or may not have taken effect
    ├── Forbidden             the caller may not do this
    ├── Unauthenticated       no credentials, or credentials that are not valid (401)
    └── RateLimited           too many requests of one kind; retry after ``retry_after_s``
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located where the user can find it.

    ``where`` is a dotted path into the input (``sites[2].pools[0].gpus``) or a
    request field; ``line`` is the 1-based line in the source file when known.
    """

    where: str
    message: str
    got: str | None = None
    allowed: str | None = None
    source: str | None = None
    line: int | None = None

    def render(self) -> str:
        """Format as ``file:line: field: message (got X, allowed Y)``.

        >>> Problem("quota", "must be positive", got="-3", allowed="a number > 0",
        ...         source="f.toml", line=7).render()
        'f.toml:7: quota: must be positive (got -3, allowed a number > 0)'
        """
        prefix = ""
        if self.source is not None:
            prefix = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        detail = []
        if self.got is not None:
            detail.append(f"got {self.got}")
        if self.allowed is not None:
            detail.append(f"allowed {self.allowed}")
        suffix = f" ({', '.join(detail)})" if detail else ""
        return f"{prefix}{self.where}: {self.message}{suffix}"


class AccordError(Exception):
    """Base of every error Accord raises on purpose."""

    title = "Accord error"


class InvalidInput(AccordError):
    """Input from a user or partner is wrong; ``problems`` lists every fault found."""

    title = "Invalid input"

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(p.render() for p in self.problems))

    @classmethod
    def single(
        cls,
        where: str,
        message: str,
        got: object = None,
        allowed: str | None = None,
    ) -> InvalidInput:
        """Build an error with one problem (``got`` is rendered with ``repr``)."""
        return cls([Problem(where, message, None if got is None else repr(got), allowed)])


class NotFound(AccordError):
    """The named object does not exist, or the caller may not know that it does."""

    title = "Not found"


class Conflict(AccordError):
    """The request contradicts what is stored."""

    title = "Conflict"


class InvalidTransition(Conflict):
    """A job event is not allowed in the job's current state."""

    title = "Invalid transition"


class Unavailable(AccordError):
    """A dependency (a site, the database) cannot be reached right now; retry later."""

    title = "Unavailable"


class Busy(Unavailable):
    """The dependency answers but has no capacity now; the same request may succeed later."""

    title = "Busy"


class InDoubt(Unavailable):
    """A request timed out: it may have taken effect. Check before doing it again."""

    title = "In doubt"


class LeaseLost(AccordError):
    """This replica no longer holds the lease of the work only one replica may do (another
    took it over, or it could not renew in time): what it was about to write is refused."""

    title = "Lease lost"


class Forbidden(AccordError):
    """The caller is not allowed to do this."""

    title = "Forbidden"


class Unauthenticated(AccordError):
    """No credentials, or ones that are expired, forged, revoked or for another audience.

    The message says which, for the server's log and the caller; it never says whether
    a user or token exists."""

    title = "Unauthorized"


class RateLimited(AccordError):
    """Too many requests of one kind from one caller; retry after ``retry_after_s``."""

    title = "Too many requests"

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
