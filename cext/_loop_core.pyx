# cython: language_level=3, boundscheck=False, wraparound=False
"""The event loop's mechanism: readiness polling, fd watchers, timers, a ready queue and the
count of referenced handles that decides when the loop may stop.

epoll on Linux, poll(2) elsewhere (and on Linux when forced, to keep that path tested). Level
triggered, so an exception in one callback never loses an event: it is reported again on the
next turn. Dispatch happens here, in C, straight into the Python callbacks.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno, EINTR, ENOENT, EBADF, ECHILD, ESRCH
from libc.stdlib cimport malloc, free, realloc
import heapq
import os
import threading
from collections import deque
from time import monotonic

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "cp_platform.h" nogil:
    int cp_pidfd_open(int pid)
    int cp_pidfd_send_signal(int pidfd, int sig)

cdef extern from "<sys/wait.h>" nogil:
    int waitpid(int pid, int *status, int options)
    int WNOHANG

cdef extern from "<signal.h>" nogil:
    int kill(int pid, int sig)

cdef extern from *:
    """
    #include <sys/wait.h>
    /* Sleep until child `pid` has ended, without reaping it (the caller reaps, holding the
     * GIL, so no other thread can see the pid free before the watcher knows). 0 or errno. */
    static int cp_wait_ended(int pid) {
        siginfo_t info;
        info.si_pid = 0;
        return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 ? errno : 0;
    }
    """
    int cp_wait_ended(int pid) nogil

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC

cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/epoll.h>
    #define CP_HAVE_EPOLL 1
    #else
    #define CP_HAVE_EPOLL 0
    struct epoll_event { unsigned int events; union { int fd; void *ptr; unsigned long long u64; } data; };
    #define EPOLLIN 1
    #define EPOLLOUT 4
    #define EPOLLERR 8
    #define EPOLLHUP 16
    #define EPOLLONESHOT (1u << 30)
    #define EPOLL_CTL_ADD 1
    #define EPOLL_CTL_DEL 2
    #define EPOLL_CTL_MOD 3
    #define EPOLL_CLOEXEC 0
    static int epoll_create1(int f) { (void)f; errno = ENOSYS; return -1; }
    static int epoll_ctl(int a, int b, int c, struct epoll_event *e) { errno = ENOSYS; return -1; }
    static int epoll_wait(int a, struct epoll_event *e, int n, int t) { errno = ENOSYS; return -1; }
    #endif
    #include <poll.h>
    """
    int CP_HAVE_EPOLL
    ctypedef union epoll_data_t:
        int fd
        void *ptr
    struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_create1(int flags) nogil
    int epoll_ctl(int epfd, int op, int fd, epoll_event *ev) nogil
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout) nogil
    unsigned int EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLONESHOT
    int EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLL_CLOEXEC
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout) nogil
    short POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL

READABLE = 1
WRITABLE = 2


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000LL + ts.tv_nsec

DEF MAX_EVENTS = 256

#: How often a loop looks again at a child still waiting for its pidfd (seconds).
cdef double PENDING_RECHECK = 0.01

_force_poll = os.environ.get("CHILD_PROCESS_POLLER", "") == "poll"


def _spin_setting():
    try:
        return max(0, int(os.environ.get("CHILD_PROCESS_SPIN_US", "50")))
    except ValueError:
        return 50

#: Microseconds a loop keeps looking for the next IPC message (yielding the CPU between looks)
#: before it sleeps: waking a sleeping process on another CPU costs far more than that here.
SPIN_US = _spin_setting()
#: The readiness backend this process uses: 'epoll' or 'poll'.
BACKEND = "epoll" if CP_HAVE_EPOLL and not _force_poll else "poll"


cdef class Loop:
    """One per thread. ``refs`` counts the active, referenced handles that keep it alive."""

    cdef int epfd
    cdef bint use_epoll
    cdef dict _watchers
    cdef object _ready
    cdef list _timers
    cdef long long _seq
    cdef public long refs
    cdef public object owner
    cdef int _depth
    cdef bint _closed
    cdef public object waker
    cdef public bint wake_pending
    cdef public long spin_ns
    cdef bint _spin_armed
    cdef public object fd_hook     # poll backend inside asyncio: told of every interest change
    cdef list _pending_exits       # exit watchers of children started since the last poll
    cdef bint _embedded            # inside run_embedded_turn
    cdef dict __dict__
    cdef object __weakref__

    def __cinit__(self):
        self.epfd = -1
        self.use_epoll = BACKEND == "epoll"
        if self.use_epoll:
            self.epfd = epoll_create1(EPOLL_CLOEXEC)
            if self.epfd < 0:
                raise OSError(errno, "epoll_create1")
        self._watchers = {}
        self._pending_exits = []
        self._ready = deque()
        self._timers = []
        self._seq = 0
        self.refs = 0
        self.owner = threading.get_ident()
        self.waker = None
        self.wake_pending = False
        self.spin_ns = SPIN_US * 1000
        self._spin_armed = False
        self.fd_hook = None

    def __dealloc__(self):
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1

    def close(self):
        """Release the poller; only for a loop with nothing left on it."""
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1
        self._closed = True

    def fileno(self):
        """The epoll descriptor (readable when an event is pending): for embedding."""
        return self.epfd

    def time(self):
        return monotonic()

    # -- the ready queue -----------------------------------------------------------------

    def call_soon(self, callback, *args):
        """Run ``callback(*args)`` on the next turn, before polling (Node's nextTick)."""
        self._ready.append((callback, args))
        if self.waker is not None and not self.wake_pending:
            self.wake_pending = True
            self.waker()

    def next_deadline(self):
        """monotonic() time at which this loop next needs a turn, or None (for an embedding
        loop): the earliest active timer, or soon when an exit watcher is still pending (see
        ``_turn``)."""
        cdef double delay = self._wake_within(-1)
        return None if delay < 0 else monotonic() + delay

    @property
    def has_ready(self):
        return len(self._ready) > 0

    def alive(self):
        """True while referenced handles or queued callbacks remain (Node's loop-alive rule)."""
        return self.refs > 0 or len(self._ready) > 0

    # -- registration (used by IOWatcher) ------------------------------------------------

    cdef int _update(self, IOWatcher w, unsigned int old, unsigned int new) except -1:
        cdef epoll_event ev
        cdef int op
        if self.use_epoll:
            ev.events = new | (EPOLLONESHOT if w._oneshot and new != 0 else 0)
            ev.data.fd = w.fd
            if old == 0:
                op = EPOLL_CTL_ADD
            elif new == 0:
                op = EPOLL_CTL_DEL
            else:
                op = EPOLL_CTL_MOD
            if epoll_ctl(self.epfd, op, w.fd, &ev) < 0:
                if not (op == EPOLL_CTL_DEL and (errno == ENOENT or errno == EBADF)):
                    raise OSError(errno, "epoll_ctl")
        if new == 0:
            if self._watchers.get(w.fd) is w:
                del self._watchers[w.fd]
        else:
            self._watchers[w.fd] = w
        if self.fd_hook is not None:
            self.fd_hook(w.fd, (new & EPOLLIN) != 0, (new & EPOLLOUT) != 0)
        return 0

    cdef int _forget(self, IOWatcher w) except -1:
        """Drop a watcher whose one-shot registration has fired: the kernel has disarmed it, so
        closing its descriptor is enough (no EPOLL_CTL_DEL)."""
        if self._watchers.get(w.fd) is w:
            del self._watchers[w.fd]
        if self.fd_hook is not None:
            self.fd_hook(w.fd, False, False)
        w.events = 0
        w._set_active(False)
        return 0

    cdef int _rearm(self, IOWatcher w) except -1:
        """Arm a fired one-shot registration again."""
        cdef epoll_event ev
        if self.use_epoll and w.events:
            ev.events = w.events | EPOLLONESHOT
            ev.data.fd = w.fd
            if epoll_ctl(self.epfd, EPOLL_CTL_MOD, w.fd, &ev) < 0:
                raise OSError(errno, "epoll_ctl")
        return 0

    cdef int _arm_exits(self) except -1:
        """The children started since the last poll: reap those that have already ended (they
        need no pidfd at all: a batch of short children mostly ends before the loop runs), and
        give the others a pidfd to poll. Until then a child's pidfd would only be one more
        descriptor for every later child's exec to close."""
        cdef list pending = self._pending_exits
        cdef PidfdExitWatcher w
        cdef Py_ssize_t i
        self._pending_exits = []
        for i in range(len(pending)):
            w = pending[i]
            try:
                w._arm()
            except BaseException:
                self._pending_exits.extend(pending[i + 1:])     # the rest stay pending
                raise
        return 0

    cdef double _wake_within(self, double timeout):
        """``_next_timeout``, but never longer than PENDING_RECHECK while a child is still
        without a pidfd (deferred, or the descriptor limit): it is looked at again soon."""
        timeout = self._next_timeout(timeout)
        if self._pending_exits and (timeout < 0 or timeout > PENDING_RECHECK):
            timeout = PENDING_RECHECK
        return timeout

    cdef bint _waits_for_one_exit_only(self):
        """True when this turn would sleep until one child, just started, ends, and nothing
        else can happen meanwhile: no descriptor watched, no timer, nothing queued, no
        embedding loop. (``spawn(...).wait()`` without pipes.)"""
        return (len(self._pending_exits) == 1 and not self._watchers and not self._ready
                and self.refs > 0 and self.waker is None and self.fd_hook is None
                and self._next_timeout(-1) < 0)

    cdef int _sleep_until_exit(self, PidfdExitWatcher w) except -1:
        """Sleep in ``waitid`` instead of opening, registering, polling and closing a pidfd:
        four system calls fewer, for the same wake-up. A signal wakes it as it would wake
        ``epoll_wait`` (its Python handler runs here; an exception propagates); the child is
        then watched the usual way."""
        cdef int err
        if w.reaped:
            return 0
        with nogil:
            err = cp_wait_ended(w.pid)
        if err == EINTR:
            PyErr_CheckSignals()
        return 0

    cdef int _rearm_undelivered(self, epoll_event *events, int start, int n) except -1:
        cdef IOWatcher w
        cdef int i
        for i in range(start, n):
            w = self._watchers.get(events[i].data.fd)
            if w is not None and w._oneshot:
                self._rearm(w)
        return 0

    def watched_fds(self):
        """[(fd, wants_read, wants_write)] of the active watchers (for an embedding loop that
        must watch them itself: the poll backend has no single descriptor to hand over)."""
        cdef IOWatcher w
        return [(fd, (w.events & EPOLLIN) != 0, (w.events & EPOLLOUT) != 0)
                for fd, w in self._watchers.items()]

    # -- timers ---------------------------------------------------------------------------

    cdef _schedule(self, Timer t):
        self._seq += 1
        t.seq = self._seq
        heapq.heappush(self._timers, (t.when, t.seq, t))
        if self.waker is not None and not self.wake_pending:
            self.wake_pending = True
            self.waker()

    cdef double _next_timeout(self, double limit):
        """Seconds until the earliest active timer (or ``limit``; -1 means no limit)."""
        cdef Timer t
        cdef double delay
        while self._timers:
            t = self._timers[0][2]
            if not t._active or t.seq != self._timers[0][1]:
                heapq.heappop(self._timers)
                continue
            delay = t.when - monotonic()
            if delay < 0:
                delay = 0
            if limit < 0 or delay < limit:
                return delay
            return limit
        return limit

    cdef int _run_timers(self) except -1:
        cdef Timer t
        cdef double now = monotonic()
        while self._timers:
            entry = self._timers[0]
            t = entry[2]
            if not t._active or t.seq != entry[1]:
                heapq.heappop(self._timers)
                continue
            if t.when > now:
                break
            heapq.heappop(self._timers)
            t._set_active(False)
            t.callback(*t.args)
        return 0

    # -- running --------------------------------------------------------------------------

    def run_once(self, double timeout=-1):
        """One turn: queued callbacks, then I/O (waiting at most ``timeout`` s), then timers,
        then the callbacks those queued."""
        self._turn(timeout, None)

    def run_embedded_turn(self):
        """One turn without waiting, given by an embedding loop (asyncio); ``embedded`` is true
        meanwhile, so that work which must follow what the host had queued (see
        ``ChildProcess._on_exit``) can go to the host's queue instead of ours."""
        self._embedded = True
        try:
            self._turn(0, None)
        finally:
            self._embedded = False

    @property
    def embedded(self):
        """True inside ``run_embedded_turn``."""
        return self._embedded

    cdef int _run_ready(self) except -1:
        cdef Py_ssize_t n = len(self._ready)
        while n > 0 and self._ready:
            n -= 1
            callback, args = self._ready.popleft()
            callback(*args)
        return 0

    cdef int _turn(self, double timeout, object done) except -1:
        if self._closed:
            raise RuntimeError("the loop is closed")
        self._run_ready()
        if done is not None and done():
            return 0
        if self._pending_exits:
            if timeout < 0 and self._waits_for_one_exit_only():
                self._sleep_until_exit(<PidfdExitWatcher>self._pending_exits[0])
            self._arm_exits()
        if self._ready:
            timeout = 0
        elif self.refs <= 0 and timeout < 0:
            timeout = 0
        self._poll(self._wake_within(timeout))
        self._run_timers()
        self._run_ready()
        return 0

    cdef int _poll(self, double timeout) except -1:
        cdef int ms = -1 if timeout < 0 else <int>(timeout * 1000.0 + 0.999)
        if self.use_epoll:
            return self._poll_epoll(ms)
        return self._poll_poll(ms)

    cdef int _poll_epoll(self, int ms) except -1:
        cdef epoll_event events[MAX_EVENTS]
        cdef int n, i
        cdef unsigned int ev
        cdef IOWatcher w
        cdef bint spin = self._spin_armed and ms != 0 and self.spin_ns > 0
        cdef long long deadline
        self._spin_armed = False
        with nogil:
            if spin:
                # an IPC message just came: the next is likely close behind. Look for it a
                # little while (yielding, so a peer on this CPU runs) before going to sleep.
                deadline = _now_ns() + self.spin_ns
                while True:
                    n = epoll_wait(self.epfd, events, MAX_EVENTS, 0)
                    if n != 0 or _now_ns() >= deadline:
                        break
                    sched_yield()
                if n == 0:
                    n = epoll_wait(self.epfd, events, MAX_EVENTS, ms)
            else:
                n = epoll_wait(self.epfd, events, MAX_EVENTS, ms)
        if n < 0:
            if errno == EINTR:
                PyErr_CheckSignals()
                return 0
            raise OSError(errno, "epoll_wait")
        for i in range(n):
            w = self._watchers.get(events[i].data.fd)
            if w is None:
                continue
            ev = events[i].events
            if w.spin and ev & EPOLLIN:
                self._spin_armed = True
            try:
                w._dispatch((READABLE if ev & (EPOLLIN | EPOLLHUP | EPOLLERR) else 0)
                            | (WRITABLE if ev & (EPOLLOUT | EPOLLHUP | EPOLLERR) else 0))
            except BaseException:
                # the rest of this batch goes undelivered: level-triggered watchers report
                # again next turn, but one-shot ones were disarmed when reported, so re-arm them
                self._rearm_undelivered(events, i + 1, n)
                raise
        return 0

    cdef int _poll_poll(self, int ms) except -1:
        cdef Py_ssize_t count = len(self._watchers), i = 0
        cdef pollfd *fds = <pollfd *>malloc((count + 1) * sizeof(pollfd))
        cdef int n
        cdef IOWatcher w
        cdef short rev
        if fds == NULL:
            raise MemoryError()
        try:
            watchers = list(self._watchers.values())
            for w in watchers:
                fds[i].fd = w.fd
                fds[i].events = (POLLIN if w.events & EPOLLIN else 0) | (POLLOUT if w.events & EPOLLOUT else 0)
                fds[i].revents = 0
                i += 1
            with nogil:
                n = poll(fds, count, ms)
            if n < 0:
                if errno == EINTR:
                    PyErr_CheckSignals()
                    return 0
                raise OSError(errno, "poll")
            for i in range(count):
                rev = fds[i].revents
                if rev == 0:
                    continue
                w = watchers[i]
                if self._watchers.get(w.fd) is not w:
                    continue
                w._dispatch((READABLE if rev & (POLLIN | POLLHUP | POLLERR | POLLNVAL) else 0)
                            | (WRITABLE if rev & (POLLOUT | POLLHUP | POLLERR | POLLNVAL) else 0))
        finally:
            free(fds)
        return 0

    def run(self):
        """Run until no referenced handle and no queued callback remains."""
        self._check_thread()
        while self.refs > 0 or self._ready:
            self.run_once(-1)

    def run_until(self, done, double timeout=-1):
        """Run until ``done()`` is true; False if ``timeout`` s passed first or nothing can
        make progress any more (no handle, no callback)."""
        self._check_thread()
        cdef double deadline = monotonic() + timeout if timeout >= 0 else -1
        cdef double remaining
        while not done():
            if not self.alive() and not self._watchers and not self._timers:
                return False
            if deadline >= 0:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._turn(remaining, done)
            else:
                # unreferenced handles may still be what ``done`` waits for: block on them too
                self._turn(-1 if (self.refs > 0 or self._ready) else 3600.0, done)
        return True

    def _check_thread(self):
        if threading.get_ident() != self.owner:
            raise RuntimeError("a loop runs only on the thread that created it")


cdef class Handle:
    """What keeps a loop alive: counted in ``loop.refs`` while active and referenced."""

    cdef readonly Loop loop
    cdef bint _active
    cdef bint referenced

    cdef int _set_active(self, bint on) except -1:
        if on == self._active:
            return 0
        self._active = on
        if self.referenced:
            self.loop.refs += 1 if on else -1
        return 0

    def ref(self):
        if not self.referenced:
            self.referenced = True
            if self._active:
                self.loop.refs += 1

    def unref(self):
        if self.referenced:
            self.referenced = False
            if self._active:
                self.loop.refs -= 1

    def has_ref(self):
        return self.referenced


cdef class IOWatcher(Handle):
    """Readiness callbacks for one descriptor; active (and counted in ``refs`` when referenced)
    while reading or writing is wanted."""

    cdef readonly int fd
    cdef unsigned int events
    cdef public object on_readable
    cdef public object on_writable
    cdef public bint spin          # a read here makes the loop look again before sleeping
    cdef bint _oneshot             # epoll disarms it after each event (see Loop._forget)

    def __cinit__(self, Loop loop, int fd, on_readable=None, on_writable=None):
        self.loop = loop
        self.fd = fd
        self.events = 0
        self.on_readable = on_readable
        self.on_writable = on_writable
        self.referenced = True

    cdef int _set(self, unsigned int new) except -1:
        cdef unsigned int old = self.events
        if old == new:
            return 0
        self.loop._update(self, old, new)
        self.events = new
        self._set_active(new != 0)
        return 0

    cdef int _dispatch(self, int what) except -1:
        if what & READABLE and self.events & EPOLLIN:
            self.on_readable()
        if what & WRITABLE and self.events & EPOLLOUT:
            self.on_writable()
        return 0

    def start_reading(self):
        self._set(self.events | EPOLLIN)

    def stop_reading(self):
        self._set(self.events & ~EPOLLIN)

    def start_writing(self):
        self._set(self.events | EPOLLOUT)

    def stop_writing(self):
        self._set(self.events & ~EPOLLOUT)

    def stop(self):
        """Stop watching (before the descriptor is closed)."""
        self._set(0)

    @property
    def reading(self):
        return bool(self.events & EPOLLIN)

    @property
    def writing(self):
        return bool(self.events & EPOLLOUT)

    @property
    def active(self):
        return self.events != 0


cdef class PidfdExitWatcher(IOWatcher):
    """A child's exit, learnt from its pidfd and reaped here: the common case of every child,
    kept in C (one object, no Python frames between the wake-up and ``on_exit(status)``).

    Made by ``watch_exit``. The pidfd is opened at the loop's next poll, and only if the child
    is still running then (see ``Loop._arm_exits``). ``kill()`` goes through the pidfd once
    there is one, before that through the pid: an unreaped child's pid cannot be handed to
    another process.
    """

    cdef readonly int pid
    cdef readonly bint reaped
    cdef object on_exit
    cdef double _defer_until      # monotonic(); 0: open the pidfd at the next poll

    @property
    def pidfd(self):
        return self.fd

    cdef int _reap(self, int *status) except -1:
        """1 once the child has ended (``status`` set), 0 while it runs."""
        cdef int got
        while True:
            got = waitpid(self.pid, status, WNOHANG)
            if got >= 0 or errno != EINTR:
                break
        if got == 0:
            return 0
        if got < 0:
            if errno != ECHILD:
                raise OSError(errno, "waitpid")
            status[0] = 0   # reaped by someone else (a waitpid(-1) elsewhere): status lost
        return 1

    cdef int _finish(self, int status) except -1:
        self.reaped = True
        on_exit, self.on_exit = self.on_exit, None    # no cycle back to the child once done
        if on_exit is not None:
            on_exit(status)
        return 0

    cdef int _arm(self) except -1:
        """At the loop's first poll after the start: reap, or open the pidfd and watch it."""
        cdef int status = 0, fd
        if self.reaped:
            return 0
        if self._reap(&status):
            self._set_active(False)
            return self._finish(status)
        if self._defer_until > 0:
            if monotonic() < self._defer_until:
                self.loop._pending_exits.append(self)    # its pipes will tell us first
                return 0
            self._defer_until = 0
        fd = cp_pidfd_open(self.pid)
        if fd < 0:
            # no descriptor to be had now (the limit): the loop looks again within 10 ms
            self.loop._pending_exits.append(self)
            return 0
        self.fd = fd
        try:
            self._set(EPOLLIN)
        except BaseException:
            self.fd = -1
            close(fd)
            self.loop._pending_exits.append(self)
            raise
        return 0

    cdef int _dispatch(self, int what) except -1:
        cdef int status = 0
        if self.reaped:
            return 0
        try:
            ended = self._reap(&status)
        except BaseException:
            self.loop._rearm(self)      # not over: watch on (the registration is one-shot)
            raise
        if not ended:
            self.loop._rearm(self)      # a spurious wake-up
            return 0
        # the one-shot registration has fired and is disarmed: closing the pidfd is enough
        self.loop._forget(self)
        close(self.fd)
        self.fd = -1
        return self._finish(status)

    def defer(self, double seconds):
        """Open no pidfd for up to ``seconds`` while the child runs: a child whose output pipes
        the loop watches says it is ending by closing them (its exit follows at once), and
        the owner then calls ``stop_deferring()``. Only if the pipes stay open that long (a
        grandchild holds them) is the pidfd opened, so the exit is still reported. Saves
        opening, registering and closing a pidfd for most children, and lets a child whose
        pipes have closed be waited for in ``waitid`` (``Loop._waits_for_one_exit_only``)."""
        if not self.reaped and self.fd < 0:
            self._defer_until = monotonic() + seconds

    def stop_deferring(self):
        """The child's pipes have all ended: watch its exit the usual way from now on."""
        self._defer_until = 0

    @property
    def deferred(self):
        """True while ``defer`` holds the pidfd back."""
        return self._defer_until > 0

    def send_signal(self, int sig):
        """Raises OSError (ESRCH once reaped)."""
        if self.reaped:
            raise OSError(ESRCH, "process has been reaped")
        if self.fd >= 0:
            if cp_pidfd_send_signal(self.fd, sig) < 0:
                raise OSError(errno, "pidfd_send_signal")
        elif kill(self.pid, sig) < 0:
            raise OSError(errno, "kill")

    def ref(self):
        if not self.reaped:
            Handle.ref(self)

    def unref(self):
        if not self.reaped:
            Handle.unref(self)

    def close(self):
        """Forget the child without reaping (used only when the process object is discarded)."""
        if self.reaped:
            return
        self.reaped = True
        self.on_exit = None
        if self.fd >= 0:
            self._set(0)
            close(self.fd)
            self.fd = -1
        else:
            try:
                self.loop._pending_exits.remove(self)
            except ValueError:
                pass
            self._set_active(False)


def watch_exit(Loop loop, int pid, on_exit):
    """Watch child ``pid``; ``on_exit(status)`` once it has ended and been reaped. The pidfd
    comes at the loop's next poll (``Loop._arm_exits``); the child keeps the loop alive from
    now on."""
    cdef PidfdExitWatcher w = PidfdExitWatcher.__new__(PidfdExitWatcher, loop, -1)
    w.pid = pid
    w.on_exit = on_exit
    w._oneshot = True     # a pidfd reports once: the exit
    w._set_active(True)
    loop._pending_exits.append(w)
    if loop.waker is not None and not loop.wake_pending:
        loop.wake_pending = True
        loop.waker()      # an embedding loop (asyncio) must give us a turn to arm it
    return w


cdef class Timer(Handle):
    """A one-shot timer; ``start()`` again to re-arm."""

    cdef public object callback
    cdef public tuple args
    cdef double when
    cdef long long seq

    def __cinit__(self, Loop loop, callback, *args):
        self.loop = loop
        self.callback = callback
        self.args = args
        self.referenced = True

    def start(self, double delay):
        self.when = monotonic() + (delay if delay > 0 else 0)
        self._set_active(True)
        self.loop._schedule(self)

    def stop(self):
        self._set_active(False)

    @property
    def is_active(self):
        return self._active


cdef class Ref(Handle):
    """A handle that keeps the loop alive while active and referenced, for objects that are
    not a single descriptor (a child process, unsent IPC data)."""

    def __cinit__(self, Loop loop):
        self.loop = loop
        self.referenced = True

    def set_active(self, bint on):
        self._set_active(on)
