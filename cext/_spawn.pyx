# cython: language_level=3, boundscheck=False, wraparound=False
"""Starting a process from an already-validated spec: the mechanism, no policy.

Everything here reports failure as ``OSError(errno)``; the Python layer turns that into
Node's errors. Two start paths, neither growing in cost with the parent's memory: the vfork path
in ``cp_platform.h`` (Linux's default, and always for uid/gid or a libc without the ``_np`` file
actions) and posix_spawn (the default elsewhere); ``spawner.pxi`` chooses.
"""

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.errno cimport errno, ENOENT, EACCES, ENOTDIR, EINTR

cdef extern from "<sys/types.h>":
    ctypedef int pid_t

cdef extern from "<sys/stat.h>":
    cdef struct stat:
        unsigned int st_mode
    int c_stat "stat"(const char *path, stat *buf) nogil
    bint S_ISREG(unsigned int m) nogil

cdef extern from "<signal.h>":
    ctypedef struct sigset_t:
        pass
    int sigemptyset(sigset_t *s) nogil
    int sigfillset(sigset_t *s) nogil
    int sigdelset(sigset_t *s, int sig) nogil
    int SIGKILL, SIGSTOP

cdef extern from "<unistd.h>" nogil:
    int access(const char *path, int mode)
    int X_OK
    int close(int fd)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    int F_DUPFD_CLOEXEC, F_GETFL, F_SETFL, O_NONBLOCK, O_CLOEXEC, O_RDONLY, O_RDWR


cdef extern from "<spawn.h>" nogil:
    ctypedef struct posix_spawnattr_t:
        pass
    ctypedef struct posix_spawn_file_actions_t:
        pass
    int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
    int posix_spawnattr_init(posix_spawnattr_t *a)
    int posix_spawnattr_destroy(posix_spawnattr_t *a)
    int posix_spawnattr_setflags(posix_spawnattr_t *a, short flags)
    int posix_spawnattr_setsigmask(posix_spawnattr_t *a, const sigset_t *s)
    int posix_spawnattr_setsigdefault(posix_spawnattr_t *a, const sigset_t *s)
    int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa)
    int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa)
    int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd)
    int posix_spawn_file_actions_addclose(posix_spawn_file_actions_t *fa, int fd)
    int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t *fa, int fd,
                                         const char *path, int oflag, unsigned int mode)
    int POSIX_SPAWN_SETSIGMASK, POSIX_SPAWN_SETSIGDEF

cdef extern from "cp_platform.h" nogil:
    int POSIX_SPAWN_SETSID
    ctypedef int (*cp_addchdir_t)(posix_spawn_file_actions_t *, const char *)
    ctypedef int (*cp_addclosefrom_t)(posix_spawn_file_actions_t *, int)
    cp_addchdir_t cp_addchdir
    cp_addclosefrom_t cp_addclosefrom
    void cp_resolve_spawn_extensions()
    int cp_can_close_others()
    int cp_devnull()
    int cp_pidfd_open(pid_t pid)
    void cp_grow_pipe(int fd)
    int cp_pipe(int fds[2], int nonblock)
    int cp_socketpair(int fds[2], int nonblock)
    ctypedef struct cp_spawn_req:
        const char *path
        char *const *argv
        char *const *envp
        const char *cwd
        const int *fds
        int nfds
        int setsid
        int setpgroup
        int pdeathsig
        pid_t parent
        long uid
        long gid
    int cp_vfork_spawn(const cp_spawn_req *req, pid_t *pid_out)
    int cp_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const char *cwd, const int *fds, int nfds, int spawn_flags, long uid, long gid,
                 int pdeathsig)
    int CP_SPAWN_SETSID, CP_SPAWN_SETPGROUP
    int cp_sigchld_add_wake_fd(int fd)
    void cp_sigchld_remove_wake_fd(int fd)

cp_resolve_spawn_extensions()

#: True when posix_spawn can do the whole job (chdir and closing stray descriptors) here.
HAVE_FULL_POSIX_SPAWN = cp_addchdir != NULL and cp_can_close_others()

cdef enum:
    C_FD_CLOSED = -1
    C_FD_DEVNULL = -2

FD_CLOSED = C_FD_CLOSED
FD_DEVNULL = C_FD_DEVNULL

cdef const char *DEFAULT_PATH = b"/usr/local/bin:/bin:/usr/bin"


include "cstrings.pxi"
include "spawner.pxi"


def find_executable(bytes file, object path_env, object cwd):
    """Resolve ``file`` the way execvp would, but on the *child's* PATH (Node's behaviour).

    A name with a slash is returned unchanged (exec reports its own errors). Otherwise the first
    PATH entry holding an executable regular file wins; if none does, EACCES when a candidate
    existed but was not executable, else ENOENT.
    """
    if b"/" in file:
        return file
    if not file:
        raise OSError(ENOENT, "empty file name")
    cdef bytes path = path_env if path_env is not None else DEFAULT_PATH
    cdef bint saw_eacces = False
    cdef bytes candidate
    cdef stat st
    cdef int rc
    cdef const char *c
    for directory in path.split(b":"):
        if not directory:
            directory = b"."
        if directory[:1] != b"/" and cwd is not None:
            directory = cwd + b"/" + directory
        candidate = directory + b"/" + file
        c = candidate
        with nogil:
            rc = c_stat(c, &st)
        if rc != 0:
            continue
        if not S_ISREG(st.st_mode):
            saw_eacces = True       # execve of a directory or device: EACCES, as execvp reports
            continue
        with nogil:
            rc = access(c, X_OK)
        if rc == 0:
            return candidate
        saw_eacces = True
    raise OSError(EACCES if saw_eacces else ENOENT, "executable not found")


def spawn(bytes path, list argv, list envp, object cwd, list fds, bint detached,
          long uid=-1, long gid=-1, bint new_group=False, int pdeathsig=0):
    """Start ``path`` and return its pid.

    ``fds[i]`` is the parent descriptor that becomes the child's fd ``i`` (``FD_CLOSED``,
    ``FD_DEVNULL``). The child gets exactly these descriptors: everything else is closed, even
    inheritable descriptors the parent holds. ``new_group``: the child leads a process group of
    its own; ``pdeathsig``: the signal it gets when this thread ends (Linux).
    """
    cdef int flags = (CP_SPAWN_SETSID if detached else 0) | (CP_SPAWN_SETPGROUP if new_group else 0)
    cdef int nfds = len(fds)
    cdef int *cfds = <int *>malloc((nfds + 1) * sizeof(int))
    cdef char **c_argv = NULL
    cdef char **c_envp = NULL
    cdef int i, err = 0
    cdef pid_t pid = 0
    cdef const char *c_path = path
    cdef const char *c_cwd = NULL
    cdef bytes cwd_b
    if cfds == NULL:
        raise MemoryError()
    if cwd is not None:
        cwd_b = cwd
        c_cwd = cwd_b
    try:
        c_argv = _cstring_array(argv)
        c_envp = _cstring_array(envp)
        for i in range(nfds):
            cfds[i] = fds[i]
        with nogil:
            err = cp_spawn(&pid, c_path, c_argv, c_envp, c_cwd, cfds, nfds, flags, uid, gid,
                           pdeathsig)
        if err != 0:
            raise OSError(err, "spawn")
        return pid
    finally:
        free(cfds)
        free(c_argv)
        free(c_envp)


def pidfd_open(int pid):
    """A pidfd for ``pid`` (close-on-exec), or OSError (ENOSYS where the kernel has none)."""
    cdef int fd = cp_pidfd_open(pid)
    if fd < 0:
        raise OSError(errno, "pidfd_open")
    return fd


def make_stdio_pipe(bint child_reads, bint socket_pair):
    """(parent_end, child_end): the parent's end non-blocking, the child's blocking, both
    close-on-exec, in two system calls."""
    cdef int fds[2]
    cdef int parent, child
    if socket_pair:
        if cp_socketpair(fds, 1) < 0:
            raise OSError(errno, "socketpair")
        parent, child = fds[0], fds[1]
    else:
        if cp_pipe(fds, 1) < 0:
            raise OSError(errno, "pipe")
        parent, child = (fds[1], fds[0]) if child_reads else (fds[0], fds[1])
    # a new descriptor has no other status flag: clearing them all clears O_NONBLOCK
    if fcntl(child, F_SETFL, 0) < 0:
        close(fds[0])
        close(fds[1])
        raise OSError(errno, "fcntl")
    return parent, child


def make_pipe():
    """(read_end, write_end), both close-on-exec, both blocking."""
    cdef int fds[2]
    if cp_pipe(fds, 0) < 0:
        raise OSError(errno, "pipe")
    return fds[0], fds[1]


def make_socketpair():
    """A connected AF_UNIX stream pair, both close-on-exec, both blocking."""
    cdef int fds[2]
    if cp_socketpair(fds, 0) < 0:
        raise OSError(errno, "socketpair")
    return fds[0], fds[1]


def set_nonblocking(int fd, bint on=True):
    """O_NONBLOCK on (parent ends) or off (descriptors a child's stdio 0-2 will share)."""
    cdef int flags = fcntl(fd, F_GETFL)
    if flags < 0:
        raise OSError(errno, "fcntl")
    cdef int wanted = (flags | O_NONBLOCK) if on else (flags & ~O_NONBLOCK)
    if wanted != flags and fcntl(fd, F_SETFL, wanted) < 0:
        raise OSError(errno, "fcntl")


def devnull_descriptors():
    """The process's descriptor on /dev/null for 'ignore' slots, twice (for reading, for
    writing: one read-write descriptor serves both), opened now if needed. It belongs to the
    library: never close it."""
    cdef int fd = cp_devnull()
    if fd < 0:
        raise OSError(errno, "open /dev/null")
    return fd, fd


def grow_pipe(int fd):
    """Give a pipe carrying bulk output a 1 MiB kernel buffer (best effort, Linux)."""
    cp_grow_pipe(fd)


def sigchld_add_wake_fd(int fd):
    """Make SIGCHLD write a byte to ``fd`` (the fallback when pidfds are missing)."""
    cdef int err = cp_sigchld_add_wake_fd(fd)
    if err:
        raise OSError(err, "sigaction")


def sigchld_remove_wake_fd(int fd):
    cp_sigchld_remove_wake_fd(fd)
