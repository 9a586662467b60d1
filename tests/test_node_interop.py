"""IPC with the real ``node`` binary, both ways: SPEC §7 ("a Python parent can talk to a Node.js
child and a Node.js parent to a Python child"), node-ipc-protocol.md §1, §2, §4, §7, §8, §9.

- Python parent, Node child: ``fork(script.js, exec_path=node)`` (or ``spawn`` with ``'ipc'``).
- Node parent, Python child: a Node script run with ``subprocess`` does
  ``fork(child.py, [], {execPath: sys.executable})`` and prints what it saw as one JSON line.

Every test waits for everything it starts (conftest's leak check). Tests marked
``xfail(strict=True, reason="BUG: ...")`` document library bugs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
import time

import pytest

import child_process
from child_process import fork, spawn
from child_process._loop import Timer, get_loop
from ipc_peers import PY, WAIT, record, run_until

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="the node binary is not on PATH: the "
                                                     "interop tests need a real Node.js")

MIB = 1024 * 1024

_counter = [0]


def write(tmp_path, code: str, suffix: str) -> str:
    _counter[0] += 1
    path = tmp_path / f"script_{_counter[0]}{suffix}"
    path.write_text(textwrap.dedent(code))
    return str(path)


def js(tmp_path, code: str) -> str:
    return write(tmp_path, code, ".js")


def pyfile(tmp_path, code: str) -> str:
    return write(tmp_path, PY_PRELUDE + textwrap.dedent(code), ".py")


def fork_node(tmp_path, code: str, reap, **kwargs):
    kwargs.setdefault("exec_path", NODE)
    child = fork(js(tmp_path, code), **kwargs)
    reap(child)
    return child


#: A Node child that echoes every message; 'bye' makes it disconnect.
NODE_ECHO = """\
process.on('message', (m) => {
  if (m === 'bye') process.disconnect();
  else process.send(m);
});
"""

#: Python children under a Node parent start with this.
PY_PRELUDE = """\
import child_process, hashlib, json, os, sys
p = child_process.parent
"""


# Note: in Node 20 a parent that calls ``child.disconnect()`` itself never gets 'close' for that
# child (``_disconnect`` does not call ``maybeClose``; verified with a Node child too), so the Node
# parents below report on 'exit' in that case.

def node_parent(tmp_path, parent_js: str, child_py: str, *args: str, timeout: float = 40) -> dict:
    """Run a Node parent script (argv: PY, child script, args); return its last stdout JSON line."""
    parent = js(tmp_path, parent_js)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_CHANNEL")}
    proc = subprocess.run([NODE, parent, PY, pyfile(tmp_path, child_py), *args], env=env,
                          capture_output=True, timeout=timeout)
    lines = [line for line in proc.stdout.decode().split("\n") if line.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.returncode, proc.stdout[-2000:],
                                            proc.stderr[-4000:])
    return json.loads(lines[-1])


# =================================================================================================
# Python parent, Node child
# =================================================================================================

def test_node_child_messages_reach_python(tmp_path, reap):
    child = fork_node(tmp_path, """\
        process.send({a: 1});
        process.send('str\\n\\u00e9\\u2028"q"');
        process.send(42);
        process.send(true);
        process.send(null);
        process.send([1, 'x']);
        process.send({u: undefined, d: new Date(0), n: NaN, big: 1e21});
        process.send({cmd: 'NODE_X', z: 1});
        process.send({cmd: 'NODE_'});
        process.send('\\ud800 lone');
        """, reap, exec_path="node")             # found on PATH
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert events == [
        ("message", {"a": 1}), ("message", 'str\n\u00e9\u2028"q"'), ("message", 42),
        ("message", True), ("message", None), ("message", [1, "x"]),
        ("message", {"d": "1970-01-01T00:00:00.000Z", "n": None, "big": 1e21}),
        ("internal", {"cmd": "NODE_X", "z": 1}), ("message", {"cmd": "NODE_"}),
        ("message", "\ud800 lone"),
        ("disconnect",), ("exit", 0, None), ("close", 0, None)]


PY_TO_NODE = [
    ({"hello": "w\u00f6rld"}, "message"),
    ({"cmd": "NODE_FOO"}, "internal"),
    ({"cmd": "NODE_"}, "message"),
    ({"x": "\u00e9"}, "message"),
    ("\u2028\u2029 \U0001F600 \u65e5\u672c", "message"),
    ("\ud800", "message"),
    ([1.5, None, True, {"n": -0.0}], "message"),
    (b"ab", "message"),
]


def test_python_messages_reach_node(tmp_path, reap):
    child = fork_node(tmp_path, """\
        const events = [];
        const record = (kind) => (m) => {
          if (kind === 'message' && m && m.last) {
            process.send({events, types: events.map(([k, v]) => typeof v),
                          lengths: events.map(([k, v]) => typeof v === 'string' ? v.length : -1)});
          } else events.push([kind, m]);
        };
        process.on('message', record('message'));
        process.on('internalMessage', record('internal'));
        process.on('disconnect', () => console.log('node: disconnect'));
        """, reap, silent=True)
    out = []
    child.stdout.on("data", out.append)
    events = record(child)
    for message, _ in PY_TO_NODE:
        assert child.send(message) is True
    child.send({"last": True})
    assert run_until(lambda: any(e[0] == "message" for e in events))
    report = events[0][1]
    expected = [[kind, message] for message, kind in PY_TO_NODE]
    expected[-1][1] = {"type": "Buffer", "data": [97, 98]}
    expected[-2][1] = [1.5, None, True, {"n": 0}]      # JSON.stringify(-0) is "0"
    assert report["events"] == expected
    assert report["types"] == ["object"] * 4 + ["string", "string", "object", "object"]
    assert report["lengths"][4:6] == [len("\u2028\u2029 \U0001F600 \u65e5\u672c".encode(
        "utf-16-le")) // 2, 1]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    assert b"".join(out) == b"node: disconnect\n"
    assert [e[0] for e in events[1:]] in (["disconnect", "exit", "close"],
                                          ["exit", "disconnect", "close"])


def test_node_child_disconnects(tmp_path, reap):
    child = fork_node(tmp_path, """\
        process.send('before');
        process.disconnect();
        setTimeout(() => {}, 300);               // alive a little after disconnecting
        """, reap)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert events[0] == ("message", "before")
    assert events.count(("disconnect",)) == 1
    assert events.index(("disconnect",)) < events.index(("exit", 0, None))
    assert events[-1] == ("close", 0, None)
    assert child.connected is False


def test_five_megabytes_both_ways_with_node(tmp_path, reap):
    child = fork_node(tmp_path, NODE_ECHO, reap)
    text = "\u00e9\u20ac\U0001F600\u2028xy" * 400_000
    message = {"blob": text, "list": list(range(1000))}
    assert len(json.dumps(message, ensure_ascii=False).encode()) > 5 * MIB
    got = []
    child.on("message", got.append)
    child.send(message)
    assert run_until(lambda: got)
    assert len(got[0]["blob"]) == len(text)
    assert hashlib.sha256(got[0]["blob"].encode()).digest() == \
        hashlib.sha256(text.encode()).digest()
    assert got[0]["list"] == list(range(1000))
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_non_ascii_and_line_separators_round_trip_through_node(tmp_path, reap):
    child = fork_node(tmp_path, NODE_ECHO, reap)
    values = ["\u2028", "\u2029", "a\u2028b\nc", "\u00e9\u00df", "\U0001F600", "\u65e5\u672c\u8a9e",
              "\x00\x01\x1f", "\ud800", "\udfff x", "\\", '"', {"\u2028key": "\u00e9"}]
    got = []
    child.on("message", got.append)
    for value in values:
        child.send(value)
    assert run_until(lambda: len(got) == len(values))
    assert got == values
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_backpressure_node_child_while_python_does_not_read(tmp_path, reap):
    child = fork_node(tmp_path, """\
        const r = [];
        for (let i = 0; i < 600; i++) r.push(process.send({i, pad: 'x'.repeat(1000)}));
        process.send({first_false: r.indexOf(false), falses: r.filter((x) => !x).length});
        """, reap)
    time.sleep(1.0)                                  # the loop is not run: nothing is read
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    report = got[-1]
    assert 50 < report["first_false"] < 600          # Node measured #222 (protocol doc §8)
    assert report["falses"] == 600 - report["first_false"]
    assert [m["i"] for m in got[:-1]] == list(range(600))


def test_backpressure_python_parent_to_a_node_child_not_reading(tmp_path, reap):
    child = fork_node(tmp_path, """\
        const t = Date.now(); while (Date.now() - t < 1000);    // not reading for 1 s
        let n = 0, ordered = true;
        process.on('message', (m) => {
          if (m === 'end') process.send({n, ordered});
          else if (m === 'bye') process.disconnect();
          else { if (m.i !== n) ordered = false; n++; }
        });
        """, reap)
    callbacks = []
    results = [child.send({"i": i, "pad": "x" * 1000}, callback=callbacks.append)
               for i in range(600)]
    assert results[0] is True and False in results
    child.send("end")
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got == [{"n": 600, "ordered": True}]
    assert callbacks == [None] * 600
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_50000_messages_each_way_with_a_node_child(tmp_path, reap):
    child = fork_node(tmp_path, """\
        let next = 0, bad = null;
        process.on('message', (m) => {
          if (m === 'end') {
            process.send({next, bad});
            for (let i = 0; i < 50000; i++) process.send(i);
            process.send('done');
          } else if (m === 'bye') process.disconnect();
          else { if (m !== next && bad === null) bad = [next, m]; next++; }
        });
        """, reap)
    got = []
    child.on("message", got.append)
    for i in range(50_000):
        child.send(i)
    child.send("end")
    assert run_until(lambda: got and got[-1] == "done", 40)
    assert got[0] == {"next": 50_000, "bad": None}
    assert got[1:-1] == list(range(50_000))
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_node_child_without_listener_exits_at_once(tmp_path, reap):
    child = fork_node(tmp_path, "process.send(typeof process.channel);\n", reap)
    got = []
    child.on("message", got.append)
    start = time.monotonic()
    assert child.wait(WAIT) == (0, None)
    assert time.monotonic() - start < 5.0
    assert got == ["object"]


def test_python_parent_run_waits_for_disconnect_from_node(tmp_path, reap):
    child = fork_node(tmp_path, NODE_ECHO, reap)
    child.unref()
    timer = Timer(get_loop(), child.disconnect)
    timer.start(1.0)
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start >= 0.95
    child.ref()
    assert child.wait(WAIT) == (0, None)


NODE_CHANNEL_REPORT = """\
process.send({fd: process.channel.fd, env: Object.keys(process.env).filter((k) => k.startsWith('NODE_CHANNEL'))});
process.on('message', (m) => { if (m === 'bye') process.disconnect(); else process.send(m); });
"""


@pytest.mark.parametrize("stdio, fd", [
    (["ipc", "inherit", "inherit"], 0),
    (["inherit", "inherit", "inherit", "ignore", "ipc"], 4),
    (None, 3),
])
def test_node_child_finds_the_channel_at_any_index(tmp_path, reap, stdio, fd):
    path = js(tmp_path, NODE_CHANNEL_REPORT)
    child = (fork(path, exec_path=NODE) if stdio is None else spawn(NODE, [path], stdio=stdio))
    reap(child)
    got = []
    child.on("message", got.append)
    child.send({"\u00e9": [1]})
    assert run_until(lambda: len(got) == 2)
    assert got == [{"fd": fd, "env": []}, {"\u00e9": [1]}]
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_user_env_channel_variables_do_not_reach_a_node_child(tmp_path, reap):
    """Node uses the *first* NODE_CHANNEL_FD: a stale one in the user env must be removed."""
    env = dict(os.environ, NODE_CHANNEL_FD="1", NODE_CHANNEL_SERIALIZATION_MODE="advanced")
    child = fork(js(tmp_path, NODE_CHANNEL_REPORT), exec_path=NODE, env=env)
    reap(child)
    got = []
    child.on("message", got.append)
    child.send([1, "two"])
    assert run_until(lambda: len(got) == 2)
    assert got == [{"fd": 3, "env": []}, [1, "two"]]
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# Node parent, Python child
# =================================================================================================

def test_node_parent_python_child_messages_both_ways(tmp_path):
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        const events = [];
        c.on('message', (m) => {
          events.push(['message', m]);
          if (m === 'done') c.send('bye');
        });
        c.on('internalMessage', (m) => events.push(['internal', m]));
        c.on('disconnect', () => events.push(['disconnect']));
        c.on('exit', (code, sig) => events.push(['exit', code, sig]));
        c.on('close', (code, sig) => {
          events.push(['close', code, sig]);
          console.log(JSON.stringify({events}));
        });
        c.send({hello: 'w\\u00f6rld', sep: '\\u2028'});
        c.send({cmd: 'NODE_FOO'});
        c.send({cmd: 'NODE_'});
        c.send([1, null, true, 1.5]);
        c.send('\\ud83d\\ude00');
        c.send('report');
        """, """\
        with open("/proc/self/environ", "rb") as f:
            initial = sorted(e.decode() for e in f.read().split(b"\\0")
                             if e.startswith(b"NODE_CHANNEL"))
        p.send({"environ": sorted(k for k in os.environ if k.startswith("NODE_CHANNEL")),
                "initial": initial, "fd": p.channel.fileno()})
        p.send({"cmd": "NODE_BAR", "x": "\\u00e9"})
        def on_message(m):
            if m == "report":
                p.send("done")
            elif m == "bye":
                p.disconnect()
            else:
                p.send(["echo", m])
        p.on("message", on_message)
        p.on("internalMessage", lambda m: p.send(["internal", m]))
        """)
    assert result["events"] == [
        ["message", {"environ": [], "fd": 3,
                     "initial": ["NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json"]}],
        ["internal", {"cmd": "NODE_BAR", "x": "\u00e9"}],
        ["message", ["echo", {"hello": "w\u00f6rld", "sep": "\u2028"}]],
        ["message", ["internal", {"cmd": "NODE_FOO"}]],
        ["message", ["echo", {"cmd": "NODE_"}]],
        ["message", ["echo", [1, None, True, 1.5]]],
        ["message", ["echo", "\U0001F600"]],
        ["message", "done"],
        ["disconnect"], ["exit", 0, None], ["close", 0, None]]


def test_node_parent_disconnects_python_child(tmp_path):
    marker = tmp_path / "child-saw-disconnect"
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const c = fork(process.argv[3], [process.argv[4]], { execPath: process.argv[2] });
        const events = [];
        c.on('message', (m) => { events.push(m); c.disconnect(); events.push(c.connected); });
        c.on('disconnect', () => events.push('disconnect'));
        c.on('exit', (code, sig) => {
          events.push([code, sig]);
          console.log(JSON.stringify({events}));
        });
        c.send('hello');
        """, """\
        def on_disconnect():
            with open(sys.argv[1], "w") as f:
                f.write("disconnect %s %s" % (p.connected, p.channel))
        p.on("disconnect", on_disconnect)
        p.on("message", lambda m: p.send(["got", m]))
        """, str(marker))
    assert result["events"][:3] == [["got", "hello"], False, "disconnect"]
    assert result["events"][3] == [0, None]
    assert marker.read_text() == "disconnect False None"


def test_node_parent_large_and_multibyte_messages(tmp_path):
    """Node's send-utf8 test (800 000 'ß') and 5 MB both ways through a Python child."""
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const crypto = require('crypto');
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        const sha = (s) => crypto.createHash('sha256').update(s, 'utf8').digest('hex');
        const big = 'ß'.repeat(800000);
        const mixed = 'é€😀\\u2028xy'.repeat(400000);
        const out = [];
        c.on('message', (m) => {
          out.push(m.echo !== undefined ? [m.len, m.sha, m.echo === mixed] : [m.len, m.sha]);
          if (out.length === 2) c.disconnect();
        });
        c.on('exit', (code) => console.log(JSON.stringify({out, code,
            expected: [[big.length, sha(big)], [mixed.length, sha(mixed)]]})));
        c.send(big);
        c.send(mixed);
        """, """\
        def on_message(m):
            reply = {"len": len(m.encode("utf-16-le")) // 2,
                     "sha": hashlib.sha256(m.encode()).hexdigest()}
            if m.startswith("\\u00e9"):
                reply["echo"] = m
            p.send(reply)
        p.on("message", on_message)
        """)
    assert result["code"] == 0
    expected = result["expected"]
    assert expected[0][0] == 800_000
    assert result["out"] == [expected[0], expected[1] + [True]]


def test_node_parent_backpressure_from_python_child(tmp_path):
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        const t = Date.now(); while (Date.now() - t < 1500);   // not reading
        const ids = [];
        let report = null;
        c.on('message', (m) => { if (m.report) report = m.report; else ids.push(m.i); });
        c.on('close', (code) => {
          const ordered = ids.every((v, i) => v === i);
          console.log(JSON.stringify({code, n: ids.length, ordered, report}));
        });
        """, """\
        results = [p.send({"i": i, "pad": "x" * 1000}) for i in range(600)]
        p.send({"report": [results[0], results.index(False) if False in results else None,
                           results.count(False)]})
        """)
    assert (result["code"], result["n"], result["ordered"]) == (0, 600, True)
    first, first_false, falses = result["report"]
    assert first is True
    assert first_false is not None and 50 < first_false < 600
    assert falses == 600 - first_false


def test_node_parent_50000_messages_each_way(tmp_path):
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        let next = 0, bad = null, report = null;
        c.on('message', (m) => {
          if (typeof m === 'number') { if (m !== next && bad === null) bad = [next, m]; next++; }
          else { report = m; c.disconnect(); }
        });
        c.on('exit', (code) => console.log(JSON.stringify({code, next, bad, report})));
        for (let i = 0; i < 50000; i++) c.send(i);
        c.send('end');
        """, """\
        state = {"next": 0, "bad": None}
        def on_message(m):
            if m == "end":
                for i in range(50000):
                    p.send(i)
                p.send(state)
                return
            if m != state["next"] and state["bad"] is None:
                state["bad"] = [state["next"], m]
            state["next"] += 1
        p.on("message", on_message)
        """)
    assert result == {"code": 0, "next": 50_000, "bad": None,
                      "report": {"next": 50_000, "bad": None}}


def test_python_child_without_listener_exits_under_node(tmp_path):
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const start = Date.now();
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        const got = [];
        c.on('message', (m) => got.push(m));
        c.on('exit', (code, sig) => console.log(JSON.stringify({code, sig, got,
                                                                 ms: Date.now() - start})));
        """, """\
        p.send(p is not None)
        """)
    assert (result["code"], result["sig"], result["got"]) == (0, None, [True])
    assert result["ms"] < 5000


def test_node_parent_ipc_at_fd_5_for_a_python_child(tmp_path):
    result = node_parent(tmp_path, """\
        const { spawn } = require('child_process');
        const c = spawn(process.argv[2], [process.argv[3]],
                        { stdio: ['inherit', 'inherit', 'inherit', 'ignore', 'ignore', 'ipc'] });
        const got = [];
        c.on('message', (m) => { got.push(m); if (got.length === 2) c.disconnect(); });
        c.on('exit', (code) => console.log(JSON.stringify({code, got})));
        c.send({ping: '\\u00e9'});
        """, """\
        p.send({"fd": p.channel.fileno(),
                "environ": sorted(k for k in os.environ if k.startswith("NODE_CHANNEL"))})
        p.on("message", lambda m: p.send(m))
        """)
    assert result == {"code": 0, "got": [{"fd": 5, "environ": []}, {"ping": "\u00e9"}]}


def test_messages_before_disconnect_reach_a_node_child(tmp_path, reap):
    child = fork_node(tmp_path, """\
        let n = 0, ordered = true;
        process.on('message', (m) => { if (m.i !== n) ordered = false; n++; });
        process.on('disconnect', () => console.log(JSON.stringify({n, ordered})));
        """, reap, stdio=["ignore", "pipe", "inherit", "ipc"])
    out = []
    child.stdout.on("data", out.append)
    for i in range(2000):
        child.send({"i": i, "pad": "p" * 1000})
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    assert json.loads(b"".join(out)) == {"n": 2000, "ordered": True}


def test_messages_before_a_python_child_disconnects_reach_node(tmp_path):
    result = node_parent(tmp_path, """\
        const { fork } = require('child_process');
        const c = fork(process.argv[3], [], { execPath: process.argv[2] });
        let n = 0, ordered = true;
        c.on('message', (m) => { if (m.i !== n) ordered = false; n++; });
        c.on('disconnect', () => { console.log(JSON.stringify({n, ordered, connected: c.connected})); });
        """, """\
        for i in range(2000):
            p.send({"i": i, "pad": "p" * 1000})
        p.disconnect()
        """)
    assert result == {"n": 2000, "ordered": True, "connected": False}
