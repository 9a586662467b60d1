"""Helpers shared by the IPC, handle-passing and reliability tests: child scripts written into
``tmp_path``, the loop driven for a while, and the *raw parent* -- the test itself holding the
other end of a Python child's channel, reading and writing it byte by byte."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import textwrap
import time

from child_process._loop import get_loop

PY = sys.executable
WAIT = 20.0
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

#: Prepended to every Python child script that uses the library: ``p`` is the channel and
#: ``out(...)`` reports one event as a JSON line on stdout (non-JSON values as their repr).
PRELUDE = """\
import child_process, json, os, sys
p = child_process.parent
def out(*args):
    sys.stdout.write(json.dumps(list(args), ensure_ascii=True, default=repr) + "\\n")
    sys.stdout.flush()
"""


def child_env(**extra) -> dict:
    """os.environ with this checkout's sources first on PYTHONPATH (children import the library
    under test, not some other copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


_counter = [0]


def script(tmp_path, code: str, name: str | None = None) -> str:
    """Write ``code`` (dedented) to a new file in tmp_path; return its path."""
    _counter[0] += 1
    path = tmp_path / (name or f"child_{_counter[0]}.py")
    path.write_text(textwrap.dedent(code))
    return str(path)


def run_until(cond, timeout: float = WAIT) -> bool:
    return get_loop().run_until(cond, timeout)


def spin(seconds: float) -> None:
    """Run the loop for ``seconds`` (events are handled meanwhile)."""
    get_loop().run_until(lambda: False, seconds)


def events_of(stdout: bytes) -> list:
    """The JSON-line events a PRELUDE child wrote."""
    return [json.loads(line) for line in stdout.decode().split("\n") if line.startswith("[")]


def record(child) -> list:
    """Every channel/process event of ``child`` in order."""
    events = []
    child.on("message", lambda m, h=None: events.append(("message", m)))
    child.on("internalMessage", lambda m: events.append(("internal", m)))
    child.on("error", lambda e: events.append(("error", getattr(e, "code", None))))
    child.on("disconnect", lambda: events.append(("disconnect",)))
    child.on("exit", lambda code, sig: events.append(("exit", code, sig)))
    child.on("close", lambda code, sig: events.append(("close", code, sig)))
    return events


class RawParent:
    """A Python child on a socket pair whose other end is ``self.sock``: the test is its parent.
    The child reports events as JSON lines on its stdout (PRELUDE's ``out``)."""

    def __init__(self, path: str, mode: str = "json", env: dict | None = None,
                 fd: int | None = None, args=()):
        self.mode = mode
        self.sock, theirs = socket.socketpair()
        child_fd = theirs.fileno()
        if fd is not None:          # place the child's end at a chosen number
            os.dup2(child_fd, fd, inheritable=False)
            theirs.close()
            theirs = None
            child_fd = fd
        full_env = child_env() if env is None else dict(env)
        full_env["NODE_CHANNEL_FD"] = str(child_fd)
        full_env["NODE_CHANNEL_SERIALIZATION_MODE"] = mode
        try:
            self.proc = subprocess.Popen([PY, path, *args], pass_fds=(child_fd,), env=full_env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            if theirs is not None:
                theirs.close()
            else:
                os.close(child_fd)
        self.sock.settimeout(WAIT)
        self._out = b""

    # -- the channel -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_eof(self) -> bytes:
        chunks = []
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, f"EOF after {len(buf)} of {n} bytes"
            buf += chunk
        return buf

    # -- the child's stdout ------------------------------------------------------------
    def events(self) -> list:
        return events_of(self._out)

    def wait_event(self, pred, timeout: float = WAIT) -> list:
        """Read the child's stdout until an event satisfying ``pred`` arrives; all events so far."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            events = self.events()
            if any(pred(e) for e in events):
                return events
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such event; got {events}"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, (f"child's stdout ended; got {events}; "
                               f"stderr: {self.proc.stderr.read()!r}")
                self._out += chunk

    def finish(self) -> tuple:
        """Close our end; (returncode, events, stderr text)."""
        self.sock.close()
        try:
            out, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self._out += out
        return self.proc.returncode, self.events(), err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.sock.close()
