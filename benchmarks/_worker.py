"""Python side of the benchmark suite: one worker process measures one or more implementations.

The runner (``run.py``) starts this file as a fresh ``python`` process for every measurement
and passes one JSON argument::

    {"group": "spawn", "impls": ["popen", ...], "n": 1000, "warmup": 10,
     "budget": 3.0, "hold": 0, "k": 200}

* ``group`` picks the family of operations (``spawn``: one spawn + wait of ``/bin/true``;
  ``concurrent``: one batch of ``k`` children started at once, then all waited for;
  ``capture``: run the child ``child`` (an argv list) and capture all its stdout, which must
  be exactly ``nbytes`` bytes).
* ``impls`` are measured one after the other, in the order given (the runner rotates it).
* each implementation runs ``warmup`` untimed operations, then timed ones until ``n`` are done
  or ``budget`` seconds have passed (at least one), and reports the mean time of one operation.
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

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings

TRUE = "/bin/true"
PAGE = os.sysconf("SC_PAGESIZE")


class Unavailable(Exception):
    """This implementation cannot be measured here; the message says why."""


IMPLS = {}


def impl(group, name):
    """Register ``factory(spec) -> op``: ``op()`` performs one operation, raising on failure."""

    def register(factory):
        IMPLS[(group, name)] = factory
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
        raise Unavailable(f"child_process not importable ({type(exc).__name__}: {exc})")
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


@impl("spawn", "popen")
def _spawn_popen(spec):
    def op():
        _check_status(subprocess.Popen([TRUE]).wait())

    return op


@impl("spawn", "run")
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
        raise Unavailable(f"no fork start method: {exc}")

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

@impl("concurrent", "popen")
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


@impl("concurrent", "asyncio_default")
def _conc_asyncio_default(spec):
    INFO["asyncio default child watcher"] = _default_watcher_name()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return _asyncio_op(spec["k"], loop)


@impl("concurrent", "asyncio_pidfd")
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
        raise Unavailable(f"pidfd_open fails here: {exc}")
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


@impl("capture", "run")
def _capture_run(spec):
    child, PIPE = spec["child"], subprocess.PIPE

    def op():
        proc = subprocess.run(child, stdout=PIPE)
        _check_capture(proc.stdout, spec, proc.returncode)

    return op


@impl("capture", "communicate")
def _capture_communicate(spec):
    child, PIPE = spec["child"], subprocess.PIPE

    def op():
        proc = subprocess.Popen(child, stdout=PIPE)
        out, _ = proc.communicate()
        _check_capture(out, spec, proc.returncode)

    return op


@impl("capture", "asyncio")
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

    for name in spec["impls"]:
        factory = IMPLS.get((group, name))
        if factory is None:
            raise SystemExit(f"unknown implementation {group}/{name}")
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                op = factory(spec)
                done, seconds = measure(op, n, warmup, budget)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Unavailable as exc:
            out["skipped"][name] = str(exc)
        except _Timeout:
            out["skipped"][name] = f"no result within {limit:.0f} s"
        except Exception as exc:
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
