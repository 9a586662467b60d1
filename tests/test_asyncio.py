"""asyncio integration: SPEC §3 (asyncio bullet) and the issue "a running asyncio loop drives the
child".

When ``spawn``/``fork``/``exec``/``exec_file`` is called on a thread whose asyncio loop is running,
that asyncio loop drives every watcher of the child (pipes, pidfd, timers, IPC channel): no thread
per child, no polling, no ``run()``; callbacks run on the asyncio thread. ``await child``,
``async for`` over a Readable, ``await stdin.drain()``, ``exec_async``/``exec_file_async``, and
cancellation that kills and reaps.

pytest-asyncio is not used: every test calls ``asyncio.run`` itself. Every wait is bounded (``WAIT``)
so that a broken library fails a test instead of hanging the run. conftest's autouse fixture fails
a test that leaves a descriptor, a child process or a referenced loop handle behind.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` document library bugs; they must start
passing -- and lose the marker -- when the bug is fixed. Those that would hang on the bug time-box
themselves and clean up what the bug leaves behind.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import os
import signal as _signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import child_process
from child_process import (AbortController, AbortError, ExecError, SpawnError, exec_async,
                           exec_file_async, spawn)
from child_process._loop import get_loop

PY = sys.executable
WAIT = 15.0          # the longest any single await here may take before its test fails
SH = "/bin/sh"


def py(code: str) -> list:
    """Arguments that make ``PY`` run ``code`` quickly (no site, no PYTHON* variables)."""
    return ["-I", "-S", "-c", code]


def arun(coro, timeout: float = WAIT):
    """asyncio.run with an upper bound, so that a lost event fails the test instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def reaped(pid: int) -> bool:
    """True when ``pid`` is no longer a child of ours (neither running nor a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)     # still running, or a zombie (which this reaps)
    except ChildProcessError:
        return True
    return False


def child_state(pid: int):
    """The /proc state letter of ``pid`` ('S', 'Z', ...) or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def children_of(pid: int) -> list:
    """Pids whose parent is ``pid`` (to find a shell's grandchild)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid:
            found.append(int(name))
    return found


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)
    except OSError:
        pass


def eventpoll_fds() -> set:
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventpoll]":
                out.add(int(name))
        except OSError:
            pass
    return out


async def collect(readable) -> list:
    """Every chunk ``async for`` yields."""
    chunks = []
    async for chunk in readable:
        chunks.append(chunk)
    return chunks


def counter_output(count: int) -> bytes:
    """``count`` numbered 8-byte lines: any loss, duplication or reordering shows."""
    return b"".join(b"%07d\n" % i for i in range(count))


# -------------------------------------------------------------------------------------------
# The asyncio loop drives the child: events with no run(), on the asyncio thread, no threads
# -------------------------------------------------------------------------------------------

def test_events_fire_without_run_while_awaiting_only_asyncio_sleep():
    async def main():
        me = threading.get_ident()
        aloop = asyncio.get_running_loop()
        threads_before = threading.active_count()
        events = []

        def record(name):
            def listener(*args):
                events.append((name, args, threading.get_ident(), asyncio.get_running_loop()))
            return listener

        child = spawn(SH, ["-c", "printf hello; exit 6"])
        for name in ("spawn", "exit", "close"):
            child.on(name, record(name))
        child.stdout.on("data", record("data"))
        assert events == []          # nothing synchronous
        deadline = time.monotonic() + WAIT
        while not any(e[0] == "close" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)        # unrelated to the child: only asyncio runs
        assert threading.active_count() == threads_before     # no helper thread was started
        return me, aloop, events

    me, aloop, events = arun(main())
    names = [e[0] for e in events]
    # 'data' and 'exit' may come in either order (the pipe and the pidfd are separate sources)
    assert names[0] == "spawn" and names[-1] == "close"
    assert sorted(names[1:-1]) == ["data", "exit"]
    by_name = {e[0]: e[1] for e in events}
    assert by_name["data"] == (b"hello",)
    assert by_name["exit"] == (6, None)
    assert by_name["close"] == (6, None)
    assert {e[2] for e in events} == {me}          # all on the asyncio thread
    assert all(e[3] is aloop for e in events)      # from inside that asyncio loop


def test_events_fire_while_awaiting_an_unrelated_future():
    async def main():
        me = threading.get_ident()
        fut = asyncio.get_running_loop().create_future()
        seen = []
        child = spawn(PY, py("import sys; sys.stdout.write('x' * 5000); sys.exit(2)"))
        child.stdout.on("data", lambda chunk: seen.append(("data", len(chunk), threading.get_ident())))
        child.on("exit", lambda code, sig: seen.append(("exit", (code, sig), threading.get_ident())))
        child.on("close", lambda code, sig: fut.set_result((code, sig, threading.get_ident())))
        code, sig, tid = await asyncio.wait_for(fut, WAIT)
        return me, code, sig, tid, seen

    me, code, sig, tid, seen = arun(main())
    assert (code, sig, tid) == (2, None, me)
    assert sum(n for kind, n, _ in seen if kind == "data") == 5000
    assert ("exit", (2, None), me) in seen
    assert {t for _, _, t in seen} == {me}


def test_exec_and_exec_file_callbacks_run_on_the_asyncio_thread():
    async def main():
        me = threading.get_ident()
        aloop = asyncio.get_running_loop()
        f1, f2 = aloop.create_future(), aloop.create_future()
        child_process.exec("printf 'a b'; printf E >&2",
                           callback=lambda err, out, errout: f1.set_result(
                               (err, out, errout, threading.get_ident())))
        child_process.exec_file(PY, py("import sys; print(sys.argv[1:])") + ["x", "y z"],
                                callback=lambda err, out, errout: f2.set_result(
                                    (err, out, errout, threading.get_ident())))
        return me, await asyncio.wait_for(asyncio.gather(f1, f2), WAIT)

    me, (r1, r2) = arun(main())
    assert r1 == (None, "a b", "E", me)
    assert r2 == (None, "['x', 'y z']\n", "", me)


def test_no_busy_polling_while_a_child_runs():
    # a far-off timeout keeps a timer armed the whole time: it must not make anything spin
    async def main():
        child = spawn("sleep", ["0.6"], timeout=30)
        cpu0, wall0 = time.process_time(), time.monotonic()
        result = await asyncio.wait_for(child, WAIT)
        return result, time.process_time() - cpu0, time.monotonic() - wall0

    result, cpu, wall = arun(main())
    assert result == (0, None)
    assert wall >= 0.5
    assert cpu < 0.15, f"{cpu:.3f} s of CPU while waiting {wall:.3f} s: the loop is polling"


@pytest.mark.parametrize("event", ["exit", "close"])
def test_listener_exception_goes_to_the_asyncio_exception_handler(event):
    # and ``await child`` still ends: after a failing 'exit' listener 'close' still comes, and
    # a failing 'close' listener does not keep the awaiting future from being resolved
    async def main():
        reported = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        child = spawn(SH, ["-c", "exit 3"])

        def boom(*_):
            raise ValueError(f"boom in {event} listener")

        child.on(event, boom)
        result = await asyncio.wait_for(child, WAIT)
        return result, reported

    result, reported = arun(main())
    assert result == (3, None)
    excs = [ctx.get("exception") for ctx in reported]
    assert any(isinstance(e, ValueError) and str(e) == f"boom in {event} listener" for e in excs)


def test_several_awaits_of_one_child_all_end_after_its_close_listeners():
    async def main():
        order = []
        child = spawn(SH, ["-c", "exit 5"])
        child.on("close", lambda *_: order.append("listener"))

        async def waiter(name):
            result = await child
            order.append(name)
            return result

        results = await asyncio.wait_for(asyncio.gather(waiter("a"), waiter("b"), child), WAIT)
        child.on("close", lambda *_: order.append("late"))     # never called again
        return results, order, await child

    results, order, again = arun(main())
    assert results == [(5, None)] * 3
    assert order[0] == "listener" and sorted(order[1:]) == ["a", "b"]
    assert again == (5, None)


def test_spawn_failure_under_asyncio_emits_error_then_close():
    async def main():
        me = threading.get_ident()
        errors = []
        child = spawn("/nonexistent/definitely/missing", ["a"])
        child.on("error", lambda err: errors.append((err, threading.get_ident())))
        result = await asyncio.wait_for(child, WAIT)
        return me, child, result, errors

    me, child, result, errors = arun(main())
    assert child.pid is None
    assert result == (-errno.ENOENT, None)
    assert len(errors) == 1
    err, tid = errors[0]
    assert tid == me
    assert isinstance(err, SpawnError) and err.code == "ENOENT"
    assert err.syscall == "spawn /nonexistent/definitely/missing"


def test_abort_signal_under_asyncio():
    async def main():
        ac = AbortController()
        errors = []
        child = spawn("sleep", ["30"], signal=ac.signal)
        child.on("error", errors.append)
        asyncio.get_running_loop().call_later(0.1, ac.abort)
        t0 = time.monotonic()
        result = await asyncio.wait_for(child, WAIT)
        return child, result, errors, time.monotonic() - t0

    child, result, errors, elapsed = arun(main())
    assert result == (None, "SIGTERM")
    assert elapsed < 5
    assert len(errors) == 1 and isinstance(errors[0], AbortError) and errors[0].code == "ABORT_ERR"
    assert reaped(child.pid)


# -------------------------------------------------------------------------------------------
# Timers (timeout=) are driven through the waker
# -------------------------------------------------------------------------------------------

def test_spawn_timeout_fires_under_asyncio_while_only_sleeping():
    async def main():
        aloop = asyncio.get_running_loop()
        closes = {}
        t0 = time.monotonic()
        term = spawn("sleep", ["30"], timeout=0.3)
        kill = spawn("sleep", ["30"], timeout=0.2, kill_signal="SIGKILL")
        quick = spawn(SH, ["-c", "exit 2"], timeout=5)      # ends long before its timeout
        for name, child in (("term", term), ("kill", kill), ("quick", quick)):
            child.on("close", lambda code, sig, name=name:
                     closes.__setitem__(name, (code, sig, time.monotonic() - t0)))
        deadline = aloop.time() + WAIT
        while len(closes) < 3 and aloop.time() < deadline:
            await asyncio.sleep(0.02)        # nobody awaits the children: the timers still fire
        return term, kill, quick, closes, time.monotonic() - t0

    term, kill, quick, closes, elapsed = arun(main())
    assert closes["term"][:2] == (None, "SIGTERM")
    assert closes["kill"][:2] == (None, "SIGKILL")
    assert closes["quick"][:2] == (2, None)
    assert 0.25 <= closes["term"][2] < 5
    assert 0.15 <= closes["kill"][2] < 5
    assert closes["quick"][2] < 2
    assert term.killed and kill.killed and not quick.killed
    assert elapsed < 5


def test_exec_file_async_timeout_kills_under_asyncio():
    async def main():
        t0 = time.monotonic()
        aw = exec_file_async("sleep", ["30"], timeout=0.3)
        with pytest.raises(ExecError) as info:
            await asyncio.wait_for(aw, WAIT)
        return aw, info.value, time.monotonic() - t0

    aw, err, elapsed = arun(main())
    assert 0.25 <= elapsed < 5
    assert err.killed is True
    assert err.signal == "SIGTERM"
    assert err.code is None
    assert aw.child.signal_code == "SIGTERM"
    assert reaped(aw.child.pid)


# -------------------------------------------------------------------------------------------
# async for over a Readable; await stdin.drain()
# -------------------------------------------------------------------------------------------

def test_async_for_yields_all_of_1mib_in_order():
    expected = counter_output(131072)
    assert len(expected) == 1 << 20
    code = ("import sys\n"
            "data = b''.join(b'%07d\\n' % i for i in range(131072))\n"
            "out = sys.stdout.buffer\n"
            "i = 0\n"
            "for size in [1, 7, 4096, 65536, 100003, 12345] * 40:\n"
            "    out.write(data[i:i + size]); out.flush(); i += size\n"
            "    if i >= len(data): break\n"
            "out.write(data[i:]); out.flush()\n")

    async def main():
        child = spawn(PY, py(code))
        chunks, result = await asyncio.gather(collect(child.stdout), child)
        return chunks, result

    chunks, result = arun(main())
    assert result == (0, None)
    assert all(isinstance(c, bytes) for c in chunks)
    assert len(chunks) > 1
    data = b"".join(chunks)
    assert len(data) == len(expected)
    assert data == expected


def test_async_for_over_stdout_and_stderr_at_once():
    code = ("import sys, os\n"
            "for i in range(64):\n"
            "    os.write(1, b'%07d\\n' % i * 512)\n"
            "    os.write(2, b'E%06d\\n' % i * 512)\n")

    async def main():
        child = spawn(PY, py(code))
        return await asyncio.gather(collect(child.stdout), collect(child.stderr), child)

    out, err, result = arun(main())
    assert result == (0, None)
    assert b"".join(out) == b"".join(b"%07d\n" % i * 512 for i in range(64))
    assert b"".join(err) == b"".join(b"E%06d\n" % i * 512 for i in range(64))


def test_async_for_over_a_child_with_no_output_ends():
    async def main():
        child = spawn("/bin/true")
        chunks = await asyncio.wait_for(collect(child.stdout), WAIT)
        errs = await asyncio.wait_for(collect(child.stderr), WAIT)
        return chunks, errs, await asyncio.wait_for(child, WAIT)

    assert arun(main()) == ([], [], (0, None))


def test_async_for_ends_at_eof_while_the_child_still_runs():
    async def main():
        child = spawn(SH, ["-c", "printf x; exec >&-; sleep 0.8"])
        t0 = time.monotonic()
        chunks = await asyncio.wait_for(collect(child.stdout), WAIT)
        ended_after = time.monotonic() - t0
        still_running = child.exit_code is None and child.signal_code is None
        return chunks, ended_after, still_running, await asyncio.wait_for(child, WAIT)

    chunks, ended_after, still_running, result = arun(main())
    assert chunks == [b"x"]
    assert still_running and ended_after < 0.6
    assert result == (0, None)


def test_async_for_gets_what_was_read_ahead_before_it_started():
    code = ("import sys, time\n"
            "sys.stdout.buffer.write(b'a' * 600000); sys.stdout.flush()\n"
            "time.sleep(0.5)\n"
            "sys.stdout.buffer.write(b'b' * 1000)\n")

    async def main():
        child = spawn(PY, py(code))
        await asyncio.sleep(0.3)           # output arrives (and is read ahead) before anyone iterates
        return await asyncio.gather(collect(child.stdout), child)

    chunks, result = arun(main())
    assert result == (0, None)
    assert b"".join(chunks) == b"a" * 600000 + b"b" * 1000


def test_async_for_with_an_encoding_decodes_split_characters():
    # 3-byte characters written in 1000-byte pieces: every write splits a character
    code = ("import os, time\n"
            "data = ('\u20ac' * 30000).encode()\n"
            "for i in range(0, len(data), 1000):\n"
            "    os.write(1, data[i:i + 1000])\n"
            "    if i % 20000 == 0: time.sleep(0.001)\n")

    async def main():
        child = spawn(PY, py(code))
        child.stdout.set_encoding("utf-8")
        return await asyncio.gather(collect(child.stdout), child)

    chunks, result = arun(main())
    assert result == (0, None)
    assert all(isinstance(c, str) for c in chunks)
    assert "".join(chunks) == "\u20ac" * 30000


def test_stdin_drain_with_large_writes_to_cat_read_concurrently():
    payload = (bytes(range(251)) * (6 * 4200))[:6 << 20]     # 6 MiB, not periodic in 64 KiB

    async def main():
        child = spawn("cat")
        stdin = child.stdin
        stats = {"false": 0, "drains": 0, "after_drain": []}

        async def writer():
            # one huge write (far above the high-water mark), then many smaller ones
            first = 2 << 20
            if not stdin.write(payload[:first]):
                stats["false"] += 1
            await stdin.drain()
            stats["drains"] += 1
            stats["after_drain"].append(stdin.writable_length)
            for off in range(first, len(payload), 256 * 1024):
                if not stdin.write(payload[off:off + 256 * 1024]):
                    stats["false"] += 1
                    await stdin.drain()
                    stats["drains"] += 1
                    stats["after_drain"].append(stdin.writable_length)
            stdin.end()

        out, _, result = await asyncio.gather(collect(child.stdout), writer(), child)
        return b"".join(out), result, stats, stdin.writable_high_water_mark

    out, result, stats, hwm = arun(main())
    assert result == (0, None)
    assert len(out) == len(payload)
    assert out == payload
    assert stats["false"] >= 2          # writes really went above the high-water mark
    assert stats["drains"] == stats["false"]     # the first (2 MiB) write said False too
    assert all(n < hwm for n in stats["after_drain"]), stats["after_drain"]


def test_drain_returns_at_once_below_the_high_water_mark():
    async def main():
        child = spawn("cat")
        assert child.stdin.write(b"small\n") is True
        await asyncio.wait_for(child.stdin.drain(), 1)
        child.stdin.end()
        return await asyncio.gather(collect(child.stdout), child)

    chunks, result = arun(main())
    assert b"".join(chunks) == b"small\n"
    assert result == (0, None)


def test_drain_returns_when_the_child_exits_without_reading():
    async def main():
        child = spawn(SH, ["-c", "sleep 0.2; exit 4"])
        assert child.stdin.write(b"z" * (4 << 20)) is False      # more than any pipe buffer
        await asyncio.wait_for(child.stdin.drain(), WAIT)         # 'close' (EPIPE) ends it
        return child, await asyncio.wait_for(child, WAIT)

    child, result = arun(main())
    assert result == (4, None)
    assert child.stdin.destroyed


# -------------------------------------------------------------------------------------------
# exec_async / exec_file_async
# -------------------------------------------------------------------------------------------

def test_exec_async_result_and_child():
    async def main():
        aw = exec_async("printf out; printf err >&2")
        pid_before = aw.child.pid
        running_before = aw.child.exit_code
        result = await asyncio.wait_for(aw, WAIT)
        return aw, pid_before, running_before, result

    aw, pid_before, running_before, result = arun(main())
    assert isinstance(pid_before, int) and pid_before > 0
    assert running_before is None
    assert result.stdout == "out"
    assert result.stderr == "err"
    assert result.child is aw.child
    assert aw.child.pid == pid_before
    assert (aw.child.exit_code, aw.child.signal_code) == (0, None)
    out, err = result
    assert (out, err) == ("out", "err")
    assert reaped(pid_before)


def test_exec_async_encoding_none_gives_bytes():
    async def main():
        return await asyncio.wait_for(exec_async("printf '\\377\\000x'", encoding=None), WAIT)

    result = arun(main())
    assert result.stdout == b"\xff\x00x"
    assert result.stderr == b""


def test_exec_file_async_result():
    async def main():
        aw = exec_file_async(PY, py("import sys; sys.stdout.write(repr(sys.argv[1:])); "
                                    "sys.stderr.write('E')") + ["a b", "c"])
        assert aw.child.pid > 0
        return aw, await asyncio.wait_for(aw, WAIT)

    aw, result = arun(main())
    assert result.stdout == "['a b', 'c']"
    assert result.stderr == "E"
    assert aw.child.spawnargs[-2:] == ["a b", "c"]
    assert aw.child.exit_code == 0


def test_exec_async_exit_3_raises_exec_error():
    cmd = "echo to-out; echo to-err >&2; exit 3"

    async def main():
        aw = exec_async(cmd)
        with pytest.raises(ExecError) as info:
            await asyncio.wait_for(aw, WAIT)
        return aw, info.value

    aw, err = arun(main())
    assert err.code == 3
    assert err.killed is False
    assert err.signal is None
    assert err.cmd == cmd
    assert err.stdout == "to-out\n"
    assert err.stderr == "to-err\n"
    assert str(err).startswith(f"Command failed: {cmd}\nto-err")
    assert (aw.child.exit_code, aw.child.signal_code) == (3, None)
    assert err.pid == aw.child.pid and aw.child.pid > 0


def test_exec_file_async_enoent_raises_exec_error():
    async def main():
        aw = exec_file_async("/nonexistent/definitely/missing", ["x"])
        with pytest.raises(ExecError) as info:
            await asyncio.wait_for(aw, WAIT)
        return aw, info.value

    aw, err = arun(main())
    assert err.code == "ENOENT"
    assert aw.child.pid is None
    assert err.cmd == "/nonexistent/definitely/missing x"
    assert err.stdout == "" and err.stderr == ""


def test_exec_async_max_buffer_exceeded():
    async def main():
        with pytest.raises(ExecError) as info:
            await asyncio.wait_for(exec_async("yes", max_buffer=10000), WAIT)
        return info.value

    err = arun(main())
    assert err.code == "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"
    assert err.stdout == "y\n" * 5000
    assert err.killed is True


def test_exec_async_many_at_once():
    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(exec_async(f"echo {i}") for i in range(60))), WAIT)

    results = arun(main())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(60)]
    assert all(r.stderr == "" for r in results)


def test_exec_async_without_a_running_loop_starts_nothing():
    with pytest.raises(RuntimeError):
        exec_async("exit 0")
    with pytest.raises(RuntimeError):
        exec_file_async("true")
    # the leak check verifies that no child was started


# -------------------------------------------------------------------------------------------
# Cancellation: kill_signal, reap, re-raise CancelledError
# -------------------------------------------------------------------------------------------

async def _await_child(child):
    return await child


@pytest.mark.parametrize("kill_signal", [None, "SIGINT", "SIGKILL"])
def test_cancel_await_child_kills_and_reaps(kill_signal):
    async def main():
        kwargs = {} if kill_signal is None else {"kill_signal": kill_signal}
        child = spawn("sleep", ["30"], **kwargs)
        closes = []
        child.on("close", lambda *a: closes.append(a))
        task = asyncio.create_task(_await_child(child))
        await asyncio.sleep(0.1)
        assert child.exit_code is None and not task.done()
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        # by the time CancelledError comes out, the child has been killed and reaped
        state = (child.exit_code, child.signal_code, list(closes), reaped(child.pid))
        return child, task, state, time.monotonic() - t0

    child, task, state, elapsed = arun(main())
    expected = kill_signal or "SIGTERM"
    assert task.cancelled()
    assert state == (None, expected, [(None, expected)], True)
    assert child.killed is True
    assert elapsed < 5


def test_wait_for_timeout_on_a_child_kills_and_reaps():
    async def main():
        child = spawn("sleep", ["30"])
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(child, 0.2)
        return child, (child.exit_code, child.signal_code), time.monotonic() - t0

    child, status, elapsed = arun(main())
    assert status == (None, "SIGTERM")
    assert 0.15 <= elapsed < 5
    assert reaped(child.pid)


def test_cancel_child_ignoring_sigterm_with_kill_signal_sigkill():
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "sys.stdout.write('ready'); sys.stdout.flush()\n"
            "time.sleep(30)\n")

    async def main():
        child = spawn(PY, py(code), kill_signal="SIGKILL")
        ready = asyncio.get_running_loop().create_future()
        child.stdout.on("data", lambda chunk: ready.done() or ready.set_result(chunk))
        assert await asyncio.wait_for(ready, WAIT) == b"ready"
        # it really ignores SIGTERM
        assert child.kill("SIGTERM") is True
        await asyncio.sleep(0.3)
        survived = child.exit_code is None and child.signal_code is None
        task = asyncio.create_task(_await_child(child))
        await asyncio.sleep(0.05)
        task.cancel()
        t0 = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        return child, survived, (child.exit_code, child.signal_code), time.monotonic() - t0

    child, survived, status, elapsed = arun(main())
    assert survived
    assert status == (None, "SIGKILL")
    assert elapsed < 5
    assert reaped(child.pid)


def test_cancel_twice_still_kills_reaps_and_raises():
    async def main():
        child = spawn("sleep", ["30"])
        task = asyncio.create_task(_await_child(child))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0)           # now inside the cleanup
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        return child, (child.exit_code, child.signal_code)

    child, status = arun(main())
    assert status == (None, "SIGTERM")
    assert reaped(child.pid)


def test_cancel_exec_file_async_kills_and_reaps():
    async def main():
        aw = exec_file_async("sleep", ["30"])
        task = asyncio.ensure_future(aw)
        await asyncio.sleep(0.1)
        pid = aw.child.pid
        assert child_state(pid) in ("S", "R")
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        return aw, pid, task, time.monotonic() - t0

    aw, pid, task, elapsed = arun(main())
    assert task.cancelled()
    assert (aw.child.exit_code, aw.child.signal_code) == (None, "SIGTERM")
    assert elapsed < 5
    assert reaped(pid)


def test_cancel_exec_async_with_kill_signal():
    async def main():
        aw = exec_async("exec sleep 30", kill_signal="SIGKILL")
        task = asyncio.ensure_future(aw)
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        return aw, time.monotonic() - t0

    aw, elapsed = arun(main())
    assert (aw.child.exit_code, aw.child.signal_code) == (None, "SIGKILL")
    assert elapsed < 5
    assert reaped(aw.child.pid)


def test_cancel_exec_async_shell_command_is_prompt():
    async def main():
        # the shell cannot exec the last command here, so sleep is its child holding the
        # pipes (with dash, a plain "sleep 30" is the same)
        aw = exec_async("sleep 30; exit 0")
        task = asyncio.ensure_future(aw)
        await asyncio.sleep(0.2)
        grandchildren = children_of(aw.child.pid)
        t0 = time.monotonic()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        elapsed = time.monotonic() - t0
        if not done:                       # the bug: clean up what it leaves waiting
            for pid in grandchildren:
                kill_quietly(pid)
            await asyncio.wait({task}, timeout=WAIT)
        return aw, task, elapsed

    aw, task, elapsed = arun(main(), timeout=WAIT + 10)
    assert task.cancelled()
    assert aw.child.signal_code == "SIGTERM"
    assert reaped(aw.child.pid)
    assert elapsed < 3, f"cancellation took {elapsed:.1f} s"


def test_cancel_gather_of_stdout_reader_and_child():
    code = "import sys, time; print('hi', flush=True); time.sleep(30)"

    async def main():
        child = spawn(PY, py(code))
        reader = asyncio.create_task(collect(child.stdout))
        waiter = asyncio.create_task(_await_child(child))
        await asyncio.sleep(0.3)
        reader.cancel()
        waiter.cancel()
        t0 = time.monotonic()
        done, _ = await asyncio.wait({waiter}, timeout=3)
        elapsed = time.monotonic() - t0
        if not done:                       # the bug: unblock the stuck cleanup
            child.stdout.destroy()
            await asyncio.wait({waiter}, timeout=WAIT)
        return child, waiter, elapsed

    child, waiter, elapsed = arun(main())
    assert waiter.cancelled()
    assert (child.exit_code, child.signal_code) == (None, "SIGTERM")
    assert reaped(child.pid)
    assert elapsed < 3, f"cancellation did not finish within {elapsed:.1f} s"


def test_break_out_of_async_for_then_await_child():
    async def main():
        child = spawn(SH, ["-c", "echo first; sleep 0.2; echo second; exit 5"])
        first = None
        async for chunk in child.stdout:
            first = chunk
            break
        waiter = asyncio.ensure_future(_await_child(child))
        done, _ = await asyncio.wait({waiter}, timeout=3)
        if not done:                       # the bug: unblock it so nothing is left behind
            child.stdout.destroy()
            await asyncio.wait({waiter}, timeout=WAIT)
            return first, None
        return first, waiter.result()

    first, result = arun(main())
    assert first == b"first\n"
    # leaving the loop destroys the stream (Node does the same when a for-await is left), so
    # the shell's next echo meets a closed pipe: it dies of SIGPIPE instead of exiting 5
    assert result == (None, "SIGPIPE")


# -------------------------------------------------------------------------------------------
# Scale, several loops, several threads, asyncio's own subprocesses
# -------------------------------------------------------------------------------------------

def test_1000_concurrent_children_gathered():
    async def main():
        threads_before = threading.active_count()
        t0 = time.monotonic()
        children = [spawn("/bin/true") for _ in range(1000)]
        threads_during = threading.active_count()
        results = await asyncio.wait_for(asyncio.gather(*children), 30)
        return children, results, threads_before, threads_during, time.monotonic() - t0

    children, results, before, during, elapsed = arun(main(), timeout=40)
    assert results == [(0, None)] * 1000
    assert during == before                 # no thread per child
    assert len({c.pid for c in children}) == 1000
    assert all(c.pid > 0 for c in children)
    assert elapsed < 20
    assert get_loop().refs == 0


def test_asyncio_run_five_times_in_a_row():
    seen_loops = []
    for i in range(5):
        async def main(i=i):
            aloop = asyncio.get_running_loop()
            closes = []
            children = [spawn(SH, ["-c", f"exit {i * 10 + k}"]) for k in range(3)]
            for child in children:
                child.on("close", lambda *a: closes.append(asyncio.get_running_loop()))
            codes = await asyncio.gather(*children)
            streamed = spawn(SH, ["-c", f"printf run{i}"])
            out, _ = await asyncio.gather(collect(streamed.stdout), streamed)
            res = await exec_async(f"printf e{i}")
            timed = await spawn("sleep", ["30"], timeout=0.1)
            return aloop, closes, codes, b"".join(out), res.stdout, timed

        aloop, closes, codes, out, exec_out, timed = arun(main())
        assert codes == [(i * 10 + k, None) for k in range(3)]
        assert out == b"run%d" % i
        assert exec_out == f"e{i}"
        assert timed == (None, "SIGTERM")
        assert closes == [aloop] * 3            # the callbacks ran inside this run's loop
        seen_loops.append(aloop)
    assert len(set(map(id, seen_loops))) == 5


def _run_threads(count: int, per_thread: int):
    results, errors = {}, []

    def worker(index):
        try:
            async def main():
                me = threading.get_ident()
                close_threads = set()
                children = [spawn(SH, ["-c", f"exit {10 + index}"]) for _ in range(per_thread)]
                for child in children:
                    child.on("close", lambda *_: close_threads.add(threading.get_ident()))
                streamed = spawn(SH, ["-c", f"printf t{index}"])
                gathered = await asyncio.gather(collect(streamed.stdout), streamed, *children)
                res = await exec_async(f"printf x{index}")
                return me, close_threads, gathered, res.stdout
            results[index] = arun(main())
        except BaseException as exc:        # reported by the test
            errors.append((index, exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT + 5)
    assert not any(t.is_alive() for t in threads), "a thread's asyncio.run did not finish"
    return results, errors


def test_an_exit_learnt_in_asyncio_settles_after_what_asyncio_had_queued():
    # The turn asyncio gives our loop may reap a child and read its pipes at once. Draining
    # what nobody reads (Node's flush at the exit) must wait for the callbacks asyncio already
    # had, such as the first step of a reader task created beside the spawn: otherwise
    # ``gather(collect(child.stdout), child)`` could find the output drained before it starts.
    async def main():
        order = []
        child = spawn(SH, ["-c", "exit 0"], stdio="ignore")    # queues a turn of ours
        child.on("close", lambda *_: order.append("close"))
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)   # ended before that turn
        asyncio.get_running_loop().call_soon(order.append, "queued before")
        assert await child == (0, None)
        return order

    assert asyncio.run(main()) == ["queued before", "close"]


def test_a_reader_task_started_beside_the_spawn_gets_all_output_of_a_quick_child():
    async def main():
        results = []
        for _ in range(30):
            child = spawn(SH, ["-c", "printf quick"])
            out, status = await asyncio.gather(collect(child.stdout), child)
            results.append((b"".join(out), status))
        return results

    assert asyncio.run(main()) == [(b"quick", (0, None))] * 30


def test_four_threads_each_with_its_own_asyncio_run():
    t0 = time.monotonic()
    results, errors = _run_threads(4, 50)
    assert errors == []
    assert sorted(results) == [0, 1, 2, 3]
    idents = set()
    for index, (me, close_threads, gathered, exec_out) in results.items():
        out, streamed_status, *statuses = gathered
        assert b"".join(out) == b"t%d" % index
        assert streamed_status == (0, None)
        assert statuses == [(10 + index, None)] * 50
        assert close_threads == {me}          # every callback on that thread's asyncio loop
        assert exec_out == f"x{index}"
        idents.add(me)
    assert len(idents) == 4
    assert time.monotonic() - t0 < 15
    # each finished thread's loop must go; a leak is the subject of the next test, not this one
    gc.collect()


def test_thread_with_asyncio_leaves_no_descriptor_behind():
    before = eventpoll_fds()
    was_enabled = gc.isenabled()
    gc.disable()                  # deterministic: the loop must go by reference counting
    try:
        results, errors = _run_threads(1, 3)
        assert errors == [] and results[0][2][2:] == [(10, None)] * 3
        leaked = eventpoll_fds() - before
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()
    assert leaked == set()


def test_mixed_with_asyncio_create_subprocess_exec():
    async def main():
        ours = [spawn(SH, ["-c", f"exit {7 + k}"]) for k in range(15)]
        theirs = [await asyncio.create_subprocess_exec(SH, "-c", f"exit {40 + k}")
                  for k in range(15)]
        talker = await asyncio.create_subprocess_exec(
            SH, "-c", "printf theirs; exit 33", stdout=asyncio.subprocess.PIPE)
        streamed = spawn(SH, ["-c", "printf ours; exit 22"])
        results = await asyncio.wait_for(asyncio.gather(
            *ours, *(p.wait() for p in theirs), talker.communicate(),
            collect(streamed.stdout), streamed), WAIT)
        return results, talker.returncode, [p.returncode for p in theirs]

    results, talker_code, their_codes = arun(main())
    assert results[:15] == [(7 + k, None) for k in range(15)]
    assert results[15:30] == [40 + k for k in range(15)]
    assert their_codes == [40 + k for k in range(15)]
    assert results[30] == (b"theirs", None) and talker_code == 33
    assert b"".join(results[31]) == b"ours"
    assert results[32] == (22, None)


_MIX_SCRIPT = textwrap.dedent("""
    import asyncio, json, threading
    import child_process
    from child_process import spawn, exec_async
    from child_process import _loop

    async def collect(r):
        return b"".join([c async for c in r])

    async def main():
        ours = [spawn("/bin/sh", ["-c", "exit %d" % (7 + k)]) for k in range(10)]
        theirs = [await asyncio.create_subprocess_exec("/bin/sh", "-c", "exit %d" % (40 + k))
                  for k in range(10)]
        streamed = spawn("/bin/sh", ["-c", "printf ours"])
        timed = spawn("sleep", ["30"], timeout=0.2)
        res = await asyncio.gather(*ours, *(p.wait() for p in theirs),
                                   collect(streamed.stdout), streamed, timed,
                                   exec_async("printf e; exit 0"))
        return res

    def thread_main(out):
        async def m():
            return await asyncio.gather(*[spawn("/bin/sh", ["-c", "exit 3"]) for _ in range(5)])
        out.append(asyncio.run(m()))

    res = asyncio.run(asyncio.wait_for(main(), 15))
    out = []
    t = threading.Thread(target=thread_main, args=(out,)); t.start(); t.join(15)
    print(json.dumps({
        "watcher": _loop.EXIT_WATCHER,
        "ours": [list(r) for r in res[:10]],
        "theirs": res[10:20],
        "streamed": res[20].decode(), "streamed_status": list(res[21]),
        "timed": list(res[22]), "exec": res[23].stdout,
        "thread": [list(r) for r in out[0]] if out else None,
    }))
""")


def test_sigchld_fallback_mixed_with_asyncio_subprocesses():
    # the exit watcher used where pidfds are missing (macOS): SIGCHLD + waitpid(pid) per child
    env = dict(os.environ, CHILD_PROCESS_EXIT_WATCHER="sigchld")
    proc = subprocess.run([PY, "-c", _MIX_SCRIPT], env=env, capture_output=True, timeout=40)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    got = json.loads(proc.stdout)
    assert got == {
        "watcher": "sigchld",
        "ours": [[7 + k, None] for k in range(10)],
        "theirs": [40 + k for k in range(10)],
        "streamed": "ours", "streamed_status": [0, None],
        "timed": [None, "SIGTERM"], "exec": "e",
        "thread": [[3, None]] * 5,
    }


def test_fork_ipc_driven_by_asyncio(tmp_path):
    module = tmp_path / "echo_child.py"
    module.write_text(textwrap.dedent("""
        import child_process
        parent = child_process.parent
        def on_message(msg):
            parent.send({"echo": msg})
            parent.disconnect()
        parent.on("message", on_message)
        parent.send({"hello": "from child"})
    """))

    async def main():
        me = threading.get_ident()
        child = child_process.fork(str(module))
        messages = []

        def on_message(msg, *_):
            messages.append((msg, threading.get_ident()))
            if msg == {"hello": "from child"}:
                child.send({"n": 42})

        child.on("message", on_message)
        result = await asyncio.wait_for(child, WAIT)
        return me, messages, result, child.connected

    me, messages, result, connected = arun(main())
    assert result == (0, None)
    assert messages == [({"hello": "from child"}, me), ({"echo": {"n": 42}}, me)]
    assert connected is False


# -------------------------------------------------------------------------------------------
# Crossing the boundary: children from outside asyncio, and the blocking API afterwards
# -------------------------------------------------------------------------------------------

def test_child_spawned_outside_asyncio_awaited_inside():
    me = threading.get_ident()
    child = spawn(SH, ["-c", "printf early; sleep 0.2; exit 5"])
    streamed = spawn(SH, ["-c", "printf abc"])
    closes = []
    child.on("close", lambda *a: closes.append((a, threading.get_ident())))

    async def main():
        out, status = await asyncio.gather(collect(streamed.stdout), streamed)
        return await child, b"".join(out), status

    result, out, status = arun(main())
    assert result == (5, None)
    assert out == b"abc" and status == (0, None)
    assert closes == [((5, None), me)]


def test_child_spawned_in_one_asyncio_run_awaited_in_the_next():
    async def first():
        child = spawn(SH, ["-c", "read line; printf \"$line\"; exit 12"])
        return child

    async def second(child):
        me = threading.get_ident()
        aloop = asyncio.get_running_loop()
        closes = []
        child.on("close", lambda *a: closes.append((threading.get_ident(),
                                                     asyncio.get_running_loop())))
        child.stdin.end(b"echoed\n")
        out, status = await asyncio.gather(collect(child.stdout), child)
        return me, aloop, closes, b"".join(out), status

    child = arun(first())
    me, aloop, closes, out, status = arun(second(child))
    assert status == (12, None)
    assert out == b"echoed"
    assert closes == [(me, aloop)]


def test_await_a_child_that_already_closed_and_await_twice():
    async def main():
        child = spawn(SH, ["-c", "exit 9"])
        a, b = await asyncio.gather(_await_child(child), _await_child(child))
        again = await asyncio.wait_for(child, 1)
        return a, b, again

    assert arun(main()) == ((9, None), (9, None), (9, None))


def test_wait_still_works_after_asyncio_run_ended():
    async def main():
        finished = await spawn(SH, ["-c", "exit 1"])
        left_running = spawn(SH, ["-c", "sleep 0.3; printf late; exit 4"])
        chunks = []
        left_running.stdout.on("data", chunks.append)
        return finished, left_running, chunks

    finished, left_running, chunks = arun(main())
    assert finished == (1, None)
    assert left_running.exit_code is None         # asyncio.run ended before it did
    closes = []
    left_running.on("close", lambda *a: closes.append(threading.get_ident()))
    assert left_running.wait(WAIT) == (4, None)    # the blocking API drives our loop again
    assert chunks == [b"late"]
    assert closes == [threading.get_ident()]
    fresh = spawn(SH, ["-c", "exit 3"])
    assert fresh.wait(WAIT) == (3, None)
    slow = spawn("sleep", ["30"])
    with pytest.raises(TimeoutError):
        slow.wait(0.1)
    assert slow.exit_code is None
    assert slow.kill() is True
    assert slow.wait(WAIT) == (None, "SIGTERM")
    timed = spawn("sleep", ["30"], timeout=0.1)     # our timers run without asyncio again
    assert timed.wait(WAIT) == (None, "SIGTERM")
    child_process.exec("printf done", callback=lambda *a: closes.append(a))
    child_process.run()
    assert closes[-1] == (None, "done", "")


def test_wait_after_run_until_complete_on_a_loop_left_open():
    aloop = asyncio.new_event_loop()
    try:
        async def main():
            return spawn(SH, ["-c", "sleep 0.2; exit 6"])

        child = aloop.run_until_complete(main())
        assert child.wait(WAIT) == (6, None)
        # and the same asyncio loop drives a new child when it runs again
        again = aloop.run_until_complete(asyncio.wait_for(
            _await_child(spawn(SH, ["-c", "exit 8"])), WAIT))
        assert again == (8, None)
    finally:
        aloop.close()
    assert spawn(SH, ["-c", "exit 2"]).wait(WAIT) == (2, None)


POLL_BACKEND_PROGRAM = textwrap.dedent("""
    import asyncio, sys, child_process
    from child_process import _loop_core
    assert _loop_core.BACKEND == "poll", _loop_core.BACKEND

    async def main():
        child = child_process.spawn(sys.executable, ["-c", "import sys; print(sys.stdin.read().upper())"])
        child.stdin.end(b"through pipes")
        chunks = [chunk async for chunk in child.stdout]
        assert await child == (0, None)
        worker = child_process.fork(sys.argv[1])
        got = []
        done = asyncio.get_running_loop().create_future()
        def on_message(m):
            got.append(m)
            if len(got) == 3:
                done.set_result(None)
        worker.on("message", on_message)
        for m in (1, "two", {"three": 3}):
            worker.send(m)
        await asyncio.wait_for(done, 10)
        worker.disconnect()
        result = await exec_async_ok()
        print(b"".join(chunks).decode().strip(), got, await worker, result)

    async def exec_async_ok():
        return (await child_process.exec_async("echo exec")).stdout.strip()

    asyncio.run(main())
""")


def test_asyncio_drives_children_on_the_poll_backend(tmp_path):
    """Where there is no epoll (macOS, or CHILD_PROCESS_POLLER=poll), asyncio watches each of
    our descriptors itself: pipes, the exit watcher and an IPC channel all make progress."""
    echo = tmp_path / "echo.py"
    echo.write_text("import child_process\np = child_process.parent\np.on('message', p.send)\n")
    out = subprocess.run([PY, "-c", POLL_BACKEND_PROGRAM, str(echo)], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, CHILD_PROCESS_POLLER="poll"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "THROUGH PIPES [1, 'two', {'three': 3}] (0, None) exec"
