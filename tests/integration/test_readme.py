"""Every command block of ``README.md`` runs as written (issue 18: the tour's ledger commands
named a fixed month, and the campaign walk-through could not succeed as written).

What runs, and how:

* The blocks are the README's fenced ``bash``, ``sh`` and ``console`` blocks, in order (a
  ``console`` block's commands are its ``$ `` lines; its other lines are output).
* A marker comment on the line before a fence, ``<!-- readme-test: KIND: why -->``, treats a
  block differently, and must say why:

  - ``background``: the long-running server (``scripts/demo``). The test starts it in the
    background with ``--port`` and a free port appended (its extra arguments go to
    ``accord up``), and waits until it answers. Exactly one block is the background one.
  - ``skip``: not run at all (``scripts/test``, the suite this test is part of).

* Every other block runs, in README order, in one ``bash`` with ``set -eEo pipefail``, as a
  reader pasting them into one terminal would (what a block exports, the next one sees). A
  command that fails fails the test, naming it, its block's line and the output.
* The environment is a reader's, made fresh: ``HOME`` a new directory (so ``~/.accord`` is
  the server's new data directory, as in the README), the working directory a scratch copy
  of the checkout (symlinks: the files the blocks write stay out of the checkout;
  ``UV_PROJECT`` points ``uv run`` at the checkout), and ``ACCORD_FEDERATION`` the demo
  federation with its agreements' ends moved after today (``in_force.py``: the demo's own
  end dates would fail the tour once they pass). No other ``ACCORD_*`` variable is set.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.in_force import demo_in_force
from tests.integration.server import free_port

README = ROOT / "README.md"
LANGUAGES = {"bash", "sh", "console"}
KINDS = {"run", "background", "skip"}
TIMEOUT_S = 20 * 60          # the whole README, Inspect runs and the simulator included
SERVER_START_S = 120.0
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-test:\s*(\w+)\s*:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """A command block of the README: the line of its fence, how the test treats it, why
    (for a marked block) and its commands as a shell would read them."""

    line: int
    kind: str
    why: str
    text: str


def blocks(markdown: str) -> list[Block]:
    """The README's command blocks, in order (see the module's docstring).

    Raises:
        AssertionError: an unclosed fence, or a marker that names no kind or no reason.
    """
    lines = markdown.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"README.md:{i + 1}: a fence that never closes"
        if fence.group(1) in LANGUAGES:
            kind, why = _marker(lines, i)
            body = lines[i + 1:end]
            if fence.group(1) == "console":
                body = [x[2:] for x in body if x.startswith("$ ")]
            out.append(Block(i + 1, kind, why, "\n".join(body)))
        i = end + 1
    return out


def _marker(lines: list[str], fence: int) -> tuple[str, str]:
    """The marker on the line before the fence at ``fence`` (index), or ("run", "")."""
    before = lines[fence - 1] if fence > 0 else ""
    if "readme-test" not in before:
        return "run", ""
    m = _MARKER.match(before)
    assert m is not None and m.group(1) in KINDS - {"run"} and m.group(2), (
        f"README.md:{fence}: a marker must read <!-- readme-test: background|skip: why -->, got {before!r}")
    return m.group(1), m.group(2)


def command_of(block: Block) -> str:
    """The one command of a background block, without its comment.

    Raises:
        AssertionError: the block holds more than one command.
    """
    commands = [re.sub(r"\s+#.*$", "", x).strip() for x in block.text.splitlines()]
    commands = [c for c in commands if c and not c.startswith("#")]
    assert len(commands) == 1, f"README.md:{block.line}: a background block holds one command: {commands}"
    return commands[0]


def script(runs: list[Block]) -> str:
    """One bash script running ``runs`` in order; a failing command stops it, saying which."""
    head = ['set -eEo pipefail',
            "trap 'status=$?; echo \"README test: exit $status from: $BASH_COMMAND "
            "(the block at README.md:$README_BLOCK)\" >&2' ERR"]
    parts = [f'README_BLOCK={b.line}\necho "=== README.md:{b.line}"\n{b.text}' for b in runs]
    return "\n".join(head + parts) + '\necho "=== README test: every block ran"\n'


def run_script(text: str, cwd: Path, env: dict[str, str], log: Path, timeout_s: float) -> None:
    """Run ``text`` with bash in its own process group, its output to ``log``; then end
    whatever it left running in the background (the README's model server).

    Raises:
        AssertionError: it failed or ran out of time, with the end of its output.
    """
    path = cwd / ".readme-test.sh"
    path.write_text(text)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", str(path)], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _end_group(proc.pid)
            proc.wait()
    tail = log.read_text(errors="replace")[-6000:]
    assert code is not None, f"the README's blocks did not end in {timeout_s:.0f} s:\n{tail}"
    assert code == 0, f"a README command failed (exit {code}):\n{tail}"


def _end_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- the README's own blocks
def test_every_block_is_run_or_marked_with_a_reason() -> None:
    found = blocks(README.read_text())
    assert [b.kind for b in found].count("background") == 1
    assert command_of(next(b for b in found if b.kind == "background")) == "scripts/demo"
    skipped = [b for b in found if b.kind == "skip"]
    assert [b.text.split()[0] for b in skipped] == ["scripts/test"]
    assert sum(b.kind == "run" for b in found) >= 5


def test_a_failing_block_fails_the_run(tmp_path: Path) -> None:
    text = ("```sh\necho one\n```\n\n<!-- readme-test: skip: not this one -->\n```bash\nexit 3\n```\n\n"
            "```console\n$ false   # fails\noutput\n```\n\n```sh\necho never\n```\n")
    found = blocks(text)
    assert [(b.line, b.kind, b.text) for b in found] == [
        (1, "run", "echo one"), (6, "skip", "exit 3"), (10, "run", "false   # fails"),
        (15, "run", "echo never")]
    log = tmp_path / "log"
    with pytest.raises(AssertionError, match="a README command failed") as info:
        run_script(script([b for b in found if b.kind == "run"]), tmp_path, dict(os.environ), log, 30)
    assert "from: false" in str(info.value) and "README.md:10" in str(info.value)
    assert "never" not in log.read_text()


def test_a_marker_without_a_reason_is_refused() -> None:
    with pytest.raises(AssertionError, match="a marker must read"):
        blocks("<!-- readme-test: skip -->\n```sh\nscripts/test\n```\n")


# ---------------------------------------------------------------- running the README
@dataclass
class Reader:
    """A reader's fresh machine: home, a working copy of the checkout, the environment."""

    home: Path
    work: Path
    env: dict[str, str]


def _uv_cache(env: dict[str, str]) -> str:
    """The uv cache of this machine (a fresh HOME must not mean a cold cache)."""
    found = subprocess.run(["uv", "cache", "dir"], env=env, capture_output=True, text=True, check=True)
    return found.stdout.strip()


@pytest.fixture
def reader(tmp_path: Path) -> Reader:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", ".venv"):
            (work / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(HOME=str(home), UV_PROJECT=str(ROOT), UV_CACHE_DIR=_uv_cache(dict(os.environ)),
               ACCORD_FEDERATION=str(demo_in_force(tmp_path / "demo-in-force.toml")))
    return Reader(home, work, env)


@pytest.fixture
def server(reader: Reader, tmp_path: Path) -> Iterator[str]:
    """The README's background block, started as it says (plus ``--port``); its URL."""
    block = next(b for b in blocks(README.read_text()) if b.kind == "background")
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", f"exec {command_of(block)} --port {port}"], cwd=reader.work,
                                env=reader.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, url, reader.home / ".accord" / "server.json", log)
        yield url
    finally:
        _cancel_unfinished(url, reader.home / ".accord" / "admin.token")
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            _end_group(proc.pid)
            proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, written: Path, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"scripts/demo exited: {log.read_text()[-3000:]}"
        try:
            if written.exists() and httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"scripts/demo did not answer in {SERVER_START_S:.0f} s: {log.read_text()[-3000:]}")


def _cancel_unfinished(url: str, token_file: Path) -> None:
    """Cancel what the README left running (only if a block failed midway); best effort."""
    try:
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        listed = httpx.get(f"{url}/api/v1/jobs", params={"limit": 1000}, headers=auth, timeout=10)
        jobs = listed.json()["jobs"]
        for job in jobs:
            if job["state"] not in ("completed", "failed", "cancelled", "timed_out"):
                httpx.post(f"{url}/api/v1/jobs/{job['id']}/cancel", headers=auth, timeout=10)
    except (OSError, httpx.HTTPError, KeyError, ValueError):
        pass


def test_every_readme_block_runs_as_written(reader: Reader, server: str, tmp_path: Path) -> None:
    runs = [b for b in blocks(README.read_text()) if b.kind == "run"]
    log = tmp_path / "readme.log"
    run_script(script(runs), reader.work, reader.env, log, TIMEOUT_S)
    out = log.read_text()
    # what the README says they print, so a block that "succeeds" at nothing is caught too
    for promised in ("hello", "st.json: verified", "ledger verified", "the embargo has lifted",
                     "arithmetic     calc           accuracy     1.000"):
        assert promised in out, f"{promised!r} not in the README run's output:\n{out[-4000:]}"
    assert out.count("=== README.md:") == len(runs)
