# cython: language_level=3, boundscheck=False, wraparound=False
"""Non-blocking descriptor I/O for the streams: no exception on the hot "would block" path, and
writes that can never raise SIGPIPE (a child that exits early is an EPIPE error event)."""

from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.errno cimport errno, EAGAIN, EINTR

cdef extern from "<errno.h>":
    int EWOULDBLOCK

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t n)
    ssize_t write(int fd, const void *buf, size_t n)

cdef extern from "<sys/socket.h>" nogil:
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_DONTWAIT

cdef extern from *:
    """
    #include <sys/socket.h>
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0   /* macOS: our socket pairs carry SO_NOSIGPIPE instead */
    #endif
    """
    int MSG_NOSIGNAL

cdef extern from "Python.h":
    PyObject *raw_bytes "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n)
    char *raw_bytes_data "PyBytes_AS_STRING"(PyObject *b)
    int _PyBytes_Resize(PyObject **b, Py_ssize_t n)


def read_chunk(int fd, Py_ssize_t size):
    """bytes read (b'' at end of file), or None when nothing is available now."""
    cdef PyObject *buf = raw_bytes(NULL, size)
    cdef ssize_t n
    cdef int err
    if buf == NULL:
        raise MemoryError()
    cdef char *p = raw_bytes_data(buf)
    while True:
        with nogil:
            n = read(fd, p, size)
        if n >= 0:
            break
        err = errno
        if err == EINTR:
            continue
        Py_XDECREF(buf)
        if err == EAGAIN or err == EWOULDBLOCK:
            return None
        raise OSError(err, "read")
    if n != size and _PyBytes_Resize(&buf, n) < 0:
        raise MemoryError()
    result = <object>buf
    Py_XDECREF(buf)
    return result


def write_some(int fd, object data, bint is_socket):
    """Bytes written from ``data`` (0 when the descriptor is full); OSError otherwise."""
    cdef Py_buffer view
    cdef ssize_t n
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        while True:
            with nogil:
                if is_socket:
                    n = send(fd, view.buf, view.len, MSG_NOSIGNAL | MSG_DONTWAIT)
                else:
                    n = write(fd, view.buf, view.len)
            if n >= 0:
                return n
            if errno == EINTR:
                continue
            if errno == EAGAIN or errno == EWOULDBLOCK:
                return 0
            raise OSError(errno, "write")
    finally:
        PyBuffer_Release(&view)
