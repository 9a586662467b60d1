# Shared by the modules that start processes (textually included).
from libc.stdlib cimport malloc


cdef char **_cstring_array(list items) except NULL:
    """A NULL-terminated char* array pointing into the bytes of ``items`` (kept alive by the
    caller); free() it when done."""
    cdef Py_ssize_t n = len(items), i
    cdef char **arr = <char **>malloc((n + 1) * sizeof(char *))
    if arr == NULL:
        raise MemoryError()
    for i in range(n):
        arr[i] = <char *>(<bytes>items[i])
    arr[n] = NULL
    return arr
