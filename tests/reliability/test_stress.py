"""Stress (issue 9): many sequential spawns, many concurrent children with pipes, a great many
IPC messages, many sockets passed, and memory that stays steady.

Each test runs in a normal size (part of the ordinary run) and a release size (``--long`` or
``CHILD_PROCESS_LONG_TESTS=1``).  Every test checks, at its end, that no descriptor and no zombie
is left (besides the autouse leak check) and that RSS (from /proc/self/statm, after a warm-up)
grew less than a generous bound; it records what it measured (``figures``) and never asserts a
speed.
"""

from __future__ import annotations

import gc
import socket

import pytest

from child_process import exec, fork, spawn, spawn_sync

from ._util import (PRELUDE, WAIT, Stopwatch, fd_count, rss_kib, run_until, script,
                    zombies_of)


def sizes(normal: int, long: int):
    return [pytest.param(normal, id=str(normal)),
            pytest.param(long, id=str(long), marks=pytest.mark.long)]


class Baseline:
    """Descriptors, zombies and RSS before a stress run; ``check()`` after it."""

    def __init__(self):
        gc.collect()
        self.fds = fd_count()
        self.rss = rss_kib()

    def check(self, rss_bound_kib: int) -> dict:
        gc.collect()
        growth = rss_kib() - self.rss
        assert fd_count() == self.fds, "descriptors left behind"
        assert zombies_of() == []
        assert growth < rss_bound_kib, f"RSS grew {growth} KiB"
        return {"rss_growth_kib": growth, "fds_after_minus_before": fd_count() - self.fds,
                "zombies": 0}


def _warm_up(tmp_path=None):
    for i in range(20):
        c = spawn("echo", [str(i)])
        c.stdout.on("data", lambda d: None)
        c.wait(WAIT)
    spawn_sync("true")


@pytest.mark.parametrize("n", sizes(1000, 10000))
def test_sequential_spawns(n, figures):
    """``n`` spawns one after the other, each with its three pipes, output checked."""
    from conftest import hang_guard
    _warm_up()
    base = Baseline()
    clock = Stopwatch()
    with hang_guard([], seconds=60 + n * 0.05):
        for i in range(n):
            child = spawn("echo", [str(i)])
            out = []
            child.stdout.on("data", out.append)
            assert child.wait(WAIT) == (0, None)
            assert b"".join(out) == f"{i}\n".encode()
    seconds = clock()
    figures(spawns=n, seconds=seconds, spawns_per_second=round(n / seconds),
            **base.check(32 * 1024))


@pytest.mark.parametrize("n", sizes(1000, 10000))
def test_sequential_spawn_sync(n, figures):
    _warm_up()
    base = Baseline()
    clock = Stopwatch()
    for i in range(n):
        r = spawn_sync("echo", [str(i)])
        assert (r.status, r.stdout, r.error) == (0, f"{i}\n".encode(), None)
    seconds = clock()
    figures(spawns=n, seconds=seconds, spawns_per_second=round(n / seconds),
            **base.check(32 * 1024))


@pytest.mark.parametrize("n", sizes(200, 500))
def test_concurrent_children_with_pipes(n, figures):
    """``n`` cat children alive at once, each fed 4 KiB of its own through stdin and echoing it
    on stdout; all exit 0 and every byte comes back to the right child."""
    from conftest import hang_guard
    _warm_up()
    base = Baseline()
    clock = Stopwatch()
    spawned = []
    with hang_guard(spawned, seconds=120):
        outs = []
        for _ in range(n):
            child = spawn("cat")
            spawned.append(child)
            out = []
            child.stdout.on("data", out.append)
            outs.append(out)
        peak_fds = fd_count()
        alive = sum(1 for c in spawned if c.exit_code is None)
        for i, child in enumerate(spawned):
            child.stdin.end(f"{i:08d}".encode() * 512)
        for i, child in enumerate(spawned):
            assert child.wait(WAIT) == (0, None)
            assert b"".join(outs[i]) == f"{i:08d}".encode() * 512
        spawned.clear()
    seconds = clock()
    figures(children=n, alive_at_once=alive, peak_descriptors=peak_fds, seconds=seconds,
            bytes_through=2 * n * 4096, **base.check(64 * 1024))
    assert alive == n


#: Echoes every message; "bye" disconnects.  Checks the order of what it gets ({"i": k}).
ORDERED_ECHO = PRELUDE + """\
expected = [0]
def on_message(m):
    if m == "bye":
        p.disconnect()
        return
    if m["i"] != expected[0]:
        sys.stderr.write("OUT OF ORDER %r expected %r\\n" % (m, expected[0]))
        os._exit(3)
    expected[0] += 1
    p.send(m)
p.on("message", on_message)
"""


def _pump_messages(child, n: int, payload: str) -> int:
    """Send ``n`` messages, honouring backpressure (when send() says False, run the loop until
    that message's callback says it reached the kernel), and check the echoes' order as they
    come (nothing is kept: a million messages must not cost a million objects)."""
    state = {"next": 0, "bad": None}

    def on_echo(m):
        if m["i"] != state["next"] and state["bad"] is None:
            state["bad"] = (m["i"], state["next"])
        state["next"] += 1
    child.on("message", on_echo)
    for i in range(n):
        if not child.send({"i": i, "p": payload}):
            # the message just queued is the backlog's tail: flush until it has gone out
            assert run_until(lambda: child.channel._outbox.queued == 0, WAIT)
    assert run_until(lambda: state["next"] == n or state["bad"] is not None, 120)
    assert state["bad"] is None, f"echo {state['bad'][0]} arrived where {state['bad'][1]} was due"
    return state["next"]


@pytest.mark.parametrize("mode, n", [
    pytest.param("json", 100_000, id="json-100000"),
    pytest.param("advanced", 20_000, id="advanced-20000"),
    pytest.param("pickle", 20_000, id="pickle-20000"),
    pytest.param("json", 1_000_000, id="json-1000000", marks=pytest.mark.long),
    pytest.param("advanced", 1_000_000, id="advanced-1000000", marks=pytest.mark.long),
])
def test_ipc_messages_in_order_both_ways(tmp_path, mode, n, figures):
    """``n`` messages parent -> child and the same ``n`` echoed back: the child checks the order
    of what it receives (it exits 3 on a gap), the parent checks the order of the echoes;
    nothing lost, nothing duplicated."""
    from conftest import hang_guard
    _warm_up()
    base = Baseline()
    clock = Stopwatch()
    spawned = []
    with hang_guard(spawned, seconds=60 + n / 1000):
        child = fork(script(tmp_path, ORDERED_ECHO), serialization=mode)
        spawned.append(child)
        assert _pump_messages(child, n, "x" * 16) == n
        child.send("bye")
        assert child.wait(WAIT) == (0, None)
        spawned.clear()
    seconds = clock()
    figures(mode=mode, messages=2 * n, seconds=seconds, messages_per_second=round(2 * n / seconds),
            **base.check(96 * 1024))


#: For every socket received: write "<i>" on it, close it, then report {"got": i}.  At "bye":
#: report its descriptor count (it must not have kept any) and disconnect.
HANDLE_TAKER = PRELUDE + """\
start = len(os.listdir("/proc/self/fd"))
def on_message(m, handle):
    if m == "bye":
        p.send({"fds_grew": len(os.listdir("/proc/self/fd")) - start})
        p.disconnect()
        return
    handle.setblocking(True)
    handle.sendall(str(m["i"]).encode())
    handle.close()
    p.send({"got": m["i"]})
p.on("message", on_message)
"""


@pytest.mark.parametrize("n", sizes(1000, 10000))
def test_handles_passed(tmp_path, n, figures):
    """``n`` connected sockets sent with ``child.send(msg, sock)`` (64 in flight): each arrives
    live in the child (it writes its number on it), the child closes it, the sender's copy is
    closed after the ACK (our end then reads EOF), and neither process keeps a descriptor."""
    from conftest import hang_guard
    _warm_up()
    base = Baseline()
    clock = Stopwatch()
    spawned = []
    with hang_guard(spawned, seconds=60 + n / 100):
        child = fork(script(tmp_path, HANDLE_TAKER))
        spawned.append(child)
        ours = {}
        confirmed = []
        report = []

        def on_message(m):
            if "got" in m:
                confirmed.append(m["got"])
            else:
                report.append(m)
        child.on("message", on_message)
        sent = checked = 0
        window = 64
        while checked < n:
            while sent < n and sent - len(confirmed) < window:
                theirs, mine = socket.socketpair()
                ours[sent] = (mine, theirs)
                child.send({"i": sent}, theirs)
                sent += 1
            assert run_until(lambda checked=checked: len(confirmed) > checked, WAIT)
            while checked < len(confirmed):
                i = confirmed[checked]
                mine, theirs = ours.pop(i)
                mine.settimeout(WAIT)
                assert mine.recv(64) == str(i).encode()
                assert mine.recv(64) == b""            # both other copies are closed
                assert theirs.fileno() == -1            # the library closed the sent socket
                mine.close()
                checked += 1
        assert confirmed == list(range(n))
        child.send("bye")
        assert run_until(lambda: report, WAIT)
        assert child.wait(WAIT) == (0, None)
        spawned.clear()
    seconds = clock()
    assert report == [{"fds_grew": 0}]
    figures(handles=n, seconds=seconds, handles_per_second=round(n / seconds),
            **base.check(32 * 1024))


_MIXED_ECHO = PRELUDE + 'p.on("message", lambda m, h=None: (h.close() if h else None, ' \
    'p.disconnect() if m == "bye" else p.send(m)))\n'


def _mixed_round(path: str) -> int:
    """One round of everything: spawns with pipes, exec, spawn_sync, IPC, a handle."""
    started = 0
    for _ in range(20):
        c = spawn("cat")
        got = []
        c.stdout.on("data", got.append)
        c.stdin.end(b"z" * 10000)
        assert c.wait(WAIT) == (0, None) and b"".join(got) == b"z" * 10000
        started += 1
    res = []
    for i in range(5):
        exec(f"echo {i}", callback=lambda e, o, s: res.append(o)).wait(WAIT)
        r = spawn_sync("sh", ["-c", "echo x; exit 2"], input=b"q" * 1000)
        assert r.status == 2
        started += 2
    assert res == [f"{i}\n" for i in range(5)]
    child = fork(path, serialization="advanced")
    back = []
    child.on("message", back.append)
    for i in range(2000):
        child.send({"i": i, "b": b"y" * 100})
    a, b = socket.socketpair()
    child.send("sock", a)
    assert run_until(lambda: len(back) == 2001, WAIT)
    b.close()
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    return started + 1


@pytest.mark.parametrize("rounds", sizes(6, 60))
def test_memory_steady_over_a_mixed_workload(tmp_path, rounds, figures):
    """After two warm-up rounds, ``rounds`` more of a mixed workload (spawns with pipes, exec,
    spawn_sync, 4000 IPC messages, a socket) leave RSS within a bound and no descriptor open;
    RSS is sampled after each round."""
    path = script(tmp_path, _MIXED_ECHO)
    _mixed_round(path)
    _mixed_round(path)
    base = Baseline()
    samples = []
    started = 0
    clock = Stopwatch()
    for _ in range(rounds):
        started += _mixed_round(path)
        gc.collect()
        samples.append(rss_kib())
    result = base.check(16 * 1024)
    # not growing steadily: the second half grew less than the bound too
    half = samples[len(samples) // 2]
    assert samples[-1] - half < 8 * 1024, samples
    figures(rounds=rounds, processes=started, seconds=clock(), rss_kib_first=samples[0],
            rss_kib_last=samples[-1], **result)
