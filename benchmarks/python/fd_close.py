"""Child of the `fd_passing` benchmark, started by child_process.fork(): close every socket it
is sent.  It exits once the parent disconnects."""
import child_process

p = child_process.parent
p.on('message', lambda m, h=None: h is not None and h.close())
