# Included by each extension module that starts processes (_spawn, _sync): each has its own copy
# of cp_platform.h's switch between posix_spawn and the vfork path, set here from the same
# environment variable at import, so both agree.

from libc.stdlib cimport getenv

cdef extern from "cp_platform.h" nogil:
    const char *cp_set_spawner(const char *name)
    int cp_use_posix_spawn

cp_set_spawner(getenv(b"CHILD_PROCESS_SPAWNER"))


def spawner():
    """``'posix_spawn'`` or ``'vfork'``: how starts that can take either are made."""
    return "posix_spawn" if cp_use_posix_spawn else "vfork"


def set_spawner(str name):
    """Take ``'posix_spawn'`` or ``'vfork'`` (anything else: this platform's default); returns
    the one now in force. For tests: the choice is normally made once, through
    CHILD_PROCESS_SPAWNER. uid, gid and die_with_parent always take the vfork path."""
    cdef bytes raw = name.encode()
    return cp_set_spawner(raw).decode()
