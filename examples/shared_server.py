"""A server shared between parent and children (Node's `subprocess.send('server', server)`
example, in Python): the parent listens, sends the listening socket to two children, and all
three processes accept connections on it. Whoever accepts answers.

Run: python examples/shared_server.py
"""

import os
import select
import socket
import sys
import threading
import time

import child_process

CLIENTS = 30


def serve(server: socket.socket, who: str, stop: threading.Event) -> None:
    """Accept until ``stop``; the socket is shared (non-blocking), so another process may take a
    connection first: that is the point."""
    while not stop.is_set():
        ready, _, _ = select.select([server], [], [], 0.05)
        if not ready:
            continue
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            continue
        with conn:
            conn.setblocking(True)
            conn.sendall(f"handled by {who}".encode())


def child() -> None:
    parent = child_process.parent
    stop = threading.Event()
    threads = []

    def on_message(message, server=None):
        if message == "server" and server is not None:
            t = threading.Thread(target=serve, args=(server, f"child {os.getpid()}", stop))
            t.start()
            threads.append((t, server))
            parent.send("listening")
        elif message == "stop":
            stop.set()
            for t, server in threads:
                t.join()
                server.close()
            parent.disconnect()

    parent.on("message", on_message)


def main() -> int:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    children = [child_process.fork(__file__, ["child"]) for _ in range(2)]
    listening = []
    for c in children:
        c.on("message", listening.append)
        c.send("server", server)            # the server stays open (and listening) here
    loop = child_process.get_loop()
    loop.run_until(lambda: len(listening) == len(children), 10)
    stop = threading.Event()
    mine = threading.Thread(target=serve, args=(server, "parent", stop))
    mine.start()
    answers = {}
    for _ in range(CLIENTS):
        with socket.create_connection(server.getsockname(), timeout=10) as c:
            who = c.recv(100).decode()
        answers[who] = answers.get(who, 0) + 1
        time.sleep(0.002)
    stop.set()
    mine.join()
    for c in children:
        c.send("stop")
    codes = [c.wait(10) for c in children]
    server.close()
    for who, n in sorted(answers.items()):
        print(f"{who}: {n} connection(s)")
    ok = (len(listening) == len(children) and sum(answers.values()) == CLIENTS
          and codes == [(0, None)] * len(children))
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child()
    else:
        sys.exit(main())
