"""The C paths a platform without Linux's conveniences takes (macOS: no pipe2, no SOCK_CLOEXEC,
no MSG_CMSG_CLOEXEC, no pidfd, no epoll), compiled and run here.

The Python-visible fallbacks (poll(2) instead of epoll, SIGCHLD instead of pidfds, the vfork
spawner instead of posix_spawn's _np file actions) are exercised by the test suite itself under
the environment switches (see test_spawn.py / test_loop.py); this file covers what can only be
chosen at compile time, by building the shims of ``cp_platform.h`` with CP_PORTABLE_FALLBACKS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

CEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cext")
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler to build the fallback shims with"),
    pytest.mark.skipif(not os.path.exists(os.path.join(CEXT, "cp_platform.h")),
                       reason="the C sources are not beside the tests (installed wheel)"),
]

PROGRAM = textwrap.dedent(r"""
    #include "cp_platform.h"
    #include <stdio.h>

    static int check(int fd, int want_nonblock) {
        int fd_flags = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
        if (!(fd_flags & FD_CLOEXEC)) { printf("fd %d not close-on-exec\n", fd); return 1; }
        if (!!(fl & O_NONBLOCK) != want_nonblock) { printf("fd %d blocking mode wrong\n", fd); return 1; }
        return 0;
    }

    int main(void) {
        int fds[2], bad = 0;
        for (int nb = 0; nb < 2; nb++) {
            if (cp_pipe(fds, nb) < 0) { perror("cp_pipe"); return 2; }
            bad |= check(fds[0], nb) | check(fds[1], nb);
            if (write(fds[1], "x", 1) != 1) { perror("write"); return 2; }
            char c; if (read(fds[0], &c, 1) != 1 || c != 'x') { printf("pipe lost data\n"); bad = 1; }
            close(fds[0]); close(fds[1]);
            if (cp_socketpair(fds, nb) < 0) { perror("cp_socketpair"); return 2; }
            bad |= check(fds[0], nb) | check(fds[1], nb);
            if (send(fds[0], "y", 1, MSG_NOSIGNAL) != 1) { perror("send"); return 2; }
            if (recv(fds[1], &c, 1, 0) != 1 || c != 'y') { printf("socketpair lost data\n"); bad = 1; }
            close(fds[1]);
            /* the peer is gone: EPIPE, and no SIGPIPE kills us (MSG_NOSIGNAL or SO_NOSIGPIPE) */
            signal(SIGPIPE, SIG_DFL);
            if (send(fds[0], "z", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) { printf("no EPIPE\n"); bad = 1; }
            close(fds[0]);
        }
        if (!bad) printf("ok\n");
        return bad;
    }
""")


@pytest.mark.parametrize("fallbacks", [True, False], ids=["portable-fallbacks", "native"])
def test_descriptor_shims_make_close_on_exec_descriptors(tmp_path, fallbacks):
    source = tmp_path / "shims.c"
    source.write_text(PROGRAM)
    binary = tmp_path / "shims"
    flags = ["-DCP_PORTABLE_FALLBACKS"] if fallbacks else []
    build = subprocess.run([CC, "-O1", "-Wall", "-Werror", "-Wno-unused-function", *flags,
                            "-I", CEXT, str(source), "-o", str(binary), "-ldl"],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (0, "ok\n"), (run.stdout, run.stderr)
