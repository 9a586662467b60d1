# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""V8's value serialization format (the 'advanced' IPC mode of Node 20), both ways.

Mechanism only: the writer fills a growable C buffer, the reader walks a cursor over the
received bytes, checking every length against the bytes left *before* it allocates anything.
Which Python type a Date, RegExp, Error or typed array becomes (and what a Python object other
than plain data is sent as) is decided in ``_v8types``; the table is docs/v8.md.

Written from the format's facts (tags, header version 15, back-reference numbering, BigInt
bitfield, Node's host-object layout for ArrayBufferViews); see node-ipc-protocol.md §3.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_SIZE
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.math cimport floor, fabs

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    unsigned int PyUnicode_READ_CHAR(object o, Py_ssize_t i)
    object PyUnicode_DecodeLatin1(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_DecodeUTF16(const char *s, Py_ssize_t size, const char *errors,
                                 int *byteorder)
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyLong_FromLongLong(long long v)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    object PyFloat_FromDouble(double v)
    double PyFloat_AS_DOUBLE(object o)
    bint PyUnicode_Check(object o)
    bint PyLong_Check(object o)
    bint PyFloat_Check(object o)
    bint PyDict_Check(object o)
    bint PyList_Check(object o)
    bint PyTuple_Check(object o)
    bint PyAnySet_Check(object o)
    bint PyBytes_Check(object o)
    bint PyByteArray_Check(object o)
    bint PyMemoryView_Check(object o)
    int PY_LITTLE_ENDIAN

cdef enum:
    MAX_DEPTH = 1000            # nesting deeper than this is refused (no C stack overflow)
    SPARSE_SLACK = 65536        # a sparse array may have this many slots beyond 64 per byte
    # tags
    T_PADDING = 0x00
    T_VERSION = 0xFF
    T_UNDEFINED = 0x5F          # _
    T_NULL = 0x30               # 0
    T_TRUE = 0x54               # T
    T_FALSE = 0x46              # F
    T_INT32 = 0x49              # I
    T_UINT32 = 0x55             # U
    T_DOUBLE = 0x4E             # N
    T_BIGINT = 0x5A             # Z
    T_UTF8 = 0x53               # S
    T_ONE_BYTE = 0x22           # "
    T_TWO_BYTE = 0x63           # c
    T_REF = 0x5E                # ^
    T_OBJECT = 0x6F             # o
    T_END_OBJECT = 0x7B         # {
    T_SPARSE = 0x61             # a
    T_END_SPARSE = 0x40         # @
    T_DENSE = 0x41              # A
    T_END_DENSE = 0x24          # $
    T_HOLE = 0x2D               # -
    T_DATE = 0x44               # D
    T_TRUE_OBJ = 0x79           # y
    T_FALSE_OBJ = 0x78          # x
    T_NUMBER_OBJ = 0x6E         # n
    T_BIGINT_OBJ = 0x7A         # z
    T_STRING_OBJ = 0x73         # s
    T_REGEXP = 0x52             # R
    T_MAP = 0x3B                # ;
    T_END_MAP = 0x3A            # :
    T_SET = 0x27                # '
    T_END_SET = 0x2C            # ,
    T_ARRAY_BUFFER = 0x42       # B
    T_VIEW = 0x56               # V
    T_HOST = 0x5C               # backslash
    T_ERROR = 0x72              # r
    T_VERIFY_COUNT = 0x3F       # ?
    # error sub-tags
    E_MESSAGE = 0x6D            # m
    E_STACK = 0x73              # s
    E_CAUSE = 0x63              # c
    E_END = 0x2E                # .


#: The format version written in the header (V8 11.x, Node 20).
VERSION = 15
#: The oldest version read (13 and 14 differ from 15 only where noted).
MIN_VERSION = 13
#: Nesting limit of both directions.
MAX_NESTING = MAX_DEPTH


class V8DecodeError(ValueError):
    """The bytes are not a value in V8's serialization format (or not one Python can hold)."""


cdef object _types = None       # child_process._v8types, imported on first need


cdef object _policy():
    global _types
    if _types is None:
        from child_process import _v8types
        _types = _v8types
    return _types


# =============================================================================== writing

cdef class _Writer:
    cdef unsigned char *buf
    cdef Py_ssize_t length, cap, base
    cdef uint32_t next_id
    cdef object first           # the first object given an id (no dict needed for one)
    cdef dict ids               # id(obj) -> back-reference id, from the second object on
    cdef list keep              # the objects in ``ids``, so their id() stays theirs
    cdef int depth
    cdef bint busy

    def __cinit__(self):
        self.cap = 256
        self.buf = <unsigned char *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)

    cdef void reset(self, Py_ssize_t base):
        self.length = 0
        self.base = base
        self.next_id = 0
        self.first = None
        self.ids = None
        self.keep = None
        self.depth = 0

    cdef int grow(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef unsigned char *p
        while cap < self.length + need:
            cap *= 2
        p = <unsigned char *>realloc(self.buf, cap)
        if p == NULL:
            raise MemoryError()
        self.buf = p
        self.cap = cap
        return 0

    cdef inline int put(self, const void *data, Py_ssize_t n) except -1:
        if self.length + n > self.cap:
            self.grow(n)
        memcpy(self.buf + self.length, data, n)
        self.length += n
        return 0

    cdef inline int tag(self, unsigned char t) except -1:
        if self.length + 1 > self.cap:
            self.grow(1)
        self.buf[self.length] = t
        self.length += 1
        return 0

    cdef inline int varint(self, uint64_t v) except -1:
        if self.length + 10 > self.cap:
            self.grow(10)
        while v >= 0x80:
            self.buf[self.length] = <unsigned char>((v & 0x7F) | 0x80)
            self.length += 1
            v >>= 7
        self.buf[self.length] = <unsigned char>v
        self.length += 1
        return 0

    cdef inline int f64(self, double d) except -1:
        cdef unsigned char tmp[8]
        cdef int i
        memcpy(tmp, &d, 8)
        if not PY_LITTLE_ENDIAN:
            for i in range(4):
                tmp[i], tmp[7 - i] = tmp[7 - i], tmp[i]
        return self.put(tmp, 8)

    cdef int seen(self, object obj) except -1:
        """1 after writing a back-reference to ``obj``; 0 after giving it the next id.
        Ids are handed out in V8's order: to each object (not primitive) before its contents."""
        cdef object ref
        if self.next_id == 0:
            self.first = obj
            self.next_id = 1
            return 0
        if self.ids is None:
            if self.first is obj:
                self.tag(T_REF)
                self.varint(0)
                return 1
            self.ids = {id(self.first): 0}
            self.keep = [self.first]
        key = id(obj)
        ref = self.ids.get(key)
        if ref is not None:
            self.tag(T_REF)
            self.varint(<uint32_t>ref)
            return 1
        self.ids[key] = self.next_id
        self.keep.append(obj)
        self.next_id += 1
        return 0

    cdef int enter(self) except -1:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"value nested more than {MAX_DEPTH} levels deep")
        return 0

    # -- values ---------------------------------------------------------------------------

    cdef int write(self, object v) except -1:
        cdef type t = type(v)
        if t is str:
            return self.write_str(v)
        if t is int:
            return self.write_int(v)
        if t is dict:
            return self.write_dict(<dict>v)
        if v is None:
            return self.tag(T_NULL)
        if t is bool:
            return self.tag(T_TRUE if v is True else T_FALSE)
        if t is float:
            self.tag(T_DOUBLE)
            return self.f64(PyFloat_AS_DOUBLE(v))
        if t is list or t is tuple:
            return self.write_sequence(v)
        if t is bytes:
            return self.write_buffer(v, 10)
        return self.write_other(v)

    cdef int write_other(self, object v) except -1:
        """Subclasses of the plain types, then what ``_v8types.describe`` makes of the rest."""
        if isinstance(v, bool):
            return self.tag(T_TRUE if v else T_FALSE)
        if PyLong_Check(v):
            return self.write_int(v)
        if PyFloat_Check(v):
            self.tag(T_DOUBLE)
            return self.f64(float(v))
        if PyUnicode_Check(v):
            return self.write_str(v)
        if PyDict_Check(v):
            return self.write_dict(v)
        if PyList_Check(v) or PyTuple_Check(v):
            return self.write_sequence(v)
        if PyAnySet_Check(v):
            return self.write_set(v)
        if PyBytes_Check(v) or PyByteArray_Check(v) or PyMemoryView_Check(v):
            return self.write_buffer(v, 10)
        if self.seen(v):
            return 0
        d = _policy().describe(v)
        kind = d[0]
        if kind == 0:
            return self.write_view(d[2], d[1])
        if kind == 1:
            self.tag(T_DATE)
            return self.f64(d[1])
        if kind == 2:
            self.tag(T_REGEXP)
            self.write_str(d[1])
            return self.varint(<uint32_t>d[2])
        if kind == 3:
            return self.write_error(d)
        raise TypeError(f"cannot serialize {type(v).__name__}")     # pragma: no cover

    cdef int write_int(self, object v) except -1:
        cdef int overflow = 0
        cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
        cdef uint32_t z
        if overflow == 0:
            if -2147483648 <= x <= 2147483647:
                self.tag(T_INT32)
                z = (<uint32_t>(<int32_t>x) << 1) ^ <uint32_t>(<int32_t>x >> 31)
                return self.varint(z)
            if -9007199254740992 <= x <= 9007199254740992:
                self.tag(T_DOUBLE)
                return self.f64(<double>x)     # exact: Node gets a plain number
        return self.write_bigint(v)

    cdef int write_bigint(self, object v) except -1:
        cdef bint negative = v < 0
        magnitude = -v if negative else v
        bits = magnitude.bit_length()
        if bits > (1 << 30):
            raise ValueError("int too large for a JavaScript BigInt (2**30 bits)")
        nbytes = ((bits + 63) // 64) * 8
        digits = magnitude.to_bytes(nbytes, "little")
        self.tag(T_BIGINT)
        self.varint((<uint64_t>nbytes << 1) | negative)
        return self.put(PyBytes_AS_STRING(digits), nbytes)

    cdef int write_str(self, object s) except -1:
        cdef int kind = PyUnicode_KIND(s)
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s), i, units, nbytes, at
        cdef uint32_t c
        cdef uint16_t *out
        cdef const uint16_t *src2
        cdef const uint32_t *src4 = NULL
        if kind == 1:
            self.tag(T_ONE_BYTE)
            self.varint(<uint64_t>n)
            return self.put(PyUnicode_DATA(s), n)
        if kind == 2:
            units = n
        else:
            src4 = <const uint32_t *>PyUnicode_DATA(s)
            units = n
            for i in range(n):
                if src4[i] > 0xFFFF:
                    units += 1
        nbytes = units * 2
        # V8 keeps two-byte data 2-aligned within the payload: a padding tag when needed
        if (self.length - self.base + 1 + _varint_size(<uint64_t>nbytes)) & 1:
            self.tag(T_PADDING)
        self.tag(T_TWO_BYTE)
        self.varint(<uint64_t>nbytes)
        if self.length + nbytes > self.cap:
            self.grow(nbytes)
        at = self.length
        if kind == 2 and PY_LITTLE_ENDIAN:
            memcpy(self.buf + at, PyUnicode_DATA(s), nbytes)
        elif kind == 2:
            src2 = <const uint16_t *>PyUnicode_DATA(s)
            for i in range(n):
                self.buf[at + 2 * i] = src2[i] & 0xFF
                self.buf[at + 2 * i + 1] = src2[i] >> 8
        else:
            for i in range(n):
                c = src4[i]
                if c > 0xFFFF:
                    c -= 0x10000
                    _put_unit(self.buf + at, 0xD800 | (c >> 10))
                    _put_unit(self.buf + at + 2, 0xDC00 | (c & 0x3FF))
                    at += 4
                else:
                    _put_unit(self.buf + at, c)
                    at += 2
        self.length += nbytes
        return 0

    cdef int write_key(self, object key) except -1:
        """An object key; array-index keys ('0' … '4294967294') are numbers, as V8 writes them."""
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(key), i
        cdef unsigned int c
        cdef uint64_t index = 0
        if 0 < n <= 10:
            c = PyUnicode_READ_CHAR(key, 0)
            if 0x30 <= c <= 0x39 and (c != 0x30 or n == 1):
                for i in range(n):
                    c = PyUnicode_READ_CHAR(key, i)
                    if not 0x30 <= c <= 0x39:
                        return self.write_str(key)
                    index = index * 10 + (c - 0x30)
                if index <= 2147483647:
                    self.tag(T_INT32)
                    return self.varint((<uint32_t>index) << 1)
                if index < 4294967295:
                    self.tag(T_DOUBLE)
                    return self.f64(<double>index)
        return self.write_str(key)

    cdef int write_dict(self, object d) except -1:
        cdef bint plain = True
        cdef uint32_t count = 0
        if self.seen(d):
            return 0
        self.enter()
        for key in d:
            if not PyUnicode_Check(key):
                plain = False
                break
        if plain:
            self.tag(T_OBJECT)
            for key, value in d.items():
                self.write_key(key)
                self.write(value)
                count += 1
            self.tag(T_END_OBJECT)
            self.varint(count)
        else:
            self.tag(T_MAP)
            for key, value in d.items():
                self.write(key)
                self.write(value)
                count += 2
            self.tag(T_END_MAP)
            self.varint(count)
        self.depth -= 1
        return 0

    cdef int write_sequence(self, object seq) except -1:
        cdef Py_ssize_t n = len(seq), i
        if self.seen(seq):
            return 0
        self.enter()
        self.tag(T_DENSE)
        self.varint(<uint64_t>n)
        for i in range(n):
            if i >= len(seq):
                raise RuntimeError("list changed size during serialization")
            self.write(seq[i])
        self.tag(T_END_DENSE)
        self.varint(0)
        self.varint(<uint64_t>n)
        self.depth -= 1
        return 0

    cdef int write_set(self, object s) except -1:
        cdef uint32_t count = 0
        if self.seen(s):
            return 0
        self.enter()
        self.tag(T_SET)
        for item in s:
            self.write(item)
            count += 1
        self.tag(T_END_SET)
        self.varint(count)
        self.depth -= 1
        return 0

    cdef int write_buffer(self, object v, uint32_t type_index) except -1:
        if self.seen(v):
            return 0
        return self.write_view(v, type_index)

    cdef int write_view(self, object v, uint32_t type_index) except -1:
        """Node's channel form of an ArrayBufferView: host object, 0, type index, bytes."""
        cdef Py_buffer view
        if PyBytes_Check(v):
            self.tag(T_HOST)
            self.varint(0)
            self.varint(type_index)
            self.varint(<uint64_t>len(v))
            return self.put(PyBytes_AS_STRING(v), len(v))
        try:
            PyObject_GetBuffer(v, &view, PyBUF_SIMPLE)
        except BufferError:
            v = memoryview(v).tobytes()     # not contiguous: one copy
            PyObject_GetBuffer(v, &view, PyBUF_SIMPLE)
        try:
            if view.len > 0xFFFFFFFF:
                raise ValueError("buffer too large for the V8 format (4 GiB)")
            self.tag(T_HOST)
            self.varint(0)
            self.varint(type_index)
            self.varint(<uint64_t>view.len)
            self.put(view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int write_error(self, tuple d) except -1:
        self.enter()
        self.tag(T_ERROR)
        if d[1]:
            self.tag(<unsigned char>d[1])
        self.tag(E_MESSAGE)
        self.write_str(str(d[2]))
        if len(d) > 4:
            self.tag(E_CAUSE)
            self.write(d[4])
        self.tag(E_STACK)
        self.write_str(str(d[3]))
        self.tag(E_END)
        self.depth -= 1
        return 0


cdef inline void _put_unit(unsigned char *p, uint32_t unit):
    p[0] = unit & 0xFF
    p[1] = (unit >> 8) & 0xFF


cdef inline int _varint_size(uint64_t v):
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef _Writer _spare = None      # one writer kept warm; a nested or concurrent call makes its own


cdef bytes _encode(object value, bint frame):
    global _spare
    cdef _Writer w = _spare
    cdef Py_ssize_t n
    if w is None or w.busy:
        w = _Writer()
    else:
        _spare = None
    w.busy = True
    try:
        w.reset(4 if frame else 0)
        if frame:
            w.put(b"\0\0\0\0", 4)
        w.tag(T_VERSION)
        w.varint(VERSION)
        w.write(value)
        if frame:
            n = w.length - 4
            if n > 0xFFFFFFFF:
                raise ValueError("message too large for one frame (4 GiB)")
            w.buf[0] = (n >> 24) & 0xFF
            w.buf[1] = (n >> 16) & 0xFF
            w.buf[2] = (n >> 8) & 0xFF
            w.buf[3] = n & 0xFF
        return PyBytes_FromStringAndSize(<char *>w.buf, w.length)
    finally:
        w.first = w.ids = w.keep = None
        w.busy = False
        if w.cap > (1 << 20):       # do not keep a huge buffer alive
            w = None
        if _spare is None:
            _spare = w


def v8_encode(value):
    """V8's serialization of ``value``: header ``FF 0F`` + the value (Node's channel form of
    Buffers and typed arrays). TypeError for a value with no V8 counterpart."""
    return _encode(value, False)


def v8_encode_frame(value):
    """What the 'advanced' channel writes: 4-byte big-endian unsigned length + v8_encode()."""
    return _encode(value, True)


# =============================================================================== reading

cdef class _Reader:
    cdef const unsigned char *p
    cdef Py_ssize_t pos, end, size
    cdef list objs              # back-reference id -> object
    cdef int depth
    cdef uint32_t version

    cdef int fail(self, str what) except -1:
        raise V8DecodeError(f"{what} (at byte {self.pos} of {self.size})")

    cdef inline int need(self, Py_ssize_t n) except -1:
        if n < 0 or self.end - self.pos < n:
            self.fail(f"truncated: {n} bytes needed, {self.end - self.pos} left")
        return 0

    cdef inline int read_byte(self) except -1:
        if self.pos >= self.end:
            self.fail("truncated")
        self.pos += 1
        return self.p[self.pos - 1]

    cdef int read_tag(self) except -1:
        """The next tag, skipping padding bytes (which V8 may put anywhere a tag goes)."""
        cdef int t
        while True:
            t = self.read_byte()
            if t != T_PADDING:
                return t

    cdef int peek_tag(self) except -1:
        while self.pos < self.end and self.p[self.pos] == T_PADDING:
            self.pos += 1
        if self.pos >= self.end:
            self.fail("truncated")
        return self.p[self.pos]

    cdef uint64_t varint(self) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t result = 0, b
        cdef int shift = 0
        while True:
            if self.pos >= self.end:
                self.fail("truncated varint")
            b = self.p[self.pos]
            self.pos += 1
            if shift == 63 and (b & 0x7E):
                self.fail("varint out of range")
            result |= (b & 0x7F) << shift
            if not (b & 0x80):
                return result
            shift += 7
            if shift > 63:
                self.fail("varint too long")

    cdef uint32_t u32(self) except? 0xFFFFFFFF:
        cdef uint64_t v = self.varint()
        if v > 0xFFFFFFFF:
            self.fail("varint out of the 32-bit range")
        return <uint32_t>v

    cdef Py_ssize_t length(self, Py_ssize_t unit) except -1:
        """A length of ``unit``-byte items that must fit in what is left of the payload."""
        cdef uint64_t n = self.u32()
        if n * unit > <uint64_t>(self.end - self.pos):
            self.fail(f"length {n} runs past the end of the message")
        return <Py_ssize_t>n

    cdef double f64(self) except? -1.5:
        cdef double d
        cdef unsigned char tmp[8]
        cdef int i
        self.need(8)
        memcpy(tmp, self.p + self.pos, 8)
        self.pos += 8
        if not PY_LITTLE_ENDIAN:
            for i in range(4):
                tmp[i], tmp[7 - i] = tmp[7 - i], tmp[i]
        memcpy(&d, tmp, 8)
        return d

    cdef Py_ssize_t reserve(self, object obj):
        self.objs.append(obj)
        return len(self.objs) - 1

    # -- values ---------------------------------------------------------------------------

    cdef object read(self):
        cdef object v
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"value nested more than {MAX_DEPTH} levels deep")
        v = self.read_tagged(self.read_tag())
        self.depth -= 1
        return v

    cdef object read_tagged(self, int t):
        cdef uint64_t u
        cdef Py_ssize_t n
        if t == T_OBJECT:
            return self.read_object()
        if t == T_ONE_BYTE:
            n = self.length(1)
            self.pos += n
            return PyUnicode_DecodeLatin1(<const char *>self.p + self.pos - n, n, NULL)
        if t == T_INT32:
            u = self.u32()
            return PyLong_FromLongLong(<int32_t>((u >> 1) ^ (-(u & 1))))
        if t == T_DOUBLE:
            return _number(self.f64())
        if t == T_TWO_BYTE:
            return self.read_two_byte()
        if t == T_DENSE:
            return self.read_dense()
        if t == T_TRUE:
            return True
        if t == T_FALSE:
            return False
        if t == T_NULL or t == T_UNDEFINED:
            return None
        if t == T_REF:
            u = self.u32()
            if u >= <uint64_t>len(self.objs):
                self.fail(f"back-reference to unknown object {u}")
            return self.objs[u]
        if t == T_UTF8:
            n = self.length(1)
            self.pos += n
            return PyUnicode_DecodeUTF8(<const char *>self.p + self.pos - n, n, "replace")
        if t == T_SPARSE:
            return self.read_sparse()
        if t == T_MAP:
            return self.read_map()
        if t == T_SET:
            return self.read_set()
        if t == T_HOST:
            return self.read_host()
        if t == T_BIGINT:
            return self.read_bigint()
        if t == T_DATE:
            n = self.reserve(None)
            v = self.call("make_date", (self.f64(),))
            self.objs[n] = v
            return v
        if t == T_REGEXP:
            n = self.reserve(None)
            source = self.read_string()
            v = self.call("make_regexp", (source, self.u32()))
            self.objs[n] = v
            return v
        if t == T_ERROR:
            return self.read_error()
        if t == T_ARRAY_BUFFER:
            return self.read_array_buffer()
        if t == T_UINT32:
            return PyLong_FromLongLong(self.u32())
        if t == T_TRUE_OBJ or t == T_FALSE_OBJ:
            self.reserve(t == T_TRUE_OBJ)
            return t == T_TRUE_OBJ
        if t == T_NUMBER_OBJ:
            v = _number(self.f64())
            self.reserve(v)
            return v
        if t == T_BIGINT_OBJ:
            n = self.reserve(None)
            v = self.read_bigint()
            self.objs[n] = v
            return v
        if t == T_STRING_OBJ:
            n = self.reserve(None)
            v = self.read_string()
            self.objs[n] = v
            return v
        if t == T_VERIFY_COUNT:
            while t == T_VERIFY_COUNT:      # a loop: a run of them must not recurse
                self.u32()
                t = self.read_tag()
            return self.read_tagged(t)
        self.pos -= 1
        self.fail(f"unknown or unsupported tag 0x{t:02x}")

    cdef object call(self, str name, tuple args):
        """A _v8types constructor; its errors become V8DecodeError."""
        try:
            return getattr(_policy(), name)(*args)
        except Exception as exc:
            raise V8DecodeError(f"{exc} (at byte {self.pos} of {self.size})") from exc

    cdef object read_string(self):
        v = self.read()
        if not PyUnicode_Check(v):
            self.fail("a string was expected")
        return v

    cdef object read_two_byte(self):
        cdef Py_ssize_t n = self.length(1)
        cdef int order = -1     # little-endian
        if n & 1:
            self.fail("two-byte string of an odd number of bytes")
        self.pos += n
        return PyUnicode_DecodeUTF16(<const char *>self.p + self.pos - n, n, "surrogatepass",
                                     &order)

    cdef object read_key(self):
        """An object key: a string, or a number V8 wrote for an integer-like key."""
        k = self.read()
        if PyUnicode_Check(k):
            return k
        if PyLong_Check(k):
            return str(k)
        if PyFloat_Check(k):
            return _js_number_string(k)
        self.fail(f"object key of type {type(k).__name__}")

    cdef object read_object(self):
        cdef dict d = {}
        cdef uint32_t count = 0
        self.objs.append(d)
        while self.peek_tag() != T_END_OBJECT:
            key = self.read_key()
            d[key] = self.read()
            count += 1
        self.pos += 1
        if self.u32() != count:
            self.fail("object property count does not match")
        return d

    cdef int skip_properties(self, int end_tag, uint32_t *count) except -1:
        """Named properties of an array: read (so back-references stay numbered) and dropped."""
        while self.peek_tag() != end_tag:
            self.read_key()
            self.read()
            count[0] += 1
        self.pos += 1
        return 0

    cdef object read_dense(self):
        cdef Py_ssize_t n = self.length(1), i
        cdef uint32_t count = 0
        cdef list items = PyList_New(n)
        for i in range(n):
            Py_INCREF(None)
            PyList_SET_ITEM(items, i, None)
        self.objs.append(items)
        for i in range(n):
            if self.peek_tag() == T_HOLE:
                self.pos += 1
                continue
            items[i] = self.read()
        self.skip_properties(T_END_DENSE, &count)
        if self.u32() != count or self.u32() != <uint64_t>n:
            self.fail("dense array counts do not match")
        return items

    cdef object read_sparse(self):
        cdef uint64_t n = self.u32()
        cdef uint32_t count = 0
        cdef Py_ssize_t i
        cdef list items
        if n > <uint64_t>(SPARSE_SLACK + 64 * self.size):
            self.fail(f"sparse array of length {n} is beyond the limit for a "
                      f"{self.size}-byte message")
        items = PyList_New(<Py_ssize_t>n)
        for i in range(<Py_ssize_t>n):
            Py_INCREF(None)
            PyList_SET_ITEM(items, i, None)
        self.objs.append(items)
        while self.peek_tag() != T_END_SPARSE:
            key = self.read()
            value = self.read()
            count += 1
            if PyFloat_Check(key) and floor(PyFloat_AS_DOUBLE(key)) == PyFloat_AS_DOUBLE(key):
                key = int(key)
            if PyLong_Check(key) and 0 <= key < <Py_ssize_t>n:
                items[key] = value
            elif not (PyUnicode_Check(key) or PyLong_Check(key) or PyFloat_Check(key)):
                self.fail(f"array key of type {type(key).__name__}")
        self.pos += 1
        if self.u32() != count or self.u32() != n:
            self.fail("sparse array counts do not match")
        return items

    cdef object read_map(self):
        cdef dict d = {}
        cdef uint32_t count = 0
        self.objs.append(d)
        while self.peek_tag() != T_END_MAP:
            key = self.read()
            value = self.read()
            try:
                d[key] = value
            except TypeError:
                self.fail(f"Map key of type {type(key).__name__} is not hashable in Python")
            count += 2
        self.pos += 1
        if self.u32() != count:
            self.fail("Map entry count does not match")
        return d

    cdef object read_set(self):
        cdef set s = set()
        cdef uint32_t count = 0
        self.objs.append(s)
        while self.peek_tag() != T_END_SET:
            item = self.read()
            try:
                s.add(item)
            except TypeError:
                self.fail(f"Set element of type {type(item).__name__} is not hashable in "
                          "Python")
            count += 1
        self.pos += 1
        if self.u32() != count:
            self.fail("Set size does not match")
        return s

    cdef object read_bigint(self):
        cdef uint32_t bitfield = self.u32()
        cdef Py_ssize_t n = bitfield >> 1
        self.need(n)
        self.pos += n
        v = int.from_bytes(PyBytes_FromStringAndSize(<const char *>self.p + self.pos - n, n),
                           "little")
        return -v if bitfield & 1 else v

    cdef object read_error(self):
        cdef Py_ssize_t n = self.reserve(None)
        cdef int t, proto = 0
        cdef bint has_cause = False
        message = stack = cause = None
        while True:
            t = self.read_tag()
            if t == E_END:
                break
            if t == E_MESSAGE:
                message = self.read_string()
            elif t == E_STACK:
                stack = self.read_string()
            elif t == E_CAUSE:
                cause = self.read()
                has_cause = True
            elif t in b"ERFSTU":
                proto = t
            else:
                self.pos -= 1
                self.fail(f"unknown Error field 0x{t:02x}")
        v = self.call("make_error", (proto, message, stack, cause, has_cause))
        self.objs[n] = v
        return v

    cdef object view(self, uint32_t type_index, const unsigned char *data, Py_ssize_t n):
        if type_index == 10 or type_index == 1:
            return PyBytes_FromStringAndSize(<const char *>data, n)
        return self.call("make_view",
                         (type_index, PyBytes_FromStringAndSize(<const char *>data, n)))

    cdef object read_host(self):
        """Node's channel host objects: 0 = ArrayBufferView, 1 = any other (a plain value)."""
        cdef Py_ssize_t slot = self.reserve(None), n
        cdef uint32_t kind = self.u32(), type_index
        if kind == 0:
            type_index = self.u32()
            n = self.length(1)
            self.pos += n
            v = self.view(type_index, self.p + self.pos - n, n)
        elif kind == 1:
            v = self.read()
        else:
            self.fail(f"unknown host object kind {kind}")
        self.objs[slot] = v
        return v

    cdef object read_array_buffer(self):
        """V8's own ArrayBuffer ('B'), optionally viewed by an ArrayBufferView ('V')."""
        cdef Py_ssize_t n = self.length(1), start = self.pos, offset, size
        cdef int sub
        cdef uint32_t type_index
        self.pos += n
        v = PyBytes_FromStringAndSize(<const char *>self.p + start, n)
        self.objs.append(v)
        if self.pos >= self.end or self.peek_tag() != T_VIEW:
            return v
        self.pos += 1
        sub = self.read_byte()
        offset = self.u32()
        size = self.u32()
        if self.version >= 14:
            self.u32()      # flags (length-tracking, backed by resizable): nothing for Python
        if offset > n or size > n - offset:
            self.fail("ArrayBufferView outside its buffer")
        type_index = _VIEW_SUBTAGS.get(sub, 255)
        if type_index == 255:
            self.pos -= 1
            self.fail(f"unknown ArrayBufferView type 0x{sub:02x}")
        v = self.view(type_index, self.p + start + offset, size)
        self.objs.append(v)
        return v


cdef dict _VIEW_SUBTAGS = {ord("b"): 0, ord("B"): 1, ord("C"): 2, ord("w"): 3, ord("W"): 4,
                           ord("d"): 5, ord("D"): 6, ord("f"): 7, ord("F"): 8, ord("?"): 9,
                           ord("q"): 11, ord("Q"): 12}


cdef inline object _number(double d):
    """A JS number: an int when it is integral beyond the int32 range and within ±2**53 (so
    Python ints round-trip exactly; V8 sends those as doubles), else a float."""
    if 2147483647.0 < fabs(d) <= 9007199254740992.0 and floor(d) == d:
        return PyLong_FromLongLong(<long long>d)
    return PyFloat_FromDouble(d)


cdef object _js_number_string(object f):
    """Number.prototype.toString for the numbers V8 writes as object keys."""
    cdef double d = f
    if d == floor(d) and fabs(d) < 1e21:
        return str(<long long>d) if fabs(d) < 9.2e18 else str(int(f))
    return repr(f)


def v8_decode(payload):
    """The value in ``payload`` (V8 serializer output, without the channel's length prefix).
    V8DecodeError (a ValueError) for anything malformed; never reads past the end, never
    allocates more than the bytes received justify, never recurses without bound."""
    cdef Py_buffer view
    cdef _Reader r = _Reader.__new__(_Reader)
    cdef uint64_t version
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        r.p = <const unsigned char *>view.buf
        r.pos = 0
        r.end = r.size = view.len
        r.objs = []
        if r.end < 2 or r.p[0] != T_VERSION:
            r.fail("not V8 serializer output (no FF header)")
        r.pos = 1
        version = r.varint()
        if version < MIN_VERSION or version > VERSION:
            r.fail(f"unsupported V8 serializer version {version}")
        r.version = <uint32_t>version
        value = r.read()
        while r.pos < r.end and r.p[r.pos] == T_PADDING:
            r.pos += 1
        if r.pos != r.end:
            r.fail("trailing bytes after the value")
        return value
    finally:
        r.objs = None
        PyBuffer_Release(&view)
