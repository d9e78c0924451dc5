"""Running Slurm's commands: one place that turns process failures into Accord errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from accord.domain.errors import InDoubt, Unavailable

COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Completed:
    """What a command printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Completed:
        """Self, if it succeeded.

        Raises:
            Unavailable: it failed; the message quotes the command and its stderr.
        """
        if self.returncode != 0:
            raise Unavailable(f"{' '.join(self.argv[:2])} failed (exit {self.returncode}): "
                              f"{self.stderr.strip()[:300] or self.stdout.strip()[:300]}")
        return self


class CommandRunner(Protocol):
    """Runs a command and returns what it printed."""

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Completed:
        """Run ``argv`` with ``env`` added to the environment.

        Raises:
            Unavailable: the command cannot be started.
            InDoubt: it timed out (it may have acted).
        """
        ...


class SubprocessRunner:
    """Runs commands on this machine."""

    def __init__(self, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Completed:
        """See :class:`CommandRunner`."""
        full_env = {**os.environ, **env}
        try:
            done = subprocess.run(list(argv), env=full_env, capture_output=True, text=True,
                                  timeout=self.timeout_s, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise Unavailable(f"{argv[0]} is not installed on this machine (is Slurm's client "
                              "installed? scripts/slurm-testbed.sh start installs it)") from None
        except subprocess.TimeoutExpired:
            raise InDoubt(f"{argv[0]} did not answer within {self.timeout_s:.0f} s; what it "
                          "was asked to do may or may not have happened") from None
        except OSError as exc:
            raise Unavailable(f"cannot run {argv[0]}: {exc}") from exc
        return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)
