"""The examples of Node's child_process documentation (v20), translated line by line to Python
(SPEC §1: snake_case, keyword options, seconds, bytes, None), asserting on what they print and
produce.

Each example is a complete program run in a fresh interpreter *without* calling run(): as in
Node, the program must not end while referenced handles remain (SPEC §3). A few are also run
in-process with run() for a closer look at the objects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import child_process
from child_process import AbortController, AbortError, spawn
from child_process._loop import get_loop

# Create the main thread's loop (and its epoll descriptor) before any leak check records the
# open descriptors: it lives as long as the thread, it is not a leak of the first test.
get_loop()

PY = sys.executable


def run_program(source: str, *args: str, cwd=None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``source`` as a Python program; return its exit status and output.

    Block-buffered stdout (no PYTHONUNBUFFERED), so that a ``print(..., flush=True)`` is one
    write and cannot be cut in two by a child writing to the same (inherited) descriptor.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["LC_ALL"] = "C"
    return subprocess.run([PY, "-c", textwrap.dedent(source), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


class Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise Hang("test took too long: the loop is probably stuck")


@pytest.fixture(autouse=True)
def _hang_guard():
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 30)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------------------------
# "Asynchronous process creation": ls -lh /usr
# ----------------------------------------------------------------------------------------------

LS_EXAMPLE = """
    import sys
    from child_process import spawn
    ls = spawn('ls', ['-lh', sys.argv[1]])

    ls.stdout.on('data', lambda data: print(f"stdout: {data.decode()}"))

    ls.stderr.on('data', lambda data: print(f"stderr: {data.decode()}", file=sys.stderr))

    ls.on('close', lambda code: print(f"child process exited with code {code}"))
"""


def test_ls_example():
    proc = run_program(LS_EXAMPLE, "/usr")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("stdout: total ")
    listing = subprocess.run(["ls", "-lh", "/usr"], capture_output=True, text=True).stdout
    assert listing.strip()
    # the data chunks, each printed after "stdout: ", rebuild the listing
    body = proc.stdout[: proc.stdout.rindex("child process exited")]
    assert body.replace("stdout: ", "").replace("\n\n", "\n") == listing
    assert " bin" in proc.stdout
    assert proc.stdout.endswith("\nchild process exited with code 0\n")


def test_ls_example_with_a_missing_directory():
    proc = run_program(LS_EXAMPLE, "/no/such/dir")
    assert proc.returncode == 0, proc.stderr
    # ls may write its message in several pieces: each chunk is printed after "stderr: "
    assert proc.stderr.startswith("stderr: ls: ")
    text = proc.stderr.replace("stderr: ", "").replace("\n", "")
    assert text == "ls: cannot access '/no/such/dir': No such file or directory"
    assert proc.stdout == "child process exited with code 2\n"


def test_ls_example_in_process(capsys):
    ls = spawn("ls", ["-lh", "/usr"])
    ls.stdout.on("data", lambda data: print(f"stdout: {data.decode()}"))
    ls.stderr.on("data", lambda data: print(f"stderr: {data.decode()}", file=sys.stderr))
    ls.on("close", lambda code: print(f"child process exited with code {code}"))
    child_process.run()
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("stdout: total ")
    assert out.endswith("child process exited with code 0\n")
    assert ls.exit_code == 0 and ls.signal_code is None


# ----------------------------------------------------------------------------------------------
# "ps ax | grep ssh", built from two children
# ----------------------------------------------------------------------------------------------

PIPELINE_EXAMPLE = """
    import sys
    from child_process import spawn
    ps = spawn('ps', ['ax'])
    grep = spawn('grep', [sys.argv[1]])

    ps.stdout.on('data', lambda data: grep.stdin.write(data))

    ps.stderr.on('data', lambda data: print(f"ps stderr: {data.decode()}", file=sys.stderr))

    def on_ps_close(code):
        if code != 0:
            print(f"ps process exited with code {code}")
        grep.stdin.end()

    ps.on('close', on_ps_close)

    grep.stdout.on('data', lambda data: print(data.decode(), end=''))

    grep.stderr.on('data', lambda data: print(f"grep stderr: {data.decode()}", file=sys.stderr))

    def on_grep_close(code):
        if code != 0:
            print(f"grep process exited with code {code}")

    grep.on('close', on_grep_close)
"""


def test_ps_grep_pipeline_example():
    # grep for a word certain to be in `ps ax`: an argument of the program itself
    marker = f"marker{os.getpid()}x{time.monotonic_ns()}"
    proc = run_program(PIPELINE_EXAMPLE, marker)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines, proc.stdout
    assert all(marker in line for line in lines)
    # the program's own line (python -c ...); grep's own line may or may not be listed
    assert any(" -c " in line and line.endswith(" " + marker) for line in lines), lines
    assert not any(line.startswith(("ps process exited", "grep process exited")) for line in lines)


def test_ps_grep_pipeline_without_a_match_reports_grep_code_1():
    # '^$' never matches a `ps ax` line, so grep exits with 1
    proc = run_program(PIPELINE_EXAMPLE, "^$")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "grep process exited with code 1\n"


def test_ps_grep_pipeline_in_process_finds_our_pid(capsys):
    pid = str(os.getpid())
    ps = spawn("ps", ["ax"])
    grep = spawn("grep", ["-w", pid])
    ps.stdout.on("data", lambda data: grep.stdin.write(data))
    ps.stderr.on("data", lambda data: print(f"ps stderr: {data.decode()}", file=sys.stderr))

    def on_ps_close(code):
        if code != 0:
            print(f"ps process exited with code {code}")
        grep.stdin.end()

    ps.on("close", on_ps_close)
    grep.stdout.on("data", lambda data: print(data.decode(), end=""))
    grep.on("close", lambda code: code != 0 and print(f"grep process exited with code {code}"))
    child_process.run()
    out, err = capsys.readouterr()
    assert err == ""
    assert any(line.split()[0] == pid for line in out.splitlines()), out
    assert (ps.exit_code, grep.exit_code) == (0, 0)


# ----------------------------------------------------------------------------------------------
# a failed spawn: the 'error' event
# ----------------------------------------------------------------------------------------------

FAILED_SPAWN_EXAMPLE = """
    import sys
    from child_process import spawn
    subprocess = spawn('bad_command')

    subprocess.on('error', lambda err: print('Failed to start subprocess.', file=sys.stderr))
"""


def test_failed_spawn_example():
    proc = run_program(FAILED_SPAWN_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "Failed to start subprocess.\n"
    assert proc.stdout == ""


def test_failed_spawn_example_in_process(capsys):
    sub = spawn("bad_command")
    errors, closes = [], []
    sub.on("error", lambda err: print("Failed to start subprocess.", file=sys.stderr))
    sub.on("error", errors.append)
    sub.on("close", lambda code, sig: closes.append((code, sig)))
    assert sub.pid is None
    assert errors == []                   # never synchronous
    child_process.run()
    assert capsys.readouterr().err == "Failed to start subprocess.\n"
    assert len(errors) == 1
    err = errors[0]
    assert err.code == "ENOENT" and err.syscall == "spawn bad_command" and err.path == "bad_command"
    import errno
    assert closes == [(-errno.ENOENT, None)]


def test_failed_spawn_without_error_listener_crashes_the_program():
    # Node: an 'error' event nobody listens to is thrown: the program dies with status 1
    proc = run_program("""
        from child_process import spawn
        spawn('bad_command')
        print('end of script')
    """)
    assert proc.stdout == "end of script\n"
    assert "SpawnError: spawn bad_command ENOENT" in proc.stderr
    assert proc.returncode == 1


def test_failed_spawn_without_error_listener_raises_from_run():
    proc = run_program("""
        import child_process
        from child_process import spawn
        spawn('bad_command')
        try:
            child_process.run()
        except OSError as err:
            print('raised', type(err).__name__, err.code)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "raised SpawnError ENOENT\n"


# ----------------------------------------------------------------------------------------------
# options.detached: a detached, unref'd child with ignored stdio outlives its parent
# ----------------------------------------------------------------------------------------------

def _proc_state(pid: int):
    """The state letter of ``pid`` and its session id, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[3])     # state, ppid, session


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _proc_state(pid)
        if state is None or state[0] in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


DETACHED_EXAMPLE = """
    import sys
    from child_process import spawn

    child_program = (
        "import os, sys, time\\n"
        "time.sleep(0.3)\\n"
        "with open(sys.argv[1], 'w') as f:\\n"
        "    f.write(f'{os.getpid()} {os.getsid(0)} {os.getpgrp()}')\\n"
    )

    subprocess = spawn(sys.executable, ['-c', child_program, sys.argv[1]], detached=True,
                       stdio='ignore')

    subprocess.unref()
    print(subprocess.pid, flush=True)
"""


def test_detached_unrefd_child_outlives_the_program(tmp_path):
    target = tmp_path / "written-by-detached-child"
    start = time.monotonic()
    proc = run_program(DETACHED_EXAMPLE, str(target))
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout)
    try:
        # the program did not wait for its child
        assert not target.exists()
        assert elapsed < 2.0
        state = _proc_state(pid)
        assert state is not None and state[0] not in ("Z", "X"), state
        assert state[1] != os.getpid()            # reparented: not our child
        assert state[2] == pid                     # it leads its own session (setsid)
        deadline = time.monotonic() + 10
        while not (target.exists() and target.read_text()):
            assert time.monotonic() < deadline, "the detached child never wrote its file"
            time.sleep(0.02)
        assert target.read_text() == f"{pid} {pid} {pid}"
        assert _wait_gone(pid), "the detached child did not end"
    finally:
        state = _proc_state(pid)
        if state is not None and state[0] not in ("Z", "X"):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)


DETACHED_LOG_EXAMPLE = """
    import os
    from child_process import spawn

    out = os.open('./out.log', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    err = os.open('./out.log', os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    subprocess = spawn('sh', ['-c', 'sleep 0.2; echo to-stdout; echo to-stderr >&2'],
                       detached=True, stdio=['ignore', out, err])

    subprocess.unref()
    print(subprocess.pid, flush=True)
"""


def test_detached_child_with_output_to_a_log_file(tmp_path):
    proc = run_program(DETACHED_LOG_EXAMPLE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout)
    log = tmp_path / "out.log"
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_text() == "to-stdout\nto-stderr\n"):
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
            time.sleep(0.02)
        assert _wait_gone(pid)
    finally:
        state = _proc_state(pid)
        if state is not None and state[0] not in ("Z", "X"):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)


# ----------------------------------------------------------------------------------------------
# options.signal: the AbortController example
# ----------------------------------------------------------------------------------------------

ABORT_EXAMPLE = """
    from child_process import AbortController, spawn
    controller = AbortController()
    signal = controller.signal
    grep = spawn('grep', ['ssh'], signal=signal)

    def on_error(err):
        # This will be called with an AbortError if the controller aborts
        print('error', type(err).__name__, err.code)

    grep.on('error', on_error)
    grep.on('close', lambda code, signal: print('close', code, signal))
    controller.abort()  # Stops the child process
"""


def test_abort_controller_example():
    proc = run_program(ABORT_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "error AbortError ABORT_ERR\nclose None SIGTERM\n"


def test_abort_controller_example_in_process():
    controller = AbortController()
    signal_ = controller.signal
    grep = spawn("grep", ["ssh"], signal=signal_)
    errors = []
    grep.on("error", errors.append)
    controller.abort()
    assert grep.wait() == (None, "SIGTERM")
    assert len(errors) == 1
    assert isinstance(errors[0], AbortError)
    assert errors[0].code == "ABORT_ERR"
    assert grep.killed is True


# ----------------------------------------------------------------------------------------------
# subprocess.kill(): 'close' shows the signal
# ----------------------------------------------------------------------------------------------

KILL_EXAMPLE = """
    from child_process import spawn
    grep = spawn('grep', ['ssh'])

    grep.on('close', lambda code, signal: print(
        f"child process terminated due to receipt of signal {signal}"))

    # Send SIGHUP to process.
    grep.kill('SIGHUP')
"""


def test_kill_example():
    proc = run_program(KILL_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child process terminated due to receipt of signal SIGHUP\n"


def test_kill_example_in_process():
    grep = spawn("grep", ["ssh"])
    got = []
    grep.on("close", lambda code, sig: got.append(
        f"child process terminated due to receipt of signal {sig}"))
    assert grep.kill("SIGHUP") is True
    assert grep.wait() == (None, "SIGHUP")
    assert got == ["child process terminated due to receipt of signal SIGHUP"]
    assert grep.killed is True
    assert grep.kill("SIGHUP") is False       # already gone


# ----------------------------------------------------------------------------------------------
# subprocess.pid
# ----------------------------------------------------------------------------------------------

PID_EXAMPLE = """
    from child_process import spawn
    grep = spawn('grep', ['ssh'])

    print(f"Spawned child pid: {grep.pid}")
    grep.stdin.end()
    grep.on('close', lambda code: print('grep exited with', code))
"""


def test_pid_example():
    proc = run_program(PID_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first.startswith("Spawned child pid: ")
    assert int(first.rsplit(" ", 1)[1]) > 0
    assert second == "grep exited with 1"     # no input, no match


# ----------------------------------------------------------------------------------------------
# options.stdio: inherit, sharing stderr, an extra fd 4
# ----------------------------------------------------------------------------------------------

STDIO_EXAMPLE = """
    import sys
    from child_process import spawn

    # Child will use parent's stdios.
    a = spawn('sh', ['-c', 'echo out-inherit; echo err-inherit >&2'], stdio='inherit')
    print('a.stdio', a.stdio, flush=True)

    # Spawn child sharing only stderr.
    b = spawn('sh', ['-c', 'echo out-piped; echo err-shared >&2'], stdio=['pipe', 'pipe', sys.stderr])
    b.stdout.on('data', lambda data: print('b stdout:', data.decode().strip(), flush=True))
    print('b.stderr', b.stderr, flush=True)

    # Open an extra fd=4, to interact with programs presenting a startd-style interface.
    c = spawn('sh', ['-c', 'echo on-fd-4 >&4'], stdio=['pipe', None, None, None, 'pipe'])
    c.stdio[4].on('data', lambda data: print('fd4:', data.decode().strip(), flush=True))
    print('c.stdio[3]', c.stdio[3], flush=True)
"""


def test_stdio_example():
    proc = run_program(STDIO_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    err = proc.stderr.splitlines()
    assert "a.stdio [None, None, None]" in out
    assert "out-inherit" in out               # written straight to the inherited stdout
    assert "b stdout: out-piped" in out
    assert "b.stderr None" in out
    assert "fd4: on-fd-4" in out
    assert "c.stdio[3] None" in out
    assert sorted(err) == ["err-inherit", "err-shared"]


def test_subprocess_stdio_example(tmp_path):
    # the `subprocess.stdio` example: stdin from the parent's fd 0, stdout piped, stderr to a file
    err_fd = os.open(tmp_path / "err.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        sub = spawn("ls", ["-a", "/no/such/entry", str(tmp_path)], stdio=[
            0,          # Use parent's stdin for child.
            "pipe",     # Pipe child's stdout to parent.
            err_fd,     # Direct child's stderr to a file.
        ])
    finally:
        os.close(err_fd)
    assert sub.stdio[0] is None
    assert sub.stdio[0] is sub.stdin
    assert sub.stdout
    assert sub.stdio[1] is sub.stdout
    assert sub.stdio[2] is None
    assert sub.stdio[2] is sub.stderr
    out = []
    sub.stdout.on("data", out.append)
    assert sub.wait() == (2, None)
    assert b"err.out" in b"".join(out)
    assert "/no/such/entry" in (tmp_path / "err.out").read_text()


# ----------------------------------------------------------------------------------------------
# subprocess.stdout example and 'exit' vs 'close'
# ----------------------------------------------------------------------------------------------

STDOUT_EXAMPLE = """
    from child_process import spawn

    subprocess = spawn('ls', ['/'])

    subprocess.stdout.on('data', lambda data: print(f"Received chunk {data.decode()}", end=''))
    subprocess.on('exit', lambda code, signal: print(f"exit {code} {signal}"))
"""


def test_stdout_example():
    proc = run_program(STDOUT_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    # ('exit' may come before or after the data, in Node too)
    assert proc.stdout.count("exit 0 None\n") == 1
    assert proc.stdout.replace("exit 0 None\n", "").startswith("Received chunk ")
    names = subprocess.run(["ls", "/"], capture_output=True, text=True).stdout
    assert proc.stdout.replace("Received chunk ", "").replace("exit 0 None\n", "") == names
