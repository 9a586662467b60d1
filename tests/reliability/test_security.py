"""Security (issue 9): no shell unless asked, hostile arguments run nothing else, the parent's
descriptors never reach children, received descriptors are close-on-exec, 'pickle' only when
asked for, and NODE_CHANNEL_* in the user's environment never confuse the channel.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess

import pytest

from child_process import (ExecError, exec_file, exec_file_sync, fork, spawn, spawn_sync)
from conftest import START_PATHS, start_path

from ._util import PRELUDE, PY, WAIT, child_env, run_until, script


#: Hostile arguments: each would create a file named after it in the cwd if a shell ran it.
HOSTILE = [
    "$(touch sub)", "`touch tick`", "; touch semi", "| touch pipe", "&& touch and",
    "|| touch or", "> redirect", "a\ntouch newline", "'; touch quote; '", '"; touch dq; "',
    "$(touch$IFS'ifs')", "*", "~", "${HOME}", "\\; touch bs", "-e", "--", "%s%n", "\r\ntouch crlf",
]


def created(tmp_path) -> list:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "marker-dir")


def _run_echo(api: str, tmp_path) -> bytes:
    """Run ``echo <HOSTILE...>`` through ``api`` in tmp_path; the child's stdout."""
    if api == "spawn":
        child = spawn("echo", HOSTILE, cwd=tmp_path)
        out = []
        child.stdout.on("data", out.append)
        assert child.wait(WAIT) == (0, None)
        return b"".join(out)
    if api == "spawn_sync":
        r = spawn_sync("echo", HOSTILE, cwd=tmp_path)
        assert r.status == 0
        return r.stdout
    if api == "exec_file":
        got = []
        child = exec_file("echo", HOSTILE, cwd=tmp_path, encoding="buffer",
                          callback=lambda e, o, s: got.append((e, o)))
        child.wait(WAIT)
        assert got[0][0] is None
        return got[0][1]
    if api == "exec_file_sync":
        return exec_file_sync("echo", HOSTILE, cwd=tmp_path)
    raise AssertionError(api)


@pytest.mark.parametrize("api", ["spawn", "spawn_sync", "exec_file", "exec_file_sync"])
def test_hostile_arguments_reach_the_program_verbatim_and_run_nothing(tmp_path, api):
    """No shell unless asked: every metacharacter, substitution and newline arrives as a literal
    argument (echo prints them back exactly) and no file is created."""
    out = _run_echo(api, tmp_path)
    assert out == (" ".join(HOSTILE) + "\n").encode()
    assert created(tmp_path) == []


@pytest.mark.parametrize("command", ["echo; touch semi", "touch sub #", "$(touch sub)",
                                     "echo `touch tick`", "sh -c 'touch quoted'"])
def test_a_hostile_command_name_is_a_file_name_not_a_script(tmp_path, command):
    """The command itself is looked up as one file name: ENOENT, nothing runs."""
    child = spawn(command, cwd=tmp_path)
    errors = []
    child.on("error", errors.append)
    child.wait(WAIT)
    assert [e.code for e in errors] == ["ENOENT"]
    r = spawn_sync(command, cwd=tmp_path)
    assert r.error is not None and r.error.code == "ENOENT"
    with pytest.raises(ExecError) as info:
        exec_file_sync(command, cwd=tmp_path)
    assert info.value.code == "ENOENT"
    assert created(tmp_path) == []


def test_shell_is_used_only_when_asked(tmp_path):
    """The same string with shell=True does run through /bin/sh (so the tests above would see
    a file if the library used a shell by default)."""
    r = spawn_sync("touch", ["$(echo made)"], cwd=tmp_path, shell=True)
    assert r.status == 0
    assert created(tmp_path) == ["made"]


def test_executable_in_cwd_is_not_run_unless_on_path(tmp_path):
    """A program named like a system command in the (attacker-writable) cwd is not picked up:
    lookup is on PATH only."""
    fake = tmp_path / "ls"
    fake.write_text("#!/bin/sh\ntouch pwned\n")
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin"}
    assert spawn("ls", cwd=tmp_path, env=env, stdio="ignore").wait(WAIT) == (0, None)
    assert spawn_sync("ls", cwd=tmp_path, env=env).status == 0
    assert created(tmp_path) == ["ls"]


# =================================================================================================
# the parent's descriptors never reach children
# =================================================================================================

FDLIST = r"""
import json, os, sys
out = {}
for name in os.listdir("/proc/self/fd"):
    try:
        st = os.fstat(int(name))
    except OSError:
        continue                    # the directory listdir() used
    out[name] = [st.st_dev, st.st_ino]
print(json.dumps(out), flush=True)
"""


class Inheritables:
    """Descriptors this process makes inheritable: a pipe, a socket pair, a file, and a dup at
    a high number -- none may show up in a child."""

    def __init__(self, tmp_path):
        self.r, self.w = os.pipe()
        self.a, self.b = socket.socketpair()
        self.f = os.open(tmp_path / "file", os.O_CREAT | os.O_RDWR)
        self.high = os.dup2(self.r, 900)
        for fd in (self.r, self.w, self.a.fileno(), self.b.fileno(), self.f, self.high):
            os.set_inheritable(fd, True)

    def idents(self) -> set:
        out = set()
        for fd in (self.r, self.w, self.a.fileno(), self.b.fileno(), self.f, self.high):
            st = os.fstat(fd)
            out.add((st.st_dev, st.st_ino))
        return out

    def close(self):
        for fd in (self.r, self.w, self.f, self.high):
            os.close(fd)
        self.a.close()
        self.b.close()


def _child_fds(api: str, ids: dict, tmp_path) -> dict:
    args = ["-I", "-S", "-c", FDLIST]
    if api == "spawn":
        child = spawn(PY, args, **ids)
        out = []
        child.stdout.on("data", out.append)
        assert child.wait(WAIT) == (0, None)
        return json.loads(b"".join(out))
    if api == "spawn-detached-ipc":
        child = spawn(PY, args, detached=True, stdio=["ignore", "pipe", "inherit", "ipc"], **ids)
        out = []
        child.stdout.on("data", out.append)
        assert child.wait(WAIT) == (0, None)
        return json.loads(b"".join(out))
    if api == "spawn_sync":
        r = spawn_sync(PY, args, **ids)
        assert r.status == 0, r.stderr
        return json.loads(r.stdout)
    if api == "exec_file_sync":
        return json.loads(exec_file_sync(PY, args, **ids))
    if api == "fork":
        path = script(tmp_path, FDLIST)      # no import: the library would open its own loop
        child = fork(path, silent=True, **ids)
        out = []
        child.stdout.on("data", out.append)
        assert child.wait(WAIT) == (0, None)
        return json.loads(b"".join(out))
    raise AssertionError(api)


@pytest.mark.parametrize("path", START_PATHS)
@pytest.mark.parametrize("api", ["spawn", "spawn-detached-ipc", "spawn_sync", "exec_file_sync",
                                 "fork"])
def test_inheritable_descriptors_never_reach_children(tmp_path, api, path):
    """os.set_inheritable(fd, True) on a pipe, a socket pair, a file and fd 900: the child has
    exactly its stdio slots (0-2, plus the channel at 3 for fork/ipc) and none of ours."""
    fds = Inheritables(tmp_path)
    try:
        with start_path(path) as ids:
            seen = _child_fds(api, ids, tmp_path)
    finally:
        ours = fds.idents()
        fds.close()
    expected = {"0", "1", "2", "3"} if api in ("fork", "spawn-detached-ipc") else {"0", "1", "2"}
    assert set(seen) == expected, seen
    assert not {tuple(v) for v in seen.values()} & ours


# =================================================================================================
# received descriptors are close-on-exec
# =================================================================================================

RECEIVER = PRELUDE + r"""
import fcntl, subprocess
def on_message(m, handle):
    fd = handle.fileno()
    st = os.fstat(fd)
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    # a plain exec that keeps every inheritable descriptor (close_fds=False)
    listing = subprocess.run([sys.executable, "-I", "-S", "-c", FDLIST], close_fds=False,
                             capture_output=True).stdout
    seen = [tuple(v) for v in json.loads(listing).values()]
    handle.close()
    p.send({"cloexec": bool(flags & fcntl.FD_CLOEXEC),
            "in_grandchild": (st.st_dev, st.st_ino) in seen})
    p.disconnect()
p.on("message", on_message)
"""


@pytest.mark.parametrize("mode", ["json", "advanced", "pickle"])
def test_descriptors_received_by_a_child_are_close_on_exec(tmp_path, mode):
    a, b = socket.socketpair()
    try:
        child = fork(script(tmp_path, RECEIVER.replace("FDLIST", repr(FDLIST))),
                     serialization=mode)
        got = []
        child.on("message", got.append)
        child.send("sock", a)
        assert run_until(lambda: got)
        assert got == [{"cloexec": True, "in_grandchild": False}]
        assert child.wait(WAIT) == (0, None)
    finally:
        a.close()
        b.close()


SENDER = PRELUDE + """
import socket
a, b = socket.socketpair()
p.send("sock", a)
p.on("message", lambda m: p.disconnect())
"""


@pytest.mark.parametrize("mode", ["json", "advanced"])
def test_descriptors_received_by_the_parent_are_close_on_exec(tmp_path, mode):
    child = fork(script(tmp_path, SENDER), serialization=mode)
    got = []
    child.on("message", lambda m, h: got.append((m, h)))
    assert run_until(lambda: got)
    (message, handle), = got
    try:
        assert message == "sock" and isinstance(handle, socket.socket)
        assert fcntl.fcntl(handle.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.get_inheritable(handle.fileno()) is False
    finally:
        handle.close()
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# 'pickle' only when asked for
# =================================================================================================

class _Evil:
    """Unpickling this runs ``touch <path>``: it must never be unpickled by a json channel."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _evil_frame(path) -> bytes:
    from child_process._serialization import pickle_encode
    return pickle_encode(_Evil(path))


RECORDER = PRELUDE + """\
out("mode", p.channel.serialization)
p.on("message", lambda m: out("message", m))
p.on("error", lambda e: out("error", getattr(e, "code", None)))
p.on("disconnect", lambda: out("disconnect"))
"""


@pytest.mark.parametrize("mode_env", [None, "", "PICKLE", "pickle ", "yaml", "json"])
def test_a_child_speaks_json_unless_pickle_is_named_exactly(tmp_path, mode_env):
    """NODE_CHANNEL_SERIALIZATION_MODE absent (or anything but 'pickle'/'advanced'): the child
    speaks json, so a pickle frame from the peer is a bad message -- never unpickled (it would
    create a file)."""
    marker = tmp_path / "unpickled"
    import socket as _s
    ours, theirs = _s.socketpair()
    env = child_env(NODE_CHANNEL_FD=str(theirs.fileno()))
    env.pop("NODE_CHANNEL_SERIALIZATION_MODE", None)
    if mode_env is not None:
        env["NODE_CHANNEL_SERIALIZATION_MODE"] = mode_env
    proc = subprocess.Popen([PY, script(tmp_path, RECORDER)], pass_fds=(theirs.fileno(),),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    theirs.close()
    try:
        ours.settimeout(WAIT)
        ours.sendall(b'{"a":1}\n' + _evil_frame(marker) + b"\n")
        while ours.recv(65536):
            pass
        ours.close()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events[0] == ["mode", "json"]
    assert events[1] == ["message", {"a": 1}]
    assert ["error", "ERR_IPC_BAD_MESSAGE"] in events
    assert not marker.exists()


@pytest.mark.parametrize("how", ["fork", "spawn-ipc"])
def test_default_serialization_is_json(tmp_path, how):
    """fork()/spawn(stdio=[..., 'ipc']) without serialization: the child is told 'json', and the
    parent treats a pickle frame from the child as a bad message, never unpickling it."""
    marker = tmp_path / "unpickled"
    code = ("import os, sys\nfd = int(os.environ['NODE_CHANNEL_FD'])\n"
            "print(os.environ.get('NODE_CHANNEL_SERIALIZATION_MODE'), flush=True)\n"
            f"os.write(fd, {_evil_frame(marker)!r} + b'\\n')\nos.read(fd, 1)\n")
    path = script(tmp_path, code)
    if how == "fork":
        child = fork(path, silent=True)
    else:
        child = spawn(PY, [path], stdio=["ignore", "pipe", "inherit", "ipc"])
    assert child.channel.serialization == "json"
    out = []
    child.stdout.on("data", out.append)
    errors = []
    child.on("error", lambda e: errors.append(e.code))
    messages = []
    child.on("message", messages.append)
    assert child.wait(WAIT) == (0, None)
    assert b"".join(out) == b"json\n"
    assert errors == ["ERR_IPC_BAD_MESSAGE"] and messages == []
    assert not marker.exists()


# =================================================================================================
# NODE_CHANNEL_* in the user's env
# =================================================================================================

def _channel_entries(entries: list) -> list:
    return sorted(e for e in entries if e.startswith("NODE_CHANNEL"))


HOSTILE_ENV = {"NODE_CHANNEL_FD": "0", "NODE_CHANNEL_SERIALIZATION_MODE": "pickle"}


#: A Python child without a channel: prints its initial NODE_CHANNEL_* entries and whether the
#: library adopted a channel (it must not).
ADOPTS = ("import json, child_process\n"
          "entries = open('/proc/self/environ','rb').read().decode().split('\\0')\n"
          "print(json.dumps([sorted(e for e in entries if e.startswith('NODE_CHANNEL')),"
          " child_process.parent is not None, 'PATH=' + __import__('os').environ['PATH'] in entries]))\n")


@pytest.mark.parametrize("api", ["spawn", "spawn_sync", "exec_file_sync"])
def test_channel_variables_are_removed_for_children_without_ipc(tmp_path, api):
    """A child without an IPC channel never sees NODE_CHANNEL_* from the user's env (a Python
    child would otherwise adopt fd 0 as a channel speaking pickle)."""
    env = child_env(**HOSTILE_ENV)
    args = [script(tmp_path, ADOPTS)]
    if api == "spawn":
        child = spawn(PY, args, env=env)
        out = []
        child.stdout.on("data", out.append)
        assert child.wait(WAIT) == (0, None)
        result = json.loads(b"".join(out))
    elif api == "spawn_sync":
        result = json.loads(spawn_sync(PY, args, env=env).stdout)
    else:
        result = json.loads(exec_file_sync(PY, args, env=env))
    assert result == [[], False, True]          # no variables, no channel, the rest of env came


def test_channel_variables_are_removed_from_an_inherited_environment(tmp_path, monkeypatch):
    """The same when env=None and the variables are in os.environ."""
    for k, v in child_env(**HOSTILE_ENV).items():
        monkeypatch.setenv(k, v)
    r = spawn_sync(PY, [script(tmp_path, ADOPTS)])
    assert json.loads(r.stdout) == [[], False, True]


@pytest.mark.parametrize("serialization", ["json", "advanced", "pickle"])
@pytest.mark.parametrize("how", ["fork", "spawn-ipc-at-5"])
def test_channel_variables_are_replaced_exactly_once_for_ipc_children(tmp_path, serialization,
                                                                      how):
    """fork()/spawn with 'ipc' and a user env holding NODE_CHANNEL_FD=0 and
    NODE_CHANNEL_SERIALIZATION_MODE=pickle: the child's initial environment (as the kernel gave
    it, /proc/self/environ) has exactly one of each, naming the real channel and mode."""
    env = child_env(**HOSTILE_ENV)
    path = script(tmp_path, "import os, json, child_process\n"
                  "p = child_process.parent\n"
                  "entries = open('/proc/self/environ','rb').read().decode().split('\\0')\n"
                  "p.send({'entries': [e for e in entries if e.startswith('NODE_CHANNEL')],"
                  " 'mode': p.channel.serialization})\n")
    if how == "fork":
        child = fork(path, env=env, serialization=serialization)
        fd = 3
    else:
        child = spawn(PY, [path], env=env, serialization=serialization,
                      stdio=["ignore", "inherit", "inherit", "ignore", "ignore", "ipc"])
        fd = 5
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert child.wait(WAIT) == (0, None)
    assert got[0]["mode"] == serialization
    assert sorted(got[0]["entries"]) == [f"NODE_CHANNEL_FD={fd}",
                                         f"NODE_CHANNEL_SERIALIZATION_MODE={serialization}"]
