"""Python side of the benchmark suite: one worker process measures one or more implementations.

The runner (``run.py``) starts this file as a fresh ``python -m _worker`` process (from this
directory, with bytecode cached: see ``_harness.PyJob``) for every measurement and passes one
JSON argument::

    {"group": "spawn", "impls": ["popen", ...], "n": 1000, "warmup": 10,
     "budget": 3.0, "hold": 0, "k": 200}

* ``group`` picks the family of operations (``spawn``: one spawn + wait of ``/bin/true``;
  ``concurrent``: one batch of ``k`` children started at once, then all waited for (the
  ``asyncio_*`` and ``ours_asyncio`` ones from inside a running asyncio loop);
  ``capture``: run the child ``child`` (an argv list) and capture all its stdout, which must
  be exactly ``nbytes`` bytes; ``ipc_pingpong``: one round trip of ``{"i": n, "s": "hello"}``
  to a forked echoing child; ``ipc_stream``: one message of a child's one-way stream;
  ``fork_startup``: start a Python child until it answers).
* ``impls`` are measured one after the other, in the order given (the runner rotates it).
* each implementation runs ``warmup`` untimed operations, then timed ones until ``n`` are done
  or ``budget`` seconds have passed (at least one), and reports the mean time of one operation.
  The event-driven implementations (IPC, start-up) are *timed* ones: they run that loop
  themselves and time only its part that the scenario measures (``impl(..., timed=True)``).
* ``hold`` > 0 first allocates that many bytes and writes to every page, so the worker is a
  "big parent" whose page tables a ``fork()`` has to copy.

It prints one JSON line on stdout::

    {"results": {"popen": {"value": <seconds per op>, "n": <ops timed>, "maxrss": <bytes>}},
     "skipped": {"ours_sync": "<why>"}, "info": {...}, "rss": <bytes>}

``maxrss`` is the worker's peak resident size once that implementation has been measured (so
for the second implementation of a worker it is the peak over both).

An implementation that cannot run here (``child_process`` not importable, a function it
lacks, an error while running) is listed under ``skipped`` with the reason; the worker itself
only fails on a bad request.
"""

import json
import os
import signal
import sys
import time

# asyncio, subprocess and warnings are imported by main(), not here, and only for the
# implementations that use them (``impl(..., needs=...)``):
# * a multiprocessing 'spawn' child re-runs this module's top level (as __mp_main__) before it
#   runs its target, and fork_startup must time multiprocessing, not this file's imports;
# * each implementation is timed in a process like a program that uses it: with the modules
#   it needs, no more (importing asyncio alone made a bare posix_spawn loop ~10 % slower here
#   until the settling sleep, see settle() and docs/benchmarks.md).
asyncio = subprocess = warnings = None

TRUE = "/bin/true"
PAGE = os.sysconf("SC_PAGESIZE")
HERE = os.path.dirname(os.path.abspath(__file__))
PY_CHILDREN = os.path.join(HERE, "python")   # the scripts our fork() runs


class Unavailable(Exception):
    """This implementation cannot be measured here; the message says why."""


IMPLS = {}


def impl(group, name, timed=False, needs=()):
    """Register ``factory(spec) -> op``: ``op()`` performs one operation, raising on failure.

    With ``timed=True`` the factory returns ``timed(n, warmup, budget) -> (ops, seconds)``
    instead, which does the warm-up and the timed operations itself and returns how many it
    timed and the seconds they took (for event-driven loops, and to leave set-up and clean-up
    out of the timing). ``needs``: the modules among asyncio, subprocess and warnings that the
    implementation uses; the worker imports them before it measures anything."""

    def register(factory):
        IMPLS[(group, name)] = (factory, timed, tuple(needs))
        return factory

    return register


def _check_status(status, what=TRUE):
    if status != 0:
        raise RuntimeError(f"{what} ended with status {status!r}")


def _check_exit(code, sig):
    if code != 0:
        raise RuntimeError(f"{TRUE} ended with exit code {code!r}, signal {sig!r}")


def _ours():
    try:
        import child_process
    except Exception as exc:  # ImportError, or a half-built package failing at import
        raise Unavailable(f"child_process not importable ({type(exc).__name__}: {exc})") from exc
    return child_process


def _ours_attr(name):
    module = _ours()
    value = getattr(module, name, None)
    if value is None:
        raise Unavailable(f"child_process has no {name}() yet")
    return value


# --------------------------------------------------------------------------------- spawn

@impl("spawn", "posix_spawn")
def _spawn_posix_spawn(spec):
    env = dict(os.environ)

    def op():
        pid = os.posix_spawn(TRUE, [TRUE], env)
        _, status = os.waitpid(pid, 0)
        _check_status(status)

    return op


@impl("spawn", "popen", needs=("subprocess",))
def _spawn_popen(spec):
    def op():
        _check_status(subprocess.Popen([TRUE]).wait())

    return op


@impl("spawn", "run", needs=("subprocess",))
def _spawn_run(spec):
    def op():
        _check_status(subprocess.run([TRUE]).returncode)

    return op


def _noop():
    pass


@impl("spawn", "mp_fork")
def _spawn_mp_fork(spec):
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError as exc:
        raise Unavailable(f"no fork start method: {exc}") from exc

    def op():
        proc = ctx.Process(target=_noop)
        proc.start()
        proc.join()
        _check_status(proc.exitcode, "multiprocessing child")

    return op


@impl("spawn", "ours_ignore")
def _spawn_ours_ignore(spec):
    spawn = _ours_attr("spawn")

    def op():
        _check_exit(*spawn(TRUE, stdio="ignore").wait())

    return op


@impl("spawn", "ours_pipe")
def _spawn_ours_pipe(spec):
    spawn = _ours_attr("spawn")

    def op():
        _check_exit(*spawn(TRUE).wait())

    return op


@impl("spawn", "ours_sync")
def _spawn_ours_sync(spec):
    spawn_sync = _ours_attr("spawn_sync")

    def op():
        result = spawn_sync(TRUE, stdio="ignore")
        if result.error is not None:
            raise result.error
        _check_status(result.status)

    return op


# ---------------------------------------------------------------------------- concurrent

@impl("concurrent", "popen", needs=("subprocess",))
def _conc_popen(spec):
    k = spec["k"]
    PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL

    def op():
        procs = [subprocess.Popen([TRUE], stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL)
                 for _ in range(k)]
        for proc in procs:
            proc.communicate()
            _check_status(proc.returncode)

    return op


def _default_watcher_name():
    """Which child watcher asyncio uses by default on this Python (3.14 has no public one)."""
    getter = getattr(asyncio, "get_child_watcher", None)
    if getter is None:
        return "internal (pidfd when available)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return type(getter()).__name__


def _asyncio_op(k, loop):
    PIPE, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL

    async def batch():
        procs = await asyncio.gather(*(
            asyncio.create_subprocess_exec(TRUE, stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL)
            for _ in range(k)))
        await asyncio.gather(*(proc.communicate() for proc in procs))
        for proc in procs:
            _check_status(proc.returncode)

    def op():
        loop.run_until_complete(batch())

    return op


@impl("concurrent", "asyncio_default", needs=("asyncio", "warnings"))
def _conc_asyncio_default(spec):
    INFO["asyncio default child watcher"] = _default_watcher_name()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return _asyncio_op(spec["k"], loop)


@impl("concurrent", "asyncio_pidfd", needs=("asyncio", "warnings"))
def _conc_asyncio_pidfd(spec):
    watcher_cls = getattr(asyncio, "PidfdChildWatcher", None)
    if watcher_cls is None:
        raise Unavailable("no asyncio.PidfdChildWatcher on this Python (the default row "
                          "already uses pidfd where available)")
    default = _default_watcher_name()
    if default == "PidfdChildWatcher":
        raise Unavailable("the default child watcher already is PidfdChildWatcher")
    if not hasattr(os, "pidfd_open"):
        raise Unavailable("os.pidfd_open is missing")
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as exc:
        raise Unavailable(f"pidfd_open fails here: {exc}") from exc
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = watcher_cls()
        asyncio.set_child_watcher(watcher)
        watcher.attach_loop(loop)
    return _asyncio_op(spec["k"], loop)


def _ours_batch(spec, finish):
    spawn = _ours_attr("spawn")
    k = spec["k"]
    stdio = ["ignore", "pipe", "ignore"]

    def op():
        closed = 0

        def on_close(*args):
            nonlocal closed
            closed += 1

        procs = [spawn(TRUE, stdio=stdio) for _ in range(k)]
        for proc in procs:
            proc.on("close", on_close)
        finish(procs)
        if closed != k:
            raise RuntimeError(f"only {closed} of {k} children emitted 'close'")
        for proc in procs:
            _check_exit(proc.exit_code, proc.signal_code)

    return op


@impl("concurrent", "ours_run")
def _conc_ours_run(spec):
    run = _ours_attr("run")
    return _ours_batch(spec, lambda procs: run())


@impl("concurrent", "ours_wait")
def _conc_ours_wait(spec):
    def finish(procs):
        for proc in procs:
            proc.wait()

    return _ours_batch(spec, finish)


@impl("concurrent", "ours_asyncio", needs=("asyncio",))
def _conc_ours_asyncio(spec):
    """spawn() ×k from a coroutine on a running asyncio loop, then ``await gather(*children)``:
    asyncio drives our loop (no run(), no wait())."""
    spawn = _ours_attr("spawn")
    k = spec["k"]
    stdio = ["ignore", "pipe", "ignore"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def batch():
        children = [spawn(TRUE, stdio=stdio) for _ in range(k)]
        results = await asyncio.gather(*children)
        if len(results) != k:
            raise RuntimeError(f"gather gave {len(results)} results for {k} children")
        for code, sig in results:
            _check_exit(code, sig)

    def op():
        loop.run_until_complete(batch())

    return op


# ------------------------------------------------------------------------------- capture
#
# Each op runs spec["child"] (the writer, or `head -c N /dev/zero`), captures its whole stdout
# as one bytes object and checks its length: a wrong count raises, so the row is reported as
# failed rather than timed.

def _check_capture(data, spec, status=0):
    if status != 0:
        raise RuntimeError(f"{spec['child'][0]} ended with status {status!r}")
    if data is None:
        raise RuntimeError("captured nothing (stdout is None)")
    if len(data) != spec["nbytes"]:
        raise RuntimeError(f"captured {len(data)} bytes, expected {spec['nbytes']}")


@impl("capture", "run", needs=("subprocess",))
def _capture_run(spec):
    child, PIPE = spec["child"], subprocess.PIPE

    def op():
        proc = subprocess.run(child, stdout=PIPE)
        _check_capture(proc.stdout, spec, proc.returncode)

    return op


@impl("capture", "communicate", needs=("subprocess",))
def _capture_communicate(spec):
    child, PIPE = spec["child"], subprocess.PIPE

    def op():
        proc = subprocess.Popen(child, stdout=PIPE)
        out, _ = proc.communicate()
        _check_capture(out, spec, proc.returncode)

    return op


@impl("capture", "asyncio", needs=("asyncio", "warnings"))
def _capture_asyncio(spec):
    child = spec["child"]
    PIPE = asyncio.subprocess.PIPE
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    INFO["asyncio child watcher"] = _default_watcher_name()

    async def capture():
        proc = await asyncio.create_subprocess_exec(*child, stdout=PIPE)
        out, _ = await proc.communicate()
        _check_capture(out, spec, proc.returncode)

    def op():
        loop.run_until_complete(capture())

    return op


_CAPTURE_STDIO = ["ignore", "pipe", "ignore"]


@impl("capture", "ours_sync")
def _capture_ours_sync(spec):
    spawn_sync = _ours_attr("spawn_sync")
    file, args = spec["child"][0], spec["child"][1:]

    def op():
        result = spawn_sync(file, args, stdio=_CAPTURE_STDIO, max_buffer=None)
        if result.error is not None:
            raise result.error
        _check_capture(result.stdout, spec, result.status)

    return op


@impl("capture", "ours_exec_file_sync")
def _capture_ours_exec_file_sync(spec):
    exec_file_sync = _ours_attr("exec_file_sync")
    file, args = spec["child"][0], spec["child"][1:]

    def op():
        _check_capture(exec_file_sync(file, args, max_buffer=None), spec)

    return op


@impl("capture", "ours_spawn")
def _capture_ours_spawn(spec):
    spawn = _ours_attr("spawn")
    file, args = spec["child"][0], spec["child"][1:]

    def op():
        chunks = []
        proc = spawn(file, args, stdio=_CAPTURE_STDIO)
        proc.stdout.on("data", chunks.append)
        code, sig = proc.wait()
        if sig is not None:
            raise RuntimeError(f"{file} killed by {sig}")
        _check_capture(b"".join(chunks), spec, code)

    return op


@impl("capture", "ours_exec_file")
def _capture_ours_exec_file(spec):
    exec_file = _ours_attr("exec_file")
    run = _ours_attr("run")
    file, args = spec["child"][0], spec["child"][1:]

    def op():
        got = []

        def callback(err, stdout, stderr):
            got.append((err, stdout))

        exec_file(file, args, encoding=None, max_buffer=None, callback=callback)
        run()
        if len(got) != 1:
            raise RuntimeError(f"the callback ran {len(got)} times")
        err, stdout = got[0]
        if err is not None:
            raise err
        _check_capture(stdout, spec)

    return op


# --------------------------------------------------------------------- IPC: ping-pong, stream
#
# Every implementation exchanges {"i": n, "s": "hello"} and checks each message it receives
# (its counter and its string), so a lost, duplicated or garbled message fails the row.
#
# ipc_pingpong: one message in flight; the next is sent when the echo of the previous one has
# arrived.  Timed: from the echo of the last warm-up message to the echo of the last timed
# one -- the fork, the child's start-up and its exit are never timed.
#
# ipc_stream: the child sends warmup + n messages in a loop, the parent receives them.  Timed
# at the parent: from the arrival of message number `warmup` (the last warm-up one) to the
# arrival of the last one; the value is that time over n.  The child's start-up and exit are
# not timed; its sending loop is, as far as it overlaps the parent's receiving.

HELLO = "hello"


def _ipc_stdio():
    # The worker's stdout carries its JSON result: the child gets /dev/null there and the
    # worker's stderr (where a traceback would go).
    return ["ignore", "ignore", "inherit", "ipc"]


def _place(pid, spec):
    """Move a just-started child to the CPU its placement gives it (``child_cpu``; -1 leaves
    it on this process's, where the runner pinned this worker).  The Python children have a
    single thread, so pinning the pid pins them entirely."""
    cpu = int(spec.get("child_cpu", -1))
    if cpu >= 0:
        os.sched_setaffinity(pid, {cpu})


def _ours_fork(spec, script, args, serialization):
    fork = _ours_attr("fork")
    path = os.path.join(PY_CHILDREN, script)
    try:
        child = fork(path, args, serialization=serialization, stdio=_ipc_stdio())
    except Exception as exc:
        if serialization == "json":
            raise
        raise Unavailable(f"fork(serialization={serialization!r}) raised "
                          f"{type(exc).__name__}: {exc}") from exc
    _place(child.pid, spec)
    return child


def _ours_finish(child, error, what):
    code, sig = child.wait()
    if error:
        raise RuntimeError(error[0])
    if code != 0 or sig is not None:
        raise RuntimeError(f"the {what} child ended with exit code {code!r}, signal {sig!r}")


def _ours_pingpong(serialization):
    def factory(spec):
        _ours()

        def timed(n, warmup, budget):
            warmup = max(1, warmup)
            child = _ours_fork(spec, "ipc_echo.py", [], serialization)
            clock = time.perf_counter
            sent = done = 0
            t0 = seconds = None
            error = []

            def on_message(message):
                nonlocal sent, done, t0, seconds
                if message["i"] != sent - 1 or message["s"] != HELLO:
                    error.append(f"reply {sent - 1} is {message!r}")
                    child.disconnect()
                    return
                if sent == warmup:
                    t0 = clock()
                elif sent > warmup:
                    done += 1
                    t = clock()
                    if done >= n or t - t0 >= budget:
                        seconds = t - t0
                        child.disconnect()  # the child's channel closes and it exits
                        return
                child.send({"i": sent, "s": HELLO})
                sent += 1

            child.on("message", on_message)
            child.send({"i": 0, "s": HELLO})
            sent = 1
            _ours_finish(child, error, "echoing")
            if seconds is None:
                raise RuntimeError(f"the channel closed after {done} timed round trips")
            return done, seconds

        return timed

    return factory


impl("ipc_pingpong", "ours_json", timed=True)(_ours_pingpong("json"))
impl("ipc_pingpong", "ours_pickle", timed=True)(_ours_pingpong("pickle"))
impl("ipc_pingpong", "ours_advanced", timed=True)(_ours_pingpong("advanced"))


def _mp_echo(conn):
    while True:
        message = conn.recv()
        if message is None:
            break
        conn.send(message)
    conn.close()


def _mp_context(method=None):
    import multiprocessing
    try:
        ctx = multiprocessing.get_context(method)
    except ValueError as exc:
        raise Unavailable(f"no multiprocessing start method {method!r}: {exc}") from exc
    return ctx


@impl("ipc_pingpong", "mp_pipe", timed=True)
def _pingpong_mp(spec):
    ctx = _mp_context()
    INFO["multiprocessing start method (ipc_pingpong, ipc_stream)"] = ctx.get_start_method()

    def timed(n, warmup, budget):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_mp_echo, args=(there,))
        proc.start()
        _place(proc.pid, spec)
        there.close()
        send, recv = here.send, here.recv
        clock = time.perf_counter
        i = 0
        for i in range(max(1, warmup)):
            send({"i": i, "s": HELLO})
            reply = recv()
            if reply["i"] != i or reply["s"] != HELLO:
                raise RuntimeError(f"reply {i} is {reply!r}")
        t0 = t = clock()
        done = 0
        while done < n and (done == 0 or t - t0 < budget):
            i += 1
            send({"i": i, "s": HELLO})
            reply = recv()
            if reply["i"] != i or reply["s"] != HELLO:
                raise RuntimeError(f"reply {i} is {reply!r}")
            done += 1
            t = clock()
        send(None)
        proc.join()
        here.close()
        _check_status(proc.exitcode, "multiprocessing echo child")
        return done, t - t0

    return timed


def _ours_stream(serialization):
    def factory(spec):
        _ours()

        def timed(n, warmup, budget):
            warmup = max(1, warmup)
            total = warmup + n
            child = _ours_fork(spec, "ipc_stream.py", [str(total)], serialization)
            clock = time.perf_counter
            count = 0
            t0 = t1 = None
            error = []

            def on_message(message):
                nonlocal count, t0, t1
                if message["i"] != count or message["s"] != HELLO:
                    if not error:
                        error.append(f"message {count} is {message!r}")
                        child.kill()
                    return
                count += 1
                if count == warmup:
                    t0 = clock()
                elif count == total:
                    t1 = clock()

            child.on("message", on_message)
            _ours_finish(child, error, "sending")
            if count != total:
                raise RuntimeError(f"received {count} of {total} messages")
            return n, t1 - t0

        return timed

    return factory


impl("ipc_stream", "ours_json", timed=True)(_ours_stream("json"))
impl("ipc_stream", "ours_pickle", timed=True)(_ours_stream("pickle"))
impl("ipc_stream", "ours_advanced", timed=True)(_ours_stream("advanced"))


def _mp_stream_child(conn, total):
    send = conn.send
    for i in range(total):
        send({"i": i, "s": HELLO})
    conn.close()


@impl("ipc_stream", "mp_pipe", timed=True)
def _stream_mp(spec):
    ctx = _mp_context()
    INFO["multiprocessing start method (ipc_pingpong, ipc_stream)"] = ctx.get_start_method()

    def timed(n, warmup, budget):
        warmup = max(1, warmup)
        total = warmup + n
        here, there = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_mp_stream_child, args=(there, total))
        proc.start()
        _place(proc.pid, spec)
        there.close()
        recv = here.recv
        clock = time.perf_counter
        t0 = None
        for count in range(total):
            message = recv()
            if message["i"] != count or message["s"] != HELLO:
                raise RuntimeError(f"message {count} is {message!r}")
            if count + 1 == warmup:
                t0 = clock()
        t1 = clock()
        proc.join()
        here.close()
        _check_status(proc.exitcode, "multiprocessing sending child")
        return n, t1 - t0

    return timed


# ---------------------------------------------------------------------------- fd_passing
#
# One bound UDP socket's descriptor is passed to a child again and again, one in flight: the
# child closes each descriptor it receives and acknowledges it before the next is sent (ours:
# the NODE_HANDLE_ACK of the protocol; the peers: one byte back). Timed: the transfers after
# the warm-up; the fork, the child's start-up and its exit are not.

def _bound_udp():
    import socket
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    return udp


def _fd_child_send_fds(sock):
    import socket
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)
        if not data:
            os._exit(0)
        if len(fds) != 1:
            os._exit(2)
        os.close(fds[0])
        sock.sendall(b"A")


@impl("fd_passing", "send_fds", timed=True)
def _fd_send_fds(spec):
    import socket

    def timed(n, warmup, budget):
        here, there = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                here.close()
                _fd_child_send_fds(there)
            finally:
                os._exit(1)
        there.close()
        udp = _bound_udp()
        fd = udp.fileno()
        send_fds, recv = socket.send_fds, here.recv
        clock = time.perf_counter

        def one():
            send_fds(here, [b"H"], [fd])
            if recv(1) != b"A":
                raise RuntimeError("the send_fds child did not acknowledge")

        for _ in range(warmup):
            one()
        t0 = t = clock()
        done = 0
        while done < n and (done == 0 or t - t0 < budget):
            one()
            done += 1
            t = clock()
        here.close()
        _, status = os.waitpid(pid, 0)
        udp.close()
        _check_status(os.waitstatus_to_exitcode(status), "send_fds child")
        return done, t - t0

    return timed


def _mp_fd_child(conn, total):
    from multiprocessing import reduction
    for _ in range(total):
        fd = reduction.recv_handle(conn)
        os.close(fd)
        conn.send_bytes(b"A")
    conn.close()


@impl("fd_passing", "mp_handle", timed=True)
def _fd_mp(spec):
    ctx = _mp_context()
    INFO["multiprocessing start method (fd_passing)"] = ctx.get_start_method()

    def timed(n, warmup, budget):
        from multiprocessing import reduction
        total = warmup + n
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_mp_fd_child, args=(there, total))
        proc.start()
        there.close()
        udp = _bound_udp()
        fd = udp.fileno()
        clock = time.perf_counter
        send_handle, recv_bytes = reduction.send_handle, here.recv_bytes
        sent = 0

        def one():
            send_handle(here, fd, proc.pid)
            if recv_bytes() != b"A":
                raise RuntimeError("the multiprocessing child did not acknowledge")

        for _ in range(warmup):
            one()
        sent = warmup
        t0 = t = clock()
        done = 0
        while done < n and (done == 0 or t - t0 < budget):
            one()
            done += 1
            t = clock()
        sent += done
        seconds = t - t0
        while sent < total:           # the child expects exactly `total`
            one()
            sent += 1
        proc.join()
        here.close()
        udp.close()
        _check_status(proc.exitcode, "multiprocessing child")
        return done, seconds

    return timed


def _ours_fd_passing(serialization):
    def factory(spec):
        _ours()

        def timed(n, warmup, budget):
            warmup = max(1, warmup)
            child = _ours_fork(spec, "fd_close.py", [], serialization)
            udp = _bound_udp()
            clock = time.perf_counter
            written = done = 0
            t0 = seconds = None
            error = []

            # One in flight: the next send is issued when the previous one is written; the
            # channel holds it until the child's ACK of the previous one.
            def on_written(err):
                nonlocal written, done, t0, seconds
                if err is not None:
                    error.append(f"send failed: {err!r}")
                    return
                written += 1
                if written == warmup:
                    t0 = clock()
                elif written > warmup:
                    done += 1
                    t = clock()
                    if done >= n or t - t0 >= budget:
                        seconds = t - t0
                        child.disconnect()       # waits for the last ACK
                        return
                child.send("s", udp, callback=on_written)

            child.send("s", udp, callback=on_written)
            try:
                _ours_finish(child, error, "receiving")
            finally:
                udp.close()
            if seconds is None:
                raise RuntimeError(f"the channel closed after {done} timed transfers")
            return done, seconds

        return timed

    return factory


impl("fd_passing", "ours_json", timed=True)(_ours_fd_passing("json"))
impl("fd_passing", "ours_advanced", timed=True)(_ours_fd_passing("advanced"))


# -------------------------------------------------------------------------- fork_startup
#
# Timed: from the call that starts the child to the parent holding the child's first message
# (the rows with an IPC channel) or to the child's exit status (`python -c ...`: no channel,
# so the answer is the exit).  Not timed: the reaping and closing that follow a message.

def _timed_each(one):
    """timed() for an ``one() -> seconds`` that times only part of itself."""

    def timed(n, warmup, budget):
        for _ in range(warmup):
            one()
        total = 0.0
        done = 0
        while done < n and (done == 0 or total < budget):
            total += one()
            done += 1
        return done, total

    return timed


def _package_path():
    """The sys.path entry holding child_process (found without importing it)."""
    import importlib.util
    try:
        found = importlib.util.find_spec("child_process")
    except (ImportError, ValueError) as exc:
        raise Unavailable(f"child_process not found: {exc}") from exc
    if found is None or not found.origin:
        raise Unavailable("child_process not found")
    return os.path.dirname(os.path.dirname(found.origin))


def _python_c(code, bare=False):
    def factory(spec):
        exe, env = sys.executable, dict(os.environ)
        argv = [exe, "-c", code]
        if bare:  # no site: no site-packages, no .pth files; child_process's directory only
            argv = [exe, "-S", "-c", code.replace("import child_process",
                                                  f"import sys; sys.path.insert(0, "
                                                  f"{_package_path()!r}); import child_process")]
        clock = time.perf_counter

        def one():
            t0 = clock()
            pid = os.posix_spawn(exe, argv, env)
            _, status = os.waitpid(pid, 0)
            t1 = clock()
            _check_status(status, f"python -c {code!r}")
            return t1 - t0

        return _timed_each(one)

    return factory


impl("fork_startup", "python_pass", timed=True)(_python_c("pass"))
impl("fork_startup", "python_import", timed=True)(_python_c("import child_process"))
impl("fork_startup", "bare_pass", timed=True)(_python_c("pass", bare=True))
impl("fork_startup", "bare_import", timed=True)(_python_c("import child_process", bare=True))


def _mp_ready(conn):
    conn.send("ready")
    conn.close()


@impl("fork_startup", "mp_spawn", timed=True)
def _startup_mp_spawn(spec):
    ctx = _mp_context("spawn")
    clock = time.perf_counter

    def one():
        t0 = clock()
        here, there = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_mp_ready, args=(there,))
        proc.start()
        there.close()
        message = here.recv()
        t1 = clock()
        proc.join()
        here.close()
        if message != "ready":
            raise RuntimeError(f"unexpected message {message!r}")
        _check_status(proc.exitcode, "multiprocessing spawn child")
        return t1 - t0

    return _timed_each(one)


@impl("fork_startup", "ours", timed=True)
def _startup_ours(spec):
    fork = _ours_attr("fork")
    script = os.path.join(PY_CHILDREN, "fork_ready.py")
    clock = time.perf_counter

    def one():
        got = []

        def on_message(message):
            got.append((clock(), message))

        t0 = clock()
        child = fork(script)
        child.on("message", on_message)
        code, sig = child.wait()  # the child exits by itself once its message is written
        if not got:
            raise RuntimeError(f"no message (exit code {code!r}, signal {sig!r})")
        t1, message = got[0]
        if message != "ready":
            raise RuntimeError(f"unexpected message {message!r}")
        if code != 0 or sig is not None:
            raise RuntimeError(f"the child ended with exit code {code!r}, signal {sig!r}")
        return t1 - t0

    return _timed_each(one)


# ------------------------------------------------------------------------------- driver

INFO = {}


def hold_memory(nbytes):
    """Allocate ``nbytes`` and make every page resident (bytearray(n) zero-fills with memset;
    the strided write makes sure of it even where calloc would map untouched zero pages)."""
    if nbytes <= 0:
        return None
    held = bytearray(nbytes)
    held[::PAGE] = b"\x01" * len(range(0, nbytes, PAGE))
    return held


def rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def maxrss():
    """Peak resident size of this process so far, in bytes (ru_maxrss is in KiB on Linux)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def settle():
    """Sleep BENCH_SETTLE seconds before an implementation's warm-up, as the C and Node
    programs do (run.py sets it for the spawning scenarios; see there why)."""
    seconds = float(os.environ.get("BENCH_SETTLE") or 0)
    if seconds > 0:
        time.sleep(seconds)


def measure(op, n, warmup, budget):
    for _ in range(warmup):
        op()
    clock = time.perf_counter
    t0 = t = clock()
    done = 0
    while done < n and (done == 0 or t - t0 < budget):
        op()
        done += 1
        t = clock()
    return done, t - t0


def _import_needed(impls):
    """Import what the implementations to measure need (``impl(needs=...)``), and only that."""
    needed = set()
    for entry in impls:
        needed.update(entry[2])
    for module in needed:
        globals()[module] = __import__(module)


def main(argv):
    spec = json.loads(argv[1])
    group = spec["group"]
    n = int(spec.get("n", 100))
    warmup = int(spec.get("warmup", 0))
    budget = float(spec.get("budget", 1e9))
    # A guard against an implementation that hangs: the runner's own timeout would lose the
    # results of every other implementation measured by this worker.
    limit = float(spec.get("limit", 60 + 5 * budget))
    signal.signal(signal.SIGALRM, _alarm)

    held = hold_memory(int(spec.get("hold", 0)))
    out = {"results": {}, "skipped": {}, "info": INFO, "rss": rss()}

    entries = {}
    for name in spec["impls"]:
        entry = IMPLS.get((group, name))
        if entry is None:
            raise SystemExit(f"unknown implementation {group}/{name}")
        entries[name] = entry
    _import_needed(entries.values())

    for name, (factory, timed, _) in entries.items():
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                op = factory(spec)
                settle()
                if timed:
                    done, seconds = op(n, warmup, budget)
                else:
                    done, seconds = measure(op, n, warmup, budget)
                if done <= 0 or not seconds > 0:
                    raise RuntimeError(f"timed {done} operations in {seconds!r} s")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Unavailable as exc:
            out["skipped"][name] = str(exc)
        except _Timeout:
            out["skipped"][name] = f"no result within {limit:.0f} s"
        except Exception as exc:
            import traceback
            last = traceback.extract_tb(exc.__traceback__)[-1]
            out["skipped"][name] = (f"failed: {type(exc).__name__}: {exc} "
                                    f"({os.path.basename(last.filename)}:{last.lineno})")
        else:
            out["results"][name] = {"value": seconds / done, "n": done, "maxrss": maxrss()}

    del held
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
