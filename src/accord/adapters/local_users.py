"""The site's local Unix users (see :class:`accord.ports.enforcement.LocalUsers`): looked up
with :mod:`pwd`, created with ``useradd`` (a group of its own, no home directory, no
password: a visitor's jobs run as it, nobody logs in as it)."""

from __future__ import annotations

import pwd
import subprocess

from accord.domain.errors import Unavailable
from accord.ports.enforcement import LocalAccount

TIMEOUT_S = 30.0


class UnixUsers:
    """Local users of this machine (the agent runs as root to create them)."""

    def lookup(self, name: str) -> LocalAccount | None:
        """See :meth:`accord.ports.enforcement.LocalUsers.lookup`."""
        try:
            e = pwd.getpwnam(name)
        except KeyError:
            return None
        return LocalAccount(e.pw_name, e.pw_uid, e.pw_gid, e.pw_gecos)

    def create(self, name: str, comment: str) -> LocalAccount:
        """See :meth:`accord.ports.enforcement.LocalUsers.create`.

        Raises:
            Unavailable: useradd failed or is missing.
        """
        argv = ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/bash",
                "--comment", comment[:60].replace(":", " "), name]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"useradd could not run: {exc}") from None
        found = self.lookup(name)
        if done.returncode != 0 and found is None:
            raise Unavailable(f"useradd {name} failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
        if found is None:
            raise Unavailable(f"useradd {name} succeeded but the user is not found")
        return found
