# cython: language_level=3, boundscheck=False, wraparound=False
"""spawn_sync's whole life in C with the GIL released: start, feed the input, collect every
piped output, enforce the timeout and max_buffer, reap. Threads calling it run in parallel.

Output is read straight into bytes objects that grow geometrically (the GIL is taken back only
to grow them), so capturing hundreds of megabytes costs no final copy.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.errno cimport errno, EINTR, EAGAIN, EPIPE, ENOBUFS, ETIMEDOUT

cdef extern from "Python.h":
    PyObject *raw_bytes "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n)
    char *raw_bytes_data "PyBytes_AS_STRING"(PyObject *b) nogil
    int _PyBytes_Resize(PyObject **b, Py_ssize_t n)

cdef extern from "<sys/types.h>":
    ctypedef int pid_t

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int nanosleep(const timespec *req, timespec *rem)
    int CLOCK_MONOTONIC

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t n)
    int close(int fd)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    int F_GETFL, F_SETFL, O_NONBLOCK, O_CLOEXEC

cdef extern from "<sys/socket.h>" nogil:
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_DONTWAIT

cdef extern from "<sys/wait.h>" nogil:
    pid_t waitpid(pid_t pid, int *status, int options)
    int WNOHANG

cdef extern from "<signal.h>" nogil:
    int kill(pid_t pid, int sig)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    short POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL

cdef extern from "cp_platform.h" nogil:
    void cp_resolve_spawn_extensions()
    int cp_pidfd_open(pid_t pid)
    void cp_grow_pipe(int fd)
    int cp_devnull()
    int cp_pipe(int fds[2], int nonblock)
    int cp_socketpair(int fds[2], int nonblock)
    int MSG_NOSIGNAL
    int cp_pidfd_send_signal(int pidfd, int sig)
    int cp_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const char *cwd, const int *fds, int nfds, int spawn_flags, long uid, long gid,
                 int pdeathsig)
    int CP_SPAWN_SETSID, CP_SPAWN_SETPGROUP
    int CP_FD_CLOSED, CP_FD_DEVNULL

cp_resolve_spawn_extensions()

#: slot codes besides a parent descriptor, FD_CLOSED (-1) and FD_DEVNULL (-2)
PIPE_IN = -3      # the child reads it (stdin): fed from ``input``
PIPE_OUT = -4     # the child writes it: captured

cdef enum:
    C_ENDED_OK = 0
    C_ENDED_TIMEOUT = 1
    C_ENDED_MAXBUFFER = 2
    C_ENDED_EPIPE = 3

#: how the run ended, besides a normal exit
ENDED_OK = C_ENDED_OK
ENDED_TIMEOUT = C_ENDED_TIMEOUT
ENDED_MAXBUFFER = C_ENDED_MAXBUFFER
ENDED_EPIPE = C_ENDED_EPIPE

cdef enum:
    C_PIPE_IN = -3
    C_PIPE_OUT = -4
    FIRST_CAPACITY = 65536
    READ_MIN = 65536


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int _nonblock(int fd) noexcept nogil:
    cdef int flags = fcntl(fd, F_GETFL)
    if flags < 0:
        return -1
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK)


cdef struct Capture:
    int fd              # parent's read end, -1 once closed
    int slot
    PyObject *data      # bytes being filled
    Py_ssize_t length
    Py_ssize_t capacity


cdef int _grow(Capture *c, Py_ssize_t need) noexcept nogil:
    """Make room for ``need`` more bytes (takes the GIL only here). 0, or -1 on no memory."""
    cdef Py_ssize_t cap = c.capacity
    cdef int rc = 0
    if c.length + need <= cap:
        return 0
    while cap < c.length + need:
        cap = cap * 2 if cap else FIRST_CAPACITY
    with gil:
        if c.data == NULL:
            c.data = raw_bytes(NULL, cap)
            if c.data == NULL:
                rc = -1
        elif _PyBytes_Resize(&c.data, cap) < 0:
            c.data = NULL
            rc = -1
    if rc == 0:
        c.capacity = cap
    return rc


include "cstrings.pxi"
include "spawner.pxi"


def devnull_descriptors():
    """This module's descriptor on /dev/null for 'ignore' slots, twice (for reading, for
    writing: one read-write descriptor serves both; each compiled module keeps its own, opened
    on first use). It belongs to the library: never close it."""
    cdef int fd = cp_devnull()
    if fd < 0:
        raise OSError(errno, "open /dev/null")
    return fd, fd


def run(bytes path, list argv, list envp, object cwd, list slots, bint detached, long uid,
        long gid, object input, double timeout, int kill_signal, long long max_buffer,
        bint new_group=False, int pdeathsig=0):
    """Run a child to completion.

    ``slots[i]``: a parent descriptor, FD_CLOSED, FD_DEVNULL, PIPE_IN or PIPE_OUT. Returns
    ``(pid, status, outputs, spawn_errno, ended)``: ``status`` is the wait status (-1 if it could
    not be had), ``outputs[i]`` the bytes captured for a PIPE_OUT slot (else None), ``spawn_errno``
    non-zero when the child could not start, ``ended`` ENDED_OK/ENDED_TIMEOUT/ENDED_MAXBUFFER.
    ``new_group``: the child leads its own process group, and the timeout and max_buffer kills
    go to the whole group. ``pdeathsig``: the signal the child gets if this thread ends (Linux).
    """
    cdef int spawn_flags = (CP_SPAWN_SETSID if detached else 0) | (CP_SPAWN_SETPGROUP if new_group else 0)
    cdef int nslots = len(slots)
    cdef int *cfds = <int *>malloc((nslots + 1) * sizeof(int))
    cdef Capture *caps = <Capture *>malloc((nslots + 1) * sizeof(Capture))
    cdef pollfd *pfds = <pollfd *>malloc((nslots + 2) * sizeof(pollfd))
    cdef int *child_ends = <int *>malloc((nslots + 1) * sizeof(int))
    cdef char **c_argv = NULL
    cdef char **c_envp = NULL
    cdef int ncaps = 0, nchild_ends = 0, i, code, err = 0
    cdef int pair[2]
    cdef int in_fd = -1
    cdef pid_t pid = 0
    cdef int status = -1, pidfd = -1, ended = C_ENDED_OK
    cdef bint exited = False
    cdef const char *c_path = path
    cdef const char *c_cwd = NULL
    cdef bytes cwd_b
    cdef Py_buffer in_view
    cdef bint have_input = False
    cdef Py_ssize_t in_off = 0
    if cfds == NULL or caps == NULL or pfds == NULL or child_ends == NULL:
        free(cfds); free(caps); free(pfds); free(child_ends)
        raise MemoryError()
    memset(caps, 0, (nslots + 1) * sizeof(Capture))
    if cwd is not None:
        cwd_b = cwd
        c_cwd = cwd_b
    if input is not None:
        PyObject_GetBuffer(input, &in_view, PyBUF_SIMPLE)
        have_input = True
    try:
        c_argv = _cstring_array(argv)
        c_envp = _cstring_array(envp)
        for i in range(nslots):
            code = slots[i]
            if code == C_PIPE_IN:
                # a socket pair, so that feeding a child that stopped reading is EPIPE, not SIGPIPE
                if cp_socketpair(pair, 0) < 0:
                    err = errno
                    break
                in_fd = pair[0]
                child_ends[nchild_ends] = pair[1]
                nchild_ends += 1
                cfds[i] = pair[1]
                _nonblock(in_fd)
            elif code == C_PIPE_OUT:
                if cp_pipe(pair, 0) < 0:
                    err = errno
                    break
                caps[ncaps].fd = pair[0]
                caps[ncaps].slot = i
                ncaps += 1
                child_ends[nchild_ends] = pair[1]
                nchild_ends += 1
                cfds[i] = pair[1]
                _nonblock(pair[0])
                cp_grow_pipe(pair[0])
            else:
                cfds[i] = code
        if err == 0:
            with nogil:
                err = cp_spawn(&pid, c_path, c_argv, c_envp, c_cwd, cfds, nslots, spawn_flags,
                               uid, gid, pdeathsig)
        for i in range(nchild_ends):
            close(child_ends[i])
        if err != 0:
            if in_fd >= 0:
                close(in_fd)
                in_fd = -1
            return 0, -1, [None] * nslots, err, ENDED_OK

        with nogil:
            if in_fd >= 0 and (not have_input or in_view.len == 0):
                close(in_fd)
                in_fd = -1
            if ncaps == 0 and in_fd < 0 and timeout <= 0:
                # nothing to feed, read or time: a blocking waitpid wakes soonest
                _reap(pid, &status, &exited)
                pidfd = -1
            else:
                pidfd = cp_pidfd_open(pid)
            ended = _supervise(pid, pidfd, &status, &exited, in_fd,
                               <const char *>(in_view.buf if have_input else NULL),
                               in_view.len if have_input else 0, caps, ncaps, pfds,
                               timeout, kill_signal, max_buffer, new_group)
            if pidfd >= 0:
                close(pidfd)
        outputs = [None] * nslots
        for i in range(ncaps):
            outputs[caps[i].slot] = _take(&caps[i])
        return pid, status, outputs, 0, ended
    finally:
        for i in range(ncaps):
            if caps[i].fd >= 0:
                close(caps[i].fd)
            Py_XDECREF(caps[i].data)
        if have_input:
            PyBuffer_Release(&in_view)
        free(cfds); free(caps); free(pfds); free(child_ends)
        free(c_argv); free(c_envp)


cdef object _take(Capture *c):
    """The captured bytes (exact length), handing over our reference."""
    cdef PyObject *data = c.data
    if data == NULL:
        return b""
    c.data = NULL
    if c.length != c.capacity and _PyBytes_Resize(&data, c.length) < 0:
        raise MemoryError()
    result = <object>data
    Py_XDECREF(data)
    return result


cdef int _supervise(pid_t pid, int pidfd, int *status, bint *exited, int in_fd,
                    const char *input, Py_ssize_t in_len, Capture *caps, int ncaps,
                    pollfd *pfds, double timeout, int kill_signal,
                    long long max_buffer, bint group) noexcept nogil:
    """Until the child has exited and every capture pipe has ended (or been closed after a kill)."""
    cdef double deadline = _now() + timeout if timeout > 0 else -1
    cdef int ended = C_ENDED_OK, n, i, k, ms, rc
    cdef bint killed = False, open_pipes
    cdef Py_ssize_t in_off = 0, room
    cdef ssize_t got
    cdef Capture *c
    cdef timespec pause
    cdef double sleep_s = 0.0005
    while True:
        open_pipes = in_fd >= 0
        for i in range(ncaps):
            if caps[i].fd >= 0:
                open_pipes = True
        if exited[0] and not open_pipes:
            return ended
        # what to wait for
        n = 0
        if in_fd >= 0:
            pfds[n].fd = in_fd
            pfds[n].events = POLLOUT
            n += 1
        for i in range(ncaps):
            if caps[i].fd >= 0:
                pfds[n].fd = caps[i].fd
                pfds[n].events = POLLIN
                n += 1
        if not exited[0] and pidfd >= 0:
            pfds[n].fd = pidfd
            pfds[n].events = POLLIN
            n += 1
        if deadline >= 0:
            ms = <int>((deadline - _now()) * 1000.0 + 0.999)
            if ms < 0:
                ms = 0
        else:
            ms = -1
        if not exited[0] and pidfd < 0:
            # no pidfd (old kernel, macOS): look at the child between short waits
            if waitpid(pid, status, WNOHANG) == pid:
                exited[0] = True
                continue
            if ms < 0 or ms > 50:
                ms = 50 if open_pipes else <int>(sleep_s * 1000) + 1
            if not open_pipes:
                pause.tv_sec = 0
                pause.tv_nsec = <long>(sleep_s * 1e9)
                nanosleep(&pause, NULL)
                if sleep_s < 0.02:
                    sleep_s *= 2
                if deadline >= 0 and _now() >= deadline and not killed and not exited[0]:
                    cp_kill(pid, pidfd, kill_signal, group)
                    killed = True
                    ended = C_ENDED_TIMEOUT
                continue
        rc = poll(pfds, n, ms)
        if rc < 0:
            if errno == EINTR:
                continue
            # cannot wait any more: make sure the child ends and reap it
            cp_kill(pid, pidfd, 9, group)
            _reap(pid, status, exited)
            return ended
        if deadline >= 0 and _now() >= deadline:
            # checked on every wake-up too: a child writing without pause must not delay it
            if not killed and not exited[0]:
                cp_kill(pid, pidfd, kill_signal, group)
                killed = True
                ended = C_ENDED_TIMEOUT
            _close_all(&in_fd, caps, ncaps)      # as Node: after the kill, only the exit matters
            _reap(pid, status, exited)
            continue
        for k in range(n):
            if pfds[k].revents == 0:
                continue
            if pfds[k].fd == pidfd and not exited[0]:
                _reap(pid, status, exited)
                continue
            if pfds[k].fd == in_fd:
                got = send(in_fd, input + in_off, in_len - in_off, MSG_NOSIGNAL | MSG_DONTWAIT)
                if got > 0:
                    in_off += got
                if got < 0 and errno != EAGAIN and errno != EINTR:
                    # the child stopped reading: Node reports EPIPE in result.error
                    if ended == C_ENDED_OK:
                        ended = C_ENDED_EPIPE
                    close(in_fd)
                    in_fd = -1
                elif in_off >= in_len:
                    close(in_fd)
                    in_fd = -1
                continue
            for i in range(ncaps):
                c = &caps[i]
                if c.fd != pfds[k].fd or c.fd < 0:
                    continue
                while True:
                    if _grow(c, READ_MIN) < 0:
                        close(c.fd)
                        c.fd = -1
                        break
                    room = c.capacity - c.length
                    got = read(c.fd, raw_bytes_data(c.data) + c.length, room)
                    if got > 0:
                        c.length += got
                        if max_buffer >= 0 and c.length > max_buffer:
                            if not killed and not exited[0]:
                                cp_kill(pid, pidfd, kill_signal, group)
                                killed = True
                                ended = C_ENDED_MAXBUFFER
                            _close_all(&in_fd, caps, ncaps)
                            break
                        if got < room:
                            break
                        continue
                    if got == 0 or (errno != EAGAIN and errno != EINTR):
                        close(c.fd)
                        c.fd = -1
                    break


cdef void _close_all(int *in_fd, Capture *caps, int ncaps) noexcept nogil:
    cdef int i
    if in_fd[0] >= 0:
        close(in_fd[0])
        in_fd[0] = -1
    for i in range(ncaps):
        if caps[i].fd >= 0:
            close(caps[i].fd)
            caps[i].fd = -1


cdef void _reap(pid_t pid, int *status, bint *exited) noexcept nogil:
    cdef int rc
    if exited[0]:
        return
    while True:
        rc = waitpid(pid, status, 0)
        if rc >= 0 or errno != EINTR:
            break
    exited[0] = True


cdef void cp_kill(pid_t pid, int pidfd, int sig, bint group) noexcept nogil:
    if group:
        kill(-pid, sig)         # the child leads its group: everything it started too
    elif pidfd >= 0:
        cp_pidfd_send_signal(pidfd, sig)
    else:
        kill(pid, sig)
