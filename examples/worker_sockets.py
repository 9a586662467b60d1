"""Node's `subprocess.send(message, sendHandle)` example, in Python: the parent accepts each
connection and hands the socket to a worker, "special" priority for some clients and "normal"
for the others. The workers answer on the socket they were given.

Run: python examples/worker_sockets.py

(Node's docs pick "special" clients by remote address; here clients connecting from 127.0.0.2
are special. The parent's copy of each socket is closed once the worker acknowledged it.)
"""

import socket
import sys
import threading

import child_process

SPECIAL_ADDRESS = "127.0.0.2"


def worker(priority: str) -> None:
    parent = child_process.parent

    def on_message(message, sock=None):
        if message == "socket" and sock is not None:
            sock.sendall(f"Request handled with {priority} priority".encode())
            sock.close()
        elif message == "done":
            parent.disconnect()

    parent.on("message", on_message)


def clients(port: int, sources: list, replies: dict) -> None:
    for i, source in enumerate(sources):
        with socket.socket() as c:
            c.bind((source, 0))
            c.connect(("127.0.0.1", port))
            data = b""
            while True:
                chunk = c.recv(100)
                if not chunk:
                    break
                data += chunk
            replies[i] = (source, data.decode())


def main() -> int:
    normal = child_process.fork(__file__, ["normal"])
    special = child_process.fork(__file__, ["special"])
    server = socket.create_server(("127.0.0.1", 0))
    sources = ["127.0.0.1", SPECIAL_ADDRESS, "127.0.0.1", "127.0.0.1", SPECIAL_ADDRESS]
    replies = {}
    client_thread = threading.Thread(target=clients,
                                     args=(server.getsockname()[1], sources, replies))
    client_thread.start()
    loop = child_process.get_loop()
    for _ in sources:
        conn, (address, _port) = server.accept()
        # if this is special priority... ; else normal priority
        (special if address == SPECIAL_ADDRESS else normal).send("socket", conn)
        loop.run_until(lambda conn=conn: conn.fileno() < 0, 10)    # sent, acknowledged, closed
    server.close()
    client_thread.join(10)      # the workers answer on the sockets themselves
    for i in sorted(replies):
        source, reply = replies[i]
        print(f"client {i} from {source}: {reply}")
    for child in (normal, special):
        child.send("done")
    codes = [child.wait(10) for child in (normal, special)]
    ok = (len(replies) == len(sources) and codes == [(0, None), (0, None)] and all(
        reply.endswith(("special" if source == SPECIAL_ADDRESS else "normal") + " priority")
        for source, reply in replies.values()))
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("normal", "special"):
        worker(sys.argv[1])
    else:
        sys.exit(main())
