"""Handle passing with the real ``node`` (issue 7, node-ipc-protocol.md §6): a Python parent
passes a listening server, a connected socket and a UDP socket to a Node child that uses them;
a Node parent passes a server and an accepted connection (``pauseOnConnect``) to a Python child
that answers on it. Both 'json' and 'advanced'. Node's stderr must stay empty.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from child_process import fork
from child_process._loop import get_loop

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="the node binary is not on PATH: "
                                "handle-passing interop needs a real Node.js")
PY = sys.executable
WAIT = 20.0
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
MODES = ["json", "advanced"]


def write(tmp_path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def run_until(cond, timeout: float = WAIT) -> bool:
    return get_loop().run_until(cond, timeout)


NODE_CHILD = """\
const net = require('net');
const kept = [];
process.on('message', (m, h) => {
  if (m === 'server') {
    kept.push(h);
    h.on('connection', (c) => c.end('served by node\\n'));
    process.send({ok: 'server', type: h.constructor.name, listening: h.listening});
  } else if (m === 'socket') {
    h.end('hello from node\\n');
    process.send({ok: 'socket', type: h.constructor.name, remote: h.remotePort});
  } else if (m === 'udp') {
    kept.push(h);
    h.on('message', (d, rinfo) => h.send(Buffer.from(d.toString().toUpperCase()),
                                         rinfo.port, rinfo.address));
    process.send({ok: 'udp', type: h.constructor.name, port: h.address().port});
  } else if (m === 'bye') {
    for (const k of kept) k.close();
    process.disconnect();
  }
});
"""


@pytest.mark.parametrize("mode", MODES)
def test_python_parent_passes_server_socket_and_udp_to_node(tmp_path, mode):
    child = fork(write(tmp_path, "child.js", NODE_CHILD), exec_path=NODE, serialization=mode,
                 stdio=["ignore", "ignore", "pipe", "ipc"])
    err = []
    child.stderr.on("data", err.append)
    got = []
    child.on("message", got.append)
    srv = socket.create_server(("127.0.0.1", 0))
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        # three handles back to back: the second and third wait for Node's ACKs
        assert child.send("server", srv) is True
        assert child.send("socket", accepted) is True
        assert child.send("udp", udp) is False
        assert run_until(lambda: len(got) == 3)
        assert got[0] == {"ok": "server", "type": "Server", "listening": True}
        assert got[1] == {"ok": "socket", "type": "Socket", "remote": client.getsockname()[1]}
        assert got[2] == {"ok": "udp", "type": "Socket", "port": udp.getsockname()[1]}
        assert accepted.fileno() == -1              # acknowledged: the sender's copy is closed
        assert srv.fileno() >= 0 and udp.fileno() >= 0
        with socket.create_connection(srv.getsockname(), timeout=WAIT) as c:
            data = b""
            while not data.endswith(b"\n"):
                chunk = c.recv(100)
                assert chunk
                data += chunk
            assert data == b"served by node\n"
        client.settimeout(WAIT)
        data = b""
        while True:
            chunk = client.recv(100)
            if not chunk:
                break
            data += chunk
        assert data == b"hello from node\n"
        client.close()                              # Node's half-closed socket ends with it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(WAIT)
            u.sendto(b"ping", udp.getsockname())
            assert u.recvfrom(100)[0] == b"PING"
        child.send("bye")
        assert child.wait(WAIT) == (0, None)
    finally:
        for s in (srv, client, accepted, udp):
            s.close()
        if child.exit_code is None and child.signal_code is None:
            child.kill("SIGKILL")
            child.wait(WAIT)
    assert b"".join(err) == b""


NODE_PARENT = """\
const {fork} = require('child_process');
const net = require('net');
const [py, childPy, mode] = process.argv.slice(2);
const child = fork(childPy, [], {execPath: py, serialization: mode,
                                 stdio: ['ignore', 'inherit', 'pipe', 'ipc']});
let childErr = '';
child.stderr.on('data', (d) => childErr += d);
const result = {got: []};
function read(sock, cb) {
  let data = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => data += d);
  sock.on('end', () => cb(data));
}
const shared = net.createServer();
const paused = net.createServer({pauseOnConnect: true}, (conn) => {
  child.send('conn', conn);
  result.parentCopyDestroyedLater = conn;
});
child.on('message', (m) => {
  result.got.push(m);
  if (m === 'ready-server') {
    const port = shared.address().port;
    shared.close();                  // only the child accepts from now on
    child.send('accept');
    read(net.connect(port, '127.0.0.1'), (d) => { result.server = d; next(); });
  } else if (m && m.counts) {
    result.counts = m.counts;
  }
});
function next() {
  paused.listen(0, '127.0.0.1', () => {
    const c = net.connect(paused.address().port, '127.0.0.1');
    c.write('question\\n');
    read(c, (d) => {
      result.conn = d;
      result.parentCopy = result.parentCopyDestroyedLater._handle === null;  // detached
      delete result.parentCopyDestroyedLater;
      paused.close();
      child.send('bye');
    });
  });
}
child.on('exit', (code, signal) => {
  result.exit = [code, signal];
  result.childErr = childErr;
  console.log(JSON.stringify(result));
});
shared.listen(0, '127.0.0.1', () => child.send('server', shared));
"""

PY_CHILD = """\
import child_process, os, select, socket, sys
p = child_process.parent
start = len(os.listdir("/proc/self/fd"))
srv = None
def on_message(m, h=None):
    global srv
    if m == "server":
        srv = h
        p.send("ready-server")
    elif m == "accept":
        select.select([srv], [], [], 10)
        conn, _ = srv.accept()
        conn.sendall(b"python answered on the shared server")
        conn.close()
        srv.close()
    elif m == "conn":
        h.settimeout(10)
        data = b""
        while not data.endswith(b"\\n"):
            data += h.recv(100)
        h.sendall(b"python: " + data)
        h.close()
    elif m == "bye":
        p.send({"counts": [start, len(os.listdir("/proc/self/fd"))]})
        p.disconnect()
p.on("message", on_message)
"""


@pytest.mark.parametrize("mode", MODES)
def test_node_parent_passes_server_and_paused_connection_to_python(tmp_path, mode):
    parent = write(tmp_path, "parent.js", NODE_PARENT)
    child = write(tmp_path, "child.py", PY_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_CHANNEL")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([NODE, parent, PY, child, mode], env=env, capture_output=True,
                          timeout=WAIT * 2)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    result = json.loads(proc.stdout.decode().strip().split("\n")[-1])
    assert result["server"] == "python answered on the shared server"
    assert result["conn"] == "python: question\n"
    assert result["parentCopy"] is True               # Node detached its copy
    assert result["exit"] == [0, None]
    assert result["childErr"] == ""
    start, end = result["counts"]
    assert start == end, result
    assert result["got"][0] == "ready-server"
