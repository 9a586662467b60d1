"""Child of the `fork_startup` benchmark, started by child_process.fork(): announce itself with
one message, then exit (the message is written before the interpreter ends)."""
import child_process

child_process.parent.send('ready')
