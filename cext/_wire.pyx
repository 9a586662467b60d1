# cython: language_level=3, boundscheck=False, wraparound=False
"""IPC wire mechanism: socket I/O with descriptors (SCM_RIGHTS, MSG_CMSG_CLOEXEC, MSG_NOSIGNAL)
and frame splitting for Node's formats: JSON lines and 4-byte big-endian length prefixes.

A read is split into all its complete frames here, in C; the codecs (JSON, V8, pickle) are given
as callables so each format stays one small piece of policy in Python.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memchr, memcpy, memmove, memset
from collections import deque
from libc.errno cimport errno, EAGAIN, EINTR

cdef extern from "<errno.h>":
    int EWOULDBLOCK

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)
    cmsghdr *CMSG_FIRSTHDR(msghdr *m)
    cmsghdr *CMSG_NXTHDR(msghdr *m, cmsghdr *c)
    unsigned char *CMSG_DATA(cmsghdr *c)
    size_t CMSG_SPACE(size_t n)
    size_t CMSG_LEN(size_t n)
    int SOL_SOCKET, SCM_RIGHTS, MSG_DONTWAIT, MSG_CTRUNC

cdef extern from *:
    """
    #include <sys/socket.h>
    #ifndef MSG_CMSG_CLOEXEC
    #define MSG_CMSG_CLOEXEC 0
    #endif
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0   /* macOS: our socket pairs carry SO_NOSIGPIPE instead */
    #endif
    """
    int MSG_CMSG_CLOEXEC
    int MSG_NOSIGNAL

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    int F_SETFD, FD_CLOEXEC

#: True when received descriptors are close-on-exec from birth (Linux); elsewhere the caller
#: sets FD_CLOEXEC right after the receive.
CMSG_CLOEXEC = MSG_CMSG_CLOEXEC != 0


DEF OUTBOX_KEEP = 4 * 1024 * 1024     # an emptied buffer larger than this is given back


# A descriptor queued with a frame: sent with the byte at ``start``. Kept in C memory, not in a
# Python container, so that a cycle collection freeing the Outbox cannot drop the numbers
# before __dealloc__ closes them.
ctypedef struct FdMark:
    long long start
    long long end
    int fd


cdef class Outbox:
    """A channel's unsent frames, packed end to end in one buffer so that a burst of small
    messages costs one memcpy each and goes out in a few large writes.

    ``encode(message)`` makes a frame; on TypeError ``fallback`` (if any) gets a second try (the
    fast JSON encoder refuses what the standard one can still write). A callback given with a
    frame is handed back by ``flush()`` once the frame's last byte is in the kernel. A frame may
    carry a descriptor: it rides (SCM_RIGHTS) on the first write of that frame, a write that
    holds nothing else; the Outbox owns it and closes it once sent or dropped.
    """

    cdef char *buf
    cdef Py_ssize_t head, tail, cap
    cdef long long pushed, written          # bytes ever queued / ever written
    cdef object marks                       # deque of (end position, callback)
    cdef FdMark *fdm                        # queued descriptors: fdm[fdm_head:fdm_len]
    cdef Py_ssize_t fdm_head, fdm_len, fdm_cap
    cdef public object encode
    cdef public object fallback
    cdef object arg1, arg2
    cdef int nargs

    def __cinit__(self, encode, fallback=None, tuple args=()):
        """``args``: up to two more positional arguments for ``encode`` (a fast encoder's
        options, passed without a wrapper function or keywords)."""
        if len(args) > 2:
            raise ValueError("at most two extra arguments")
        self.encode = encode
        self.fallback = fallback
        self.nargs = len(args)
        self.arg1 = args[0] if len(args) > 0 else None
        self.arg2 = args[1] if len(args) > 1 else None
        self.marks = deque()

    def __dealloc__(self):
        free(self.buf)
        self._close_fds()
        free(self.fdm)

    cdef void _close_fds(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.fdm_head, self.fdm_len):
            close(self.fdm[i].fd)
        self.fdm_head = self.fdm_len = 0

    cdef int _push_fd(self, long long start, long long end, int fd) except -1:
        cdef FdMark *grown
        cdef Py_ssize_t cap
        if self.fdm_len == self.fdm_cap:
            if self.fdm_head > 0:                 # slide the live marks to the front first
                memmove(self.fdm, self.fdm + self.fdm_head,
                        (self.fdm_len - self.fdm_head) * sizeof(FdMark))
                self.fdm_len -= self.fdm_head
                self.fdm_head = 0
            if self.fdm_len == self.fdm_cap:
                cap = self.fdm_cap * 2 if self.fdm_cap else 8
                grown = <FdMark *>realloc(self.fdm, cap * sizeof(FdMark))
                if grown == NULL:
                    close(fd)
                    raise MemoryError()
                self.fdm = grown
                self.fdm_cap = cap
        self.fdm[self.fdm_len].start = start
        self.fdm[self.fdm_len].end = end
        self.fdm[self.fdm_len].fd = fd
        self.fdm_len += 1
        return 0

    cdef inline void _pop_fd(self) noexcept:
        self.fdm_head += 1
        if self.fdm_head == self.fdm_len:
            self.fdm_head = self.fdm_len = 0

    @property
    def queued(self):
        """Bytes not yet written."""
        return self.tail - self.head

    @property
    def descriptors(self):
        """Descriptors queued and not yet sent."""
        return self.fdm_len - self.fdm_head

    def push_message(self, message, callback=None, int fd=-1):
        """Encode and queue ``message``; returns the bytes now queued. ``fd`` (owned from now
        on, closed even if encoding fails) rides with the frame."""
        try:
            try:
                if self.nargs == 0:
                    frame = self.encode(message)
                elif self.nargs == 2:
                    frame = self.encode(message, self.arg1, self.arg2)
                else:
                    frame = self.encode(message, self.arg1)
            except TypeError:
                if self.fallback is None:
                    raise
                frame = self.fallback(message)
        except BaseException:
            if fd >= 0:
                close(fd)
            raise
        return self.push(frame, callback, fd)

    cpdef Py_ssize_t push(self, frame, callback=None, int fd=-1) except -1:
        """Queue one encoded frame; returns the bytes now queued."""
        cdef Py_buffer view
        cdef Py_ssize_t need, new_cap
        cdef char *grown
        cdef long long start = self.pushed
        try:
            PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        except BaseException:
            if fd >= 0:
                close(fd)
            raise
        try:
            if self.cap - self.tail < view.len:
                if self.head > 0:                 # slide the unsent bytes to the front first
                    memmove(self.buf, self.buf + self.head, self.tail - self.head)
                    self.tail -= self.head
                    self.head = 0
                need = self.tail + view.len
                if self.cap < need:
                    new_cap = self.cap * 2 if self.cap else 65536
                    while new_cap < need:
                        new_cap *= 2
                    grown = <char *>realloc(self.buf, new_cap)
                    if grown == NULL:
                        if fd >= 0:
                            close(fd)
                        raise MemoryError()
                    self.buf = grown
                    self.cap = new_cap
            memcpy(self.buf + self.tail, view.buf, view.len)
            self.tail += view.len
            self.pushed += view.len
        finally:
            PyBuffer_Release(&view)
        if fd >= 0:
            self._push_fd(start, self.pushed, fd)
        if callback is not None:
            self.marks.append((self.pushed, callback))
        return self.tail - self.head

    def flush(self, int fd):
        """Write what the socket takes now (never blocking, no SIGPIPE). Returns the callbacks
        whose frames are now fully written (None if none); OSError on a failed write."""
        cdef ssize_t rc
        cdef Py_ssize_t limit
        cdef int pass_fd
        cdef long long mark_start, mark_end
        while self.head < self.tail:
            limit = self.tail
            pass_fd = -1
            if self.fdm_head < self.fdm_len:
                mark_start = self.fdm[self.fdm_head].start
                mark_end = self.fdm[self.fdm_head].end
                if mark_start == self.written:
                    pass_fd = self.fdm[self.fdm_head].fd
                    limit = self.head + (mark_end - mark_start)
                elif mark_start < self.written:   # its first write went out: now plain bytes
                    close(self.fdm[self.fdm_head].fd)
                    self._pop_fd()
                    continue
                else:
                    limit = self.head + (mark_start - self.written)
            if pass_fd >= 0:
                rc = _send_with_fd(fd, self.buf + self.head, limit - self.head, pass_fd)
            else:
                with nogil:
                    rc = send(fd, self.buf + self.head, limit - self.head,
                              MSG_NOSIGNAL | MSG_DONTWAIT)
            if rc < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN or errno == EWOULDBLOCK:
                    break
                raise OSError(errno, "write")
            if pass_fd >= 0 and rc > 0:
                close(pass_fd)                    # the kernel holds its own reference now
                self._pop_fd()
            self.head += rc
            self.written += rc
        if self.head == self.tail:
            self.head = self.tail = 0
            if self.cap > OUTBOX_KEEP:
                free(self.buf)
                self.buf = NULL
                self.cap = 0
        if not self.marks or self.marks[0][0] > self.written:
            return None
        done = []
        while self.marks and self.marks[0][0] <= self.written:
            done.append(self.marks.popleft()[1])
        return done

    def clear(self):
        """Drop everything unsent (closing its descriptors); returns the callbacks that will
        never see their frame go."""
        pending = [mark[1] for mark in self.marks]
        self.marks.clear()
        self._close_fds()
        self.written += self.tail - self.head
        self.pushed = self.written
        self.head = self.tail = 0
        free(self.buf)
        self.buf = NULL
        self.cap = 0
        return pending


cdef ssize_t _send_with_fd(int sock, char *data, Py_ssize_t length, int pass_fd) noexcept nogil:
    cdef iovec iov
    cdef msghdr msg
    cdef char cbuf[64]
    cdef cmsghdr *cm
    iov.iov_base = data
    iov.iov_len = length
    memset(&msg, 0, sizeof(msg))
    memset(cbuf, 0, sizeof(cbuf))
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    msg.msg_control = cbuf
    msg.msg_controllen = CMSG_SPACE(sizeof(int))
    cm = CMSG_FIRSTHDR(&msg)
    cm.cmsg_level = SOL_SOCKET
    cm.cmsg_type = SCM_RIGHTS
    cm.cmsg_len = CMSG_LEN(sizeof(int))
    memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int))
    return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)


def recv_with_fds(int fd, Py_ssize_t size):
    """(bytes, fds, truncated): b'' at end of file; None when nothing is available now.

    Descriptors that arrive are close-on-exec (MSG_CMSG_CLOEXEC); ``truncated`` says the kernel
    had more control data than fit (those descriptors are lost, as the caller must report).
    """
    cdef object buf = PyBytes_FromStringAndSize(NULL, size)
    cdef iovec iov
    cdef msghdr msg
    cdef char cbuf[512]
    cdef cmsghdr *cm
    cdef ssize_t rc
    cdef int nfd, k, one
    iov.iov_base = PyBytes_AS_STRING(buf)
    iov.iov_len = size
    memset(&msg, 0, sizeof(msg))
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    msg.msg_control = cbuf
    msg.msg_controllen = sizeof(cbuf)
    while True:
        with nogil:
            rc = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)
        if rc >= 0:
            break
        if errno == EINTR:
            continue
        if errno == EAGAIN or errno == EWOULDBLOCK:
            return None
        raise OSError(errno, "read")
    fds = None
    if msg.msg_controllen > 0:
        cm = CMSG_FIRSTHDR(&msg)
        while cm != NULL:
            if cm.cmsg_level == SOL_SOCKET and cm.cmsg_type == SCM_RIGHTS:
                nfd = <int>((cm.cmsg_len - CMSG_LEN(0)) // sizeof(int))
                for k in range(nfd):
                    memcpy(&one, CMSG_DATA(cm) + k * sizeof(int), sizeof(int))
                    if MSG_CMSG_CLOEXEC == 0:
                        fcntl(one, F_SETFD, FD_CLOEXEC)     # no atomic way here: at once
                    if fds is None:
                        fds = []
                    fds.append(one)
            cm = CMSG_NXTHDR(&msg, cm)
    data = buf[:rc] if rc != size else buf
    return data, fds, bool(msg.msg_flags & MSG_CTRUNC)


cdef class LineFramer:
    """Splits a byte stream into newline-terminated frames (Node's JSON channel).

    A newline byte never occurs inside a UTF-8 multi-byte character, so splitting the bytes and
    decoding whole lines is multi-byte safe without a streaming decoder. A long line arriving in
    many reads is joined once, when its newline comes.
    """

    cdef list parts
    cdef Py_ssize_t pending
    cdef public Py_ssize_t max_line

    def __cinit__(self, Py_ssize_t max_line=-1):
        self.parts = []
        self.pending = 0
        self.max_line = max_line

    @property
    def buffering(self):
        return self.pending > 0

    def feed(self, bytes data, decode, fallback=None):
        """Decode every complete line; returns (messages, error, ends) -- ``ends`` holds, for each
        message, the offset in ``data`` just past its frame (to bind a received descriptor).
        When ``decode`` raises, ``fallback`` (if given) has the last word on that line."""
        cdef bytes chunk
        cdef Py_ssize_t base = self.pending, start = 0, n, pos
        cdef const char *p
        cdef const char *nl
        messages = []
        ends = []
        if base:
            if memchr(PyBytes_AS_STRING(data), 10, PyBytes_GET_SIZE(data)) == NULL:
                self.parts.append(data)
                self.pending += len(data)
                return self._check_limit(messages, ends)
            self.parts.append(data)
            chunk = b"".join(self.parts)
            self.parts = []
            self.pending = 0
        else:
            chunk = data
        p = PyBytes_AS_STRING(chunk)
        n = PyBytes_GET_SIZE(chunk)
        while start < n:
            nl = <const char *>memchr(p + start, 10, n - start)
            if nl == NULL:
                break
            pos = nl - p
            if self.max_line >= 0 and pos - start > self.max_line:
                self.parts = []
                self.pending = 0
                return messages, ValueError("message larger than the channel's limit"), ends
            if pos > start:
                line = chunk[start:pos]
                try:
                    messages.append(decode(line))
                except Exception as exc:
                    if fallback is None:
                        return messages, exc, ends
                    try:
                        messages.append(fallback(line))
                    except Exception as exc2:
                        return messages, exc2, ends
                ends.append(pos + 1 - base)
            start = pos + 1
        if start < n:
            self.parts = [chunk[start:]]
            self.pending = n - start
        return self._check_limit(messages, ends)

    cdef tuple _check_limit(self, list messages, list ends):
        if self.max_line >= 0 and self.pending > self.max_line:
            self.parts = []
            self.pending = 0
            return messages, ValueError("message larger than the channel's limit"), ends
        return messages, None, ends


cdef class LengthFramer:
    """Splits a byte stream into frames of a 4-byte big-endian *unsigned* length + payload
    (Node's 'advanced' channel, and ours for pickle). A length above ``max_frame`` is an error
    found before anything is allocated for it."""

    cdef bytearray buf
    cdef public Py_ssize_t max_frame

    def __cinit__(self, Py_ssize_t max_frame=1 << 30):
        self.buf = bytearray()
        self.max_frame = max_frame

    @property
    def buffering(self):
        return len(self.buf) > 0

    def feed(self, bytes data, decode, fallback=None):
        """Decode every complete frame; (messages, error, ends) as LineFramer.feed."""
        cdef Py_ssize_t base = len(self.buf), start = 0, n, length
        cdef const unsigned char *p
        cdef bytes chunk
        messages = []
        ends = []
        if base:
            self.buf += data
            if len(self.buf) < 4:
                return messages, None, ends
            length = (self.buf[0] << 24) | (self.buf[1] << 16) | (self.buf[2] << 8) | self.buf[3]
            if length > self.max_frame:
                self.buf = bytearray()
                return messages, _too_large(length, self.max_frame), ends
            if len(self.buf) < 4 + length:
                return messages, None, ends     # still waiting: no copy of what we hold
            chunk = bytes(self.buf)
            self.buf = bytearray()
        else:
            chunk = data
        p = <const unsigned char *>PyBytes_AS_STRING(chunk)
        n = PyBytes_GET_SIZE(chunk)
        while n - start >= 4:
            length = ((<Py_ssize_t>p[start] << 24) | (<Py_ssize_t>p[start + 1] << 16)
                      | (<Py_ssize_t>p[start + 2] << 8) | <Py_ssize_t>p[start + 3])
            if length > self.max_frame:
                return messages, _too_large(length, self.max_frame), ends
            if n - start - 4 < length:
                break
            payload = chunk[start + 4:start + 4 + length]
            try:
                messages.append(decode(payload))
            except Exception as exc:
                if fallback is None:
                    return messages, exc, ends
                try:
                    messages.append(fallback(payload))
                except Exception as exc2:
                    return messages, exc2, ends
            start += 4 + length
            ends.append(start - base)
        if start < n:
            self.buf = bytearray(chunk[start:])
        return messages, None, ends


cdef object _too_large(Py_ssize_t length, Py_ssize_t limit):
    return ValueError(f"frame of {length} bytes is larger than the channel's limit ({limit})")


def frame_length_prefix(bytes payload):
    """4-byte big-endian length + payload."""
    cdef Py_ssize_t n = len(payload)
    if n > 0xFFFFFFFF:
        raise ValueError("message too large for a 4-byte length prefix")
    return bytes(((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)) + payload


cdef inline bint _is_internal(object message):
    cdef object cmd
    if type(message) is not dict:
        return False
    cmd = (<dict>message).get("cmd")
    return type(cmd) is str and len(<str>cmd) > 5 and (<str>cmd).startswith("NODE_")


def is_internal(message):
    """Node's rule: a dict whose ``cmd`` is a string 'NODE_' + something."""
    return _is_internal(message)


cdef class WithHandle:
    """A received message and the handle (socket) that came with it, in a batch to dispatch."""

    cdef public object message
    cdef public object handle

    def __cinit__(self, message, handle):
        self.message = message
        self.handle = handle


def internal_positions(list messages):
    """Indices of the internal messages of a batch (None when there are none: the usual case)."""
    cdef Py_ssize_t i, n = len(messages)
    found = None
    for i in range(n):
        if _is_internal(messages[i]):
            if found is None:
                found = []
            found.append(i)
    return found


_plain_emit = None


def set_plain_emit(emit):
    """EventEmitter.emit: owners that keep it get their 'message' listeners called from here,
    without a Python frame of emit() per message (the order and arity rules are the same)."""
    global _plain_emit
    _plain_emit = emit


cdef inline bint _call_listeners(tuple entries, object message, object handle) except -1:
    """Call each (fn, nargs, once) entry as emit() would; 0 if a once-listener needs emit()."""
    cdef tuple entry
    cdef Py_ssize_t nargs
    for entry in entries:
        if entry[2] is not None:
            return 0
    for entry in entries:
        nargs = entry[1]
        if nargs >= 2:
            entry[0](message, handle)
        elif nargs == 1:
            entry[0](message)
        else:
            entry[0]()
    return 1


def dispatch(list messages, Py_ssize_t start, object owner, object handle, object on_raise):
    """Deliver ``messages[start:]`` to ``owner``: 'internalMessage', 'message', or the queue of
    messages waiting for a 'message' listener. If a listener raises, ``on_raise(next_index)``
    schedules the rest before the exception goes on. A ``WithHandle`` entry carries its own
    handle."""
    cdef Py_ssize_t i, n = len(messages)
    cdef WithHandle wrapped
    cdef bint plain = _plain_emit is not None and getattr(type(owner), "emit", None) is _plain_emit
    emit = owner.emit
    for i in range(start, n):
        message = messages[i]
        h = handle
        if type(message) is WithHandle:
            wrapped = <WithHandle>message
            message = wrapped.message
            h = wrapped.handle
        try:
            if _is_internal(message):
                emit("internalMessage", message, h)
            elif owner._pending_messages is None:
                entries = owner._events.get("message")
                if not entries:
                    owner._queue_message(message, h)
                elif not (plain and type(entries) is tuple and _call_listeners(entries, message, h)):
                    emit("message", message, h)
            else:
                owner._queue_message(message, h)
        except BaseException:
            on_raise(i + 1)
            raise
