"""A hub in a network namespace of its own, as a Unix user of its own, for the site-agent tests.

:func:`hub_namespace` creates a namespace joined to this one by a veth pair (a /30 of
10.213.X.0), and removes both when done. Inside it the hub has its own loopback: the Slurm
daemons on this namespace's 127.0.0.1 are out of its reach. :func:`hub_user` adds a system
user (removed after), and :class:`NamespacedHub` runs ``accord up`` inside the namespace as
that user. The Python the tests run under may live under a directory other users cannot
enter (``/root/.pyenv``): the hub's own mount namespace then shows only that interpreter's
directory there (a bind mount over a tmpfs), so the hub user can run Python and still
reads nothing else of root's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.agent_world import Tls
from tests.integration.server import free_port, stop_group


def ip(*args: str, ns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Namespace:
    name: str
    host_if: str       # the veth end in this namespace (cut the link by setting it down)
    host_ip: str
    hub_ip: str

    def run(self, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              check=check, timeout=timeout)

    def link(self, up: bool) -> None:
        ip("link", "set", self.host_if, "up" if up else "down")


@contextmanager
def hub_namespace() -> Iterator[Namespace]:
    """A fresh namespace and veth pair (names random, so parallel tests never collide)."""
    tag = secrets.token_hex(3)
    net = int(tag[:2], 16) % 64 * 4
    ns = Namespace(f"acc-hub-{tag}", f"ah{tag}", f"10.213.{int(tag[2:4], 16)}.{net + 1}",
                   f"10.213.{int(tag[2:4], 16)}.{net + 2}")
    inner = f"an{tag}"
    ip("netns", "add", ns.name)
    try:
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", ns.name)
        # No IPv6 link-local address on this namespace's end: it would appear a second or so
        # after the link is up, one more network change for the browsers of other tests.
        ip("link", "set", "dev", ns.host_if, "addrgenmode", "none")
        ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ip("addr", "add", f"{ns.hub_ip}/30", "dev", inner, ns=ns.name)
        ip("link", "set", inner, "up", ns=ns.name)
        ip("link", "set", "lo", "up", ns=ns.name)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


@contextmanager
def hub_user() -> Iterator[str]:
    """A system user for the hub (removed after)."""
    name = f"acchub{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def _hidden_prefix() -> tuple[Path, Path] | None:
    """(a directory others cannot enter, its child on the way to this Python), if any."""
    base = Path(sys.base_prefix).resolve()
    for parent in reversed(base.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            child = base.relative_to(parent).parts[0]
            return parent, parent / child
    return None


class NamespacedHub:
    """``accord up`` (HTTPS, SQLite) inside ``ns``, as ``user``, its files in ``home`` (owned by it)."""

    def __init__(self, ns: Namespace, user: str, home: Path, federation: Path, tls: Tls) -> None:
        self.ns, self.user, self.home = ns, user, home
        self.port = free_port()
        self.url = f"https://{ns.hub_ip}:{self.port}"
        self.ca = tls.ca
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        for src, name in ((federation, "federation.toml"), (tls.cert, "hub.pem"), (tls.key, "hub.key")):
            shutil.copy(src, home / name)
        (home / "data").mkdir(exist_ok=True)
        subprocess.run(["chown", "-R", f"{user}:", str(home)], check=True)
        self.log = home.parent / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _script(self) -> str:
        accord = (f"exec runuser -u {self.user} -- env ACCORD_DATA_DIR={self.home / 'data'} HOME={self.home} "
                  f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} {sys.executable} -m accord up "
                  f"--host {self.ns.hub_ip} --port {self.port} --federation {self.home / 'federation.toml'} "
                  f"--tls-cert {self.home / 'hub.pem'} --tls-key {self.home / 'hub.key'}")
        hidden = _hidden_prefix()
        if hidden is None:
            return accord
        parent, child = hidden
        stash = self.home.parent / "interpreter"
        stash.mkdir(exist_ok=True)
        return (f"set -e; mount --bind {child} {stash}; mount -t tmpfs -o mode=0711,size=1m tmpfs {parent}; "
                f"mkdir {child}; mount --bind {stash} {child}; {accord}")

    def start(self, timeout: float = 40.0) -> None:
        args = ["ip", "netns", "exec", self.ns.name, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", self._script()]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=self._tls()).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the hub did not answer: {self.log.read_text()[-3000:]}")

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def token(self) -> str:
        return (self.home / "data" / "admin.token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, verify=self._tls(),
                            headers={"Authorization": f"Bearer {self.token}"})

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True, check=False)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGINT)
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True, check=False)
