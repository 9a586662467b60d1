"""Child of the `ipc_pingpong` benchmark, started by child_process.fork(): echo every message
back to the parent.  It exits once the parent disconnects (nothing keeps its loop alive)."""
import child_process

p = child_process.parent
p.on('message', p.send)
