"""SPEC §2/§3: the event loop -- run(), wait(), per-thread loops, ref/unref, exceptions raised by
listeners, draining at interpreter exit (epoll and poll backends), and the loop core's timers,
ready queue and descriptor watchers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import hang_guard
import child_process
from child_process import spawn
from child_process._loop import IOWatcher, Loop, Timer, get_loop

# Create the main thread's loop (and its epoll descriptor) before any leak check records the
# open descriptors: it lives as long as the thread, it is not a leak of the first test.
get_loop()

PY = sys.executable
_spawned: list = []


def sp(*args, **kwargs):
    child = spawn(*args, **kwargs)
    _spawned.append(child)
    return child


def py(code: str, **kwargs):
    return sp(PY, ["-c", textwrap.dedent(code)], **kwargs)


def wait_closed(child, timeout: float):
    return child.wait(timeout=timeout)


@pytest.fixture(autouse=True)
def _reap_children():
    with hang_guard(_spawned):
        yield


@pytest.fixture
def loop():
    """A private loop (not the thread's default one), closed afterwards."""
    lp = Loop()
    yield lp
    lp.close()


# ----------------------------------------------------------------------------------------------
# run()
# ----------------------------------------------------------------------------------------------

def test_run_returns_only_when_every_child_and_stream_is_done():
    events = []
    a = sp("sleep", ["0.3"])
    b = py("""
        import sys, time
        time.sleep(0.5)
        sys.stdout.write('late'); sys.stdout.flush()
    """)
    data = []
    b.stdout.on("data", data.append)
    a.on("close", lambda code, sig: events.append(("a", code, sig)))
    b.on("close", lambda code, sig: events.append(("b", code, sig)))
    b.stdout.on("end", lambda: events.append("b-stdout-end"))
    start = time.monotonic()
    assert child_process.run() is None
    elapsed = time.monotonic() - start
    assert elapsed >= 0.45
    assert b"".join(data) == b"late"
    assert ("a", 0, None) in events and ("b", 0, None) in events
    assert events.index("b-stdout-end") < events.index(("b", 0, None))
    assert get_loop().refs == 0
    assert get_loop().alive() is False


def test_run_with_nothing_to_do_returns_at_once():
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start < 0.5


def test_run_waits_for_a_referenced_timer():
    fired = []
    timer = Timer(get_loop(), fired.append, "tick")
    timer.start(0.2)
    assert get_loop().refs == 1
    start = time.monotonic()
    child_process.run()
    assert fired == ["tick"]
    assert time.monotonic() - start >= 0.18
    assert timer.is_active is False
    assert get_loop().refs == 0


def test_run_waits_for_a_stream_being_read_after_the_child_is_gone():
    # the grandchild keeps the pipe open after the child exits: 'close' waits for it
    child = sp("sh", ["-c", "(sleep 0.4; echo grandchild) & echo child"])
    out = []
    child.stdout.on("data", out.append)
    exits, closes = [], []
    child.on("exit", lambda code: exits.append(time.monotonic()))
    child.on("close", lambda code: closes.append(time.monotonic()))
    start = time.monotonic()
    child_process.run()
    assert b"".join(out) == b"child\ngrandchild\n"
    assert len(exits) == len(closes) == 1
    assert closes[0] - start >= 0.35
    assert closes[0] - exits[0] >= 0.2


def test_wait_returns_exit_code_and_signal():
    assert sp("sh", ["-c", "exit 3"]).wait() == (3, None)
    child = sp("sleep", ["5"])
    assert child.kill("SIGKILL") is True
    assert child.wait() == (None, "SIGKILL")
    assert child.exit_code is None and child.signal_code == "SIGKILL"


def test_wait_on_a_closed_child_returns_at_once():
    child = sp("true")
    assert child.wait() == (0, None)
    start = time.monotonic()
    assert child.wait() == (0, None)
    assert child.wait(timeout=1) == (0, None)
    assert time.monotonic() - start < 0.1


def test_wait_timeout_expires_and_leaves_the_child_running():
    child = sp("sleep", ["5"])
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        child.wait(timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 2
    assert child.exit_code is None and child.signal_code is None
    assert child.kill(0) is True          # still there
    child.kill()
    assert child.wait() == (None, "SIGTERM")


def test_wait_with_timeout_returns_as_soon_as_the_child_closes():
    child = sp("true")
    start = time.monotonic()
    assert child.wait(timeout=2) == (0, None)
    assert time.monotonic() - start < 1.0


def test_wait_does_not_block_on_other_idle_children():
    other = sp("sleep", ["2"])
    child = sp("true")
    start = time.monotonic()
    assert child.wait() == (0, None)
    assert time.monotonic() - start < 1.0
    other.kill()
    assert other.wait() == (None, "SIGTERM")


# ----------------------------------------------------------------------------------------------
# per-thread loops
# ----------------------------------------------------------------------------------------------

def test_get_loop_is_per_thread():
    main = get_loop()
    assert get_loop() is main
    assert child_process.get_loop() is main
    seen = {}

    def worker():
        lp = get_loop()
        seen["same_twice"] = get_loop() is lp
        seen["is_main"] = lp is main
        seen["owner"] = lp.owner == threading.get_ident()
        lp.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"same_twice": True, "is_main": False, "owner": True}
    assert main.owner == threading.get_ident()


def test_a_child_spawned_in_another_thread_is_driven_by_that_thread():
    result = {}

    def worker():
        child = spawn(PY, ["-c", "print('from thread')"])
        out = []
        child.stdout.on("data", out.append)
        result["wait"] = child.wait()
        result["out"] = b"".join(out)
        result["thread_refs"] = get_loop().refs
        get_loop().close()

    before = get_loop().refs
    t = threading.Thread(target=worker)
    t.start()
    t.join(20)
    assert not t.is_alive()
    assert result == {"wait": (0, None), "out": b"from thread\n", "thread_refs": 0}
    assert get_loop().refs == before


THREAD_LOOP_SCRIPT = textwrap.dedent("""
    import os, threading
    from child_process import spawn
    from child_process._loop import get_loop

    def fds():
        return set(os.listdir('/proc/self/fd'))

    def worker():
        child = spawn('true')
        print('wait', child.wait())
        get_loop().close()

    get_loop()                      # the main loop exists before the count
    before = fds()
    for _ in range(3):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    import gc; gc.collect()
    print('leaked', len(fds() - before))
""")


@pytest.mark.parametrize("watcher", [
    "pidfd",
    "sigchld",
])
def test_thread_loops_release_their_descriptors(watcher):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILD_PROCESS_")}
    env["CHILD_PROCESS_EXIT_WATCHER"] = watcher
    proc = subprocess.run([PY, "-c", THREAD_LOOP_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wait (0, None)\n" * 3 + "leaked 0\n"


def test_a_loop_cannot_run_on_another_thread():
    errors = []

    def worker():
        try:
            main.run()
        except RuntimeError as exc:
            errors.append(exc)

    main = get_loop()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(errors) == 1


# ----------------------------------------------------------------------------------------------
# exceptions raised by listeners
# ----------------------------------------------------------------------------------------------

class Boom(Exception):
    pass


def test_listener_exception_propagates_out_of_wait_and_the_loop_stays_usable():
    child = py("""
        import sys, time
        sys.stdout.write('first'); sys.stdout.flush()
        time.sleep(0.2)
        sys.stdout.write('second'); sys.stdout.flush()
    """)
    data, closes = [], []

    def on_data(chunk):
        data.append(chunk)
        if len(data) == 1:
            raise Boom("from a data listener")

    child.stdout.on("data", on_data)
    child.on("close", lambda code, sig: closes.append((code, sig)))
    with pytest.raises(Boom):
        child.wait()
    assert closes == []
    assert child.wait() == (0, None)
    assert closes == [(0, None)]
    assert b"".join(data) == b"firstsecond"


def test_exit_listener_exception_propagates_out_of_run_and_close_still_arrives():
    child = sp("sh", ["-c", "echo out"])
    out, closes = [], []
    child.stdout.on("data", out.append)
    child.on("exit", lambda code: (_ for _ in ()).throw(Boom("from exit")))
    child.on("close", lambda code, sig: closes.append((code, sig)))
    with pytest.raises(Boom):
        child_process.run()
    child_process.run()
    assert closes == [(0, None)]
    assert b"".join(out) == b"out\n"
    assert get_loop().refs == 0


def test_spawn_listener_exception_does_not_lose_other_callbacks():
    a = sp("true")
    b = sp("true")
    a.on("spawn", lambda: (_ for _ in ()).throw(Boom("from spawn")))
    spawned_b = []
    b.on("spawn", lambda: spawned_b.append(True))
    with pytest.raises(Boom):
        child_process.run()
    child_process.run()
    assert spawned_b == [True]
    assert a.wait() == (0, None) and b.wait() == (0, None)


def test_unhandled_error_event_raises_from_the_loop():
    child = sp("/nonexistent/definitely-not-here")
    assert child.pid is None
    with pytest.raises(OSError) as info:
        child.wait()
    assert info.value.code == "ENOENT"
    import errno
    assert child.wait() == (-errno.ENOENT, None)


# ----------------------------------------------------------------------------------------------
# ref / unref
# ----------------------------------------------------------------------------------------------

def test_unrefd_child_does_not_keep_run_alive():
    child = sp("sleep", ["5"], stdio="ignore")
    child.unref()
    assert get_loop().refs == 0
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start < 0.5
    assert child.exit_code is None and child.signal_code is None
    child.kill()
    assert wait_closed(child, 5) == (None, "SIGTERM")


def test_unrefd_child_with_pipes_still_keeps_run_alive():
    # Node: unref() drops only the process handle; the stdout/stderr pipes it reads ahead from
    # still hold the loop (which is why Node's detached example uses stdio 'ignore').
    child = sp("sleep", ["0.3"])
    child.unref()
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start >= 0.25
    # (whether the unref'd exit was seen before run() returned is a race, in Node too)
    assert wait_closed(child, 5) == (0, None)


def test_ref_after_unref_keeps_run_alive_again():
    child = sp("sleep", ["0.3"], stdio="ignore")
    child.unref()
    child.ref()
    closes = []
    child.on("close", lambda code, sig: closes.append((code, sig)))
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start >= 0.25
    assert closes == [(0, None)]


def test_read_stdout_of_unrefd_child_keeps_loop_alive():
    # Node: unref() drops only the process handle; a stream being read still counts.
    child = py("import time, sys; time.sleep(0.3); print('x')")
    child.unref()
    out = []
    child.stdout.on("data", out.append)
    child_process.run()
    assert b"".join(out) == b"x\n"
    assert wait_closed(child, 5) == (0, None)


# ----------------------------------------------------------------------------------------------
# interpreter exit: the loop is drained when run() was never called
# ----------------------------------------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import sys
    from child_process import spawn
    from child_process._loop_core import BACKEND
    print('backend', BACKEND, flush=True)
    child = spawn('sh', ['-c', 'sleep 0.2; echo done'])
    child.stdout.on('data', lambda data: print('stdout:', data.decode().strip(), flush=True))
    child.on('exit', lambda code, signal: print('exit', code, signal, flush=True))
    child.on('close', lambda code: print('close', code, flush=True))
    print('end of script', flush=True)
""")


@pytest.mark.parametrize("env_extra, backend", [
    ({}, "epoll"),
    ({"CHILD_PROCESS_POLLER": "poll"}, "poll"),
    ({"CHILD_PROCESS_EXIT_WATCHER": "sigchld"}, "epoll"),
    ({"CHILD_PROCESS_POLLER": "poll", "CHILD_PROCESS_EXIT_WATCHER": "sigchld"}, "poll"),
], ids=["epoll", "poll", "epoll-sigchld", "poll-sigchld"])
def test_loop_is_drained_at_interpreter_exit(env_extra, backend):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILD_PROCESS_")}
    env.update(env_extra)
    start = time.monotonic()
    proc = subprocess.run([PY, "-c", EXIT_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == f"backend {backend}"
    assert lines[1] == "end of script"
    assert "stdout: done" in lines
    assert "exit 0 None" in lines
    assert lines[-1] == "close 0"
    assert sorted(lines[2:]) == sorted(["stdout: done", "exit 0 None", "close 0"])
    assert time.monotonic() - start >= 0.2


FORK_SCRIPT = textwrap.dedent("""
    import os, time, child_process as cp
    from child_process._loop import get_loop
    inherited = get_loop()
    mine = cp.spawn("sleep", ["0.4"], stdio="ignore")    # the parent's loop watches a pidfd
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            # a loop of its own: the inherited one is closed, the parent's children are not ours
            assert get_loop() is not inherited
            try:
                mine.wait(1)
                report = "the inherited child could be waited for"
            except RuntimeError as exc:
                assert "closed" in str(exc), exc
                out = []
                c = cp.spawn("sh", ["-c", "echo from-the-forked-process"])
                c.stdout.on("data", out.append)
                report = repr((c.wait(10), b"".join(out)))
        except BaseException as exc:
            report = "error: " + repr(exc)
        os.write(w, report.encode())
        os._exit(0)
    os.close(w)
    cpu = time.process_time()
    print(mine.wait(10), flush=True)
    print("parent cpu below 0.1 s:", time.process_time() - cpu < 0.1, flush=True)
    print(os.read(r, 1000).decode(), flush=True)
    os.waitpid(pid, 0)
""")


@pytest.mark.parametrize("env_extra", [{}, {"CHILD_PROCESS_POLLER": "poll"},
                                       {"CHILD_PROCESS_EXIT_WATCHER": "sigchld"}],
                         ids=["epoll", "poll", "sigchld"])
def test_a_forked_process_gets_a_loop_of_its_own(env_extra):
    """os.fork() after the loop has work: the fork shares the epoll instance of its parent's
    loop, so using it would steal the parent's events (the parent's wait() then never returned).
    The forked process gets a new loop, spawns and waits in it, and the parent's child exits
    normally for the parent, without a busy loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILD_PROCESS_")}
    env.update(env_extra)
    proc = subprocess.run([PY, "-c", FORK_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "(0, None)",
        "parent cpu below 0.1 s: True",
        "((0, None), b'from-the-forked-process\\n')",
    ], proc.stdout + proc.stderr


def test_interpreter_exit_does_not_wait_for_unrefd_child():
    script = textwrap.dedent("""
        from child_process import spawn
        child = spawn('sleep', ['3'], stdio='ignore')
        child.unref()
        print('pid', child.pid, flush=True)
    """)
    start = time.monotonic()
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout.split()[1])
    try:
        assert elapsed < 2.5
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_exit_drain_with_run_called_earlier_and_more_work_after():
    script = textwrap.dedent("""
        import child_process
        from child_process import spawn
        spawn('true').on('close', lambda code: print('first', code, flush=True))
        child_process.run()
        spawn('sh', ['-c', 'exit 4']).on('close', lambda code: print('second', code, flush=True))
    """)
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "first 0\nsecond 4\n"


# ----------------------------------------------------------------------------------------------
# the loop core: ready queue
# ----------------------------------------------------------------------------------------------

def test_call_soon_is_fifo_with_arguments(loop):
    order = []
    for i in range(5):
        loop.call_soon(order.append, i)
    loop.call_soon(lambda *a: order.append(a), "x", "y")
    assert loop.has_ready is True
    assert loop.alive() is True
    assert loop.refs == 0
    loop.run_once(0)
    assert order == [0, 1, 2, 3, 4, ("x", "y")]
    assert loop.has_ready is False
    assert loop.alive() is False


def test_callbacks_queued_by_a_callback_run_after_those_already_queued(loop):
    order = []

    def first():
        order.append("first")
        loop.call_soon(order.append, "nested")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    loop.run_once(0)
    assert order[:2] == ["first", "second"]
    loop.run()
    assert order == ["first", "second", "nested"]
    assert loop.has_ready is False


def test_run_drains_the_ready_queue(loop):
    order = []
    loop.call_soon(lambda: loop.call_soon(lambda: order.append(2)) or order.append(1))
    loop.run()
    assert order == [1, 2]


def test_exception_in_a_callback_keeps_the_rest_queued(loop):
    order = []
    loop.call_soon(order.append, 1)
    loop.call_soon(lambda: (_ for _ in ()).throw(Boom()))
    loop.call_soon(order.append, 3)
    with pytest.raises(Boom):
        loop.run_once(0)
    assert order == [1]
    loop.run_once(0)
    assert order == [1, 3]


# ----------------------------------------------------------------------------------------------
# the loop core: timers
# ----------------------------------------------------------------------------------------------

def test_timer_start_stop_counts_refs(loop):
    timer = Timer(loop, lambda: None)
    assert loop.refs == 0 and loop.alive() is False
    assert timer.is_active is False and timer.has_ref() is True
    timer.start(10)
    assert timer.is_active is True
    assert loop.refs == 1 and loop.alive() is True
    timer.start(10)                       # re-arming does not count twice
    assert loop.refs == 1
    timer.stop()
    assert timer.is_active is False
    assert loop.refs == 0 and loop.alive() is False
    timer.stop()
    assert loop.refs == 0


def test_timer_unref_and_ref(loop):
    timer = Timer(loop, lambda: None)
    timer.start(10)
    timer.unref()
    assert timer.has_ref() is False
    assert loop.refs == 0 and loop.alive() is False
    timer.unref()
    assert loop.refs == 0
    timer.ref()
    assert loop.refs == 1
    timer.ref()
    assert loop.refs == 1
    timer.stop()
    timer.unref()
    timer.start(10)                       # an unref'd timer never counts
    assert loop.refs == 0
    timer.ref()
    assert loop.refs == 1
    timer.stop()
    assert loop.refs == 0


def test_timers_fire_in_deadline_order_and_release_the_loop(loop):
    fired = []
    t1 = Timer(loop, fired.append, "slow")
    t2 = Timer(loop, fired.append, "fast")
    t3 = Timer(loop, fired.append, "zero")
    t1.start(0.15)
    t2.start(0.05)
    t3.start(0)
    assert loop.refs == 3
    start = time.monotonic()
    loop.run()
    assert fired == ["zero", "fast", "slow"]
    assert time.monotonic() - start >= 0.14
    assert loop.refs == 0
    assert not (t1.is_active or t2.is_active or t3.is_active)


def test_timers_with_equal_delay_fire_in_start_order(loop):
    fired = []
    timers = [Timer(loop, fired.append, i) for i in range(6)]
    for t in timers:
        t.start(0.01)
    loop.run()
    assert fired == list(range(6))


def test_rearmed_timer_fires_once_at_the_new_time(loop):
    fired = []
    timer = Timer(loop, lambda: fired.append(time.monotonic()))
    start = time.monotonic()
    timer.start(0.02)
    timer.start(0.2)
    loop.run()
    assert len(fired) == 1
    assert fired[0] - start >= 0.18


def test_stopped_timer_never_fires(loop):
    fired = []
    timer = Timer(loop, fired.append, 1)
    timer.start(0.01)
    timer.stop()
    keep = Timer(loop, fired.append, 2)
    keep.start(0.05)
    loop.run()
    assert fired == [2]


def test_unrefd_timer_does_not_keep_run_alive_but_fires_if_loop_runs(loop):
    fired = []
    unrefd = Timer(loop, fired.append, "unref")
    unrefd.unref()
    unrefd.start(0.02)
    start = time.monotonic()
    loop.run()
    assert time.monotonic() - start < 0.015
    assert fired == []
    assert loop.refs == 0
    keep = Timer(loop, fired.append, "ref")
    keep.start(0.1)
    loop.run()
    assert fired == ["unref", "ref"]


def test_timer_restarted_from_its_callback(loop):
    count = []
    timer = Timer(loop, lambda: None)

    def tick():
        count.append(1)
        if len(count) < 3:
            timer.start(0.01)

    timer.callback = tick
    timer.start(0.01)
    loop.run()
    assert len(count) == 3
    assert loop.refs == 0


def test_run_until_timeout_and_predicate(loop):
    far = Timer(loop, lambda: None)
    far.start(30)                         # something alive, that does nothing for a while
    start = time.monotonic()
    assert loop.run_until(lambda: False, 0.2) is False
    assert 0.15 <= time.monotonic() - start < 1.5
    far.stop()
    done = []
    timer = Timer(loop, done.append, True)
    timer.start(0.05)
    assert loop.run_until(lambda: bool(done), 5) is True
    assert done == [True]


def test_run_until_returns_false_when_nothing_can_progress(loop):
    start = time.monotonic()
    assert loop.run_until(lambda: False) is False
    assert time.monotonic() - start < 0.5


# ----------------------------------------------------------------------------------------------
# the loop core: descriptor watchers
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_iowatcher_reading_on_a_pipe(loop, pipe):
    r, w = pipe
    got = []
    watcher = IOWatcher(loop, r, lambda: got.append(os.read(r, 100)))
    assert watcher.fd == r and watcher.active is False and watcher.reading is False
    watcher.start_reading()
    assert watcher.reading is True and watcher.active is True
    assert loop.refs == 1 and loop.alive() is True
    loop.run_once(0)
    assert got == []                      # nothing to read yet
    os.write(w, b"hello")
    loop.run_once(1)
    assert got == [b"hello"]
    watcher.stop()
    assert watcher.active is False and watcher.reading is False
    assert loop.refs == 0
    os.write(w, b"ignored")
    loop.run_once(0)
    assert got == [b"hello"]


def test_iowatcher_is_level_triggered(loop, pipe):
    r, w = pipe
    calls = []
    watcher = IOWatcher(loop, r, lambda: calls.append(1))   # never reads
    watcher.start_reading()
    os.write(w, b"x")
    loop.run_once(0)
    loop.run_once(0)
    loop.run_once(0)
    assert len(calls) == 3
    watcher.stop()


def test_iowatcher_exception_does_not_lose_the_event(loop, pipe):
    r, w = pipe
    got = []
    state = {"raise": True}

    def on_readable():
        if state["raise"]:
            state["raise"] = False
            raise Boom()
        got.append(os.read(r, 100))

    watcher = IOWatcher(loop, r, on_readable)
    watcher.start_reading()
    os.write(w, b"data")
    with pytest.raises(Boom):
        loop.run_once(1)
    loop.run_once(1)
    assert got == [b"data"]
    watcher.stop()


def test_iowatcher_writing_and_hangup(loop, pipe):
    r, w = pipe
    events = []
    writer = IOWatcher(loop, w, None, lambda: events.append("writable"))
    writer.start_writing()
    assert writer.writing is True and loop.refs == 1
    loop.run_once(1)
    assert events == ["writable"]
    writer.stop_writing()
    assert loop.refs == 0
    reader = IOWatcher(loop, r, lambda: events.append(("readable", os.read(r, 10))))
    reader.start_reading()
    writer.stop()
    os.close(w)                           # hang-up: readable with EOF
    loop.run_once(1)
    assert events[-1] == ("readable", b"")
    reader.stop()


def test_iowatcher_unref(loop, pipe):
    r, w = pipe
    watcher = IOWatcher(loop, r, lambda: None)
    watcher.unref()
    assert watcher.has_ref() is False
    watcher.start_reading()
    assert loop.refs == 0 and loop.alive() is False
    watcher.ref()
    assert loop.refs == 1
    watcher.start_writing()               # one handle, counted once
    assert loop.refs == 1
    watcher.stop_reading()
    assert loop.refs == 1
    watcher.stop_writing()
    assert loop.refs == 0


def test_iowatcher_two_pipes_in_one_turn(loop):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        got = []
        a = IOWatcher(loop, r1, lambda: got.append(("a", os.read(r1, 10))))
        b = IOWatcher(loop, r2, lambda: got.append(("b", os.read(r2, 10))))
        a.start_reading()
        b.start_reading()
        os.write(w1, b"1")
        os.write(w2, b"2")
        loop.run_once(1)
        assert sorted(got) == [("a", b"1"), ("b", b"2")]
        a.stop()
        b.stop()
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


POLL_CORE_SCRIPT = textwrap.dedent("""
    import os
    from child_process._loop import IOWatcher, Loop, Timer
    from child_process._loop_core import BACKEND
    loop = Loop()
    r, w = os.pipe()
    got = []
    watcher = IOWatcher(loop, r, lambda: got.append(os.read(r, 100)))
    watcher.start_reading()
    Timer(loop, os.write, w, b'from timer').start(0.05)
    loop.run_until(lambda: got, 5)
    watcher.stop()
    print(BACKEND, got, loop.refs, loop.fileno())
""")


def test_poll_backend_loop_core():
    env = dict(os.environ, CHILD_PROCESS_POLLER="poll")
    proc = subprocess.run([PY, "-c", POLL_CORE_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "poll [b'from timer'] 0 -1\n"
