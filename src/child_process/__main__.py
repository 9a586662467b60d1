"""A short tour: ``python -m child_process``.

The three snippets are Node's documentation examples translated line by line.
"""

import os
import sys

import child_process
from child_process import spawn


def spawn_with_output() -> None:
    print("1. spawn('ls', ['-lh', '/usr']) with its output:")
    ls = spawn("ls", ["-lh", "/usr"])
    assert ls.stdout and ls.stderr      # stdio='pipe' (the default): both streams exist
    ls.stdout.on("data", lambda data: sys.stdout.write(f"   stdout: {data.decode()}"))
    ls.stderr.on("data", lambda data: sys.stdout.write(f"   stderr: {data.decode()}"))
    ls.on("close", lambda code: print(f"   child process exited with code {code}"))
    child_process.run()


def pipeline() -> None:
    print(f"2. ps ax | grep python, built from two children (this demo is pid {os.getpid()}):")
    ps = spawn("ps", ["ax"])
    grep = spawn("grep", ["python"])
    assert ps.stdout and ps.stderr and grep.stdin and grep.stdout
    grep_stdin = grep.stdin

    ps.stdout.on("data", lambda data: grep_stdin.write(data))
    ps.stderr.on("data", lambda data: print(f"   ps stderr: {data.decode()}"))
    ps.on("close", lambda code: grep_stdin.end() if code == 0 else
          print(f"   ps exited with {code}"))

    grep.stdout.on("data", lambda data: sys.stdout.write(
        "".join(f"   {line}\n" for line in data.decode().splitlines())))
    grep.on("close", lambda code: code != 0 and print(f"   grep process exited with code {code}"))
    child_process.run()


def failed_spawn() -> None:
    print("3. a command that does not exist, handled with 'error':")
    child = spawn("bad_command")
    child.on("error", lambda err: print(f"   Failed to start subprocess: {err} (code {err.code})"))
    child.on("close", lambda code, signal: print(
        f"   'close' still comes: code {code}, signal {signal}"))
    child_process.run()


def main() -> None:
    spawn_with_output()
    pipeline()
    failed_spawn()
    print("Done. Tests: python -m pytest (see README.md).")


if __name__ == "__main__":
    main()
