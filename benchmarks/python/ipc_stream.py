"""Child of the `ipc_stream` benchmark, started by child_process.fork(script, [TOTAL]): send
TOTAL messages {"i": n, "s": "hello"} to the parent in a loop, then disconnect (which closes
the channel once everything queued is written)."""
import sys

import child_process

parent = child_process.parent
send = parent.send
for i in range(int(sys.argv[1])):
    send({"i": i, "s": "hello"})
parent.disconnect()
