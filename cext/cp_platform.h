/* Platform mechanism that must be plain C: the vfork child (async-signal-safe code only),
 * the SIGCHLD handler, and symbols that may be missing from an older libc (resolved at
 * run time so one wheel works on every glibc and on macOS). No policy lives here. */
#ifndef CP_PLATFORM_H
#define CP_PLATFORM_H

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <dlfcn.h>
#include <grp.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#if defined(__linux__)
#  include <sys/prctl.h>
#endif

#ifndef POSIX_SPAWN_SETSID
#  ifdef __linux__
#    define POSIX_SPAWN_SETSID 0x80
#  else
#    define POSIX_SPAWN_SETSID 0
#  endif
#endif

#if defined(__linux__)
#  ifndef SYS_pidfd_open
#    define SYS_pidfd_open 434
#  endif
#  ifndef SYS_pidfd_send_signal
#    define SYS_pidfd_send_signal 424
#  endif
#  ifndef SYS_close_range
#    define SYS_close_range 436
#  endif
#endif

/* ---- descriptors born close-on-exec ----------------------------------------------------
 * Linux and the BSDs create them so atomically (pipe2, SOCK_CLOEXEC). macOS cannot: there the
 * flags follow at once with fcntl. The window is harmless for our own children (each receives
 * exactly its stdio slots, everything else closed); only a fork() made by another thread inside
 * it could inherit one. CP_PORTABLE_FALLBACKS forces the macOS way (tests compile it on Linux). */

#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0        /* macOS: SO_NOSIGPIPE on the socket instead (cp_socketpair) */
#endif

static inline int cp_set_fd_flags(int fd, int nonblock) {
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return -1;
    if (nonblock) {
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    }
    return 0;
}

/* A pipe, both ends close-on-exec (and non-blocking when asked). */
static inline int cp_pipe(int fds[2], int nonblock) {
#if (defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) \
     || defined(__OpenBSD__)) && !defined(CP_PORTABLE_FALLBACKS)
    return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
#else
    if (pipe(fds) < 0) return -1;
    if (cp_set_fd_flags(fds[0], nonblock) < 0 || cp_set_fd_flags(fds[1], nonblock) < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
#endif
}

/* A connected AF_UNIX stream pair, close-on-exec (and non-blocking when asked); writes on it
 * never raise SIGPIPE where MSG_NOSIGNAL is missing. */
static inline int cp_socketpair(int fds[2], int nonblock) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK) && !defined(CP_PORTABLE_FALLBACKS)
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0, fds);
#else
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        if (cp_set_fd_flags(fds[i], nonblock) < 0) goto fail;
#  ifdef SO_NOSIGPIPE
        int one = 1;
        if (setsockopt(fds[i], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0) goto fail;
#  endif
    }
    return 0;
fail:
    {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
#endif
}

/* ---- pidfd ------------------------------------------------------------------------- */

/* A pipe that carries bulk output: a 1 MiB kernel buffer instead of 64 KiB lets the writer run
 * 16 times longer between wake-ups of the reader (capture throughput about doubles here).
 * Best effort: unprivileged users past their pipe-buffer quota keep the default. */
#define CP_BULK_PIPE_SIZE (1 << 20)
static inline void cp_grow_pipe(int fd) {
#if defined(__linux__) && defined(F_SETPIPE_SZ)
    (void)fcntl(fd, F_SETPIPE_SZ, CP_BULK_PIPE_SIZE);
#else
    (void)fd;
#endif
}

static inline int cp_pidfd_open(pid_t pid) {
#if defined(__linux__)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid; errno = ENOSYS; return -1;
#endif
}

static inline int cp_pidfd_send_signal(int pidfd, int sig) {
#if defined(__linux__)
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd; (void)sig; errno = ENOSYS; return -1;
#endif
}

/* ---- posix_spawn extensions that an older libc lacks ---------------------------------- */

typedef int (*cp_addchdir_t)(posix_spawn_file_actions_t *, const char *);
typedef int (*cp_addclosefrom_t)(posix_spawn_file_actions_t *, int);
static cp_addchdir_t cp_addchdir = NULL;
static cp_addclosefrom_t cp_addclosefrom = NULL;

static inline void cp_resolve_spawn_extensions(void) {
    cp_addchdir = (cp_addchdir_t)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addchdir_np");
    cp_addclosefrom = (cp_addclosefrom_t)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addclosefrom_np");
}

/* ---- closing every descriptor from a number on, in a child (before its execve) -------
 * Linux 5.11+: mark them close-on-exec in one call rather than close them. The vfork child's
 * parent is suspended until the exec has switched to the new program's memory, and the
 * kernel closes close-on-exec descriptors only after that switch: the closes move out of the
 * parent's wait. In a batch (hundreds of pipes open in the parent, one more per child) that
 * was about 4 % of the batch time here. Older kernels: close them; no close_range: one by one. */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static inline void cp_close_from(int lowfd) {
#if defined(__linux__)
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0) return;
#endif
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
    for (int fd = lowfd; fd < maxfd; fd++) close(fd);
}

/* ---- the vfork path: Linux's default (see cp_use_posix_spawn), and for what posix_spawn
 * cannot do (uid/gid, or a libc without the _np file actions) everywhere. Between vfork()
 * and execve() the child shares the parent's memory,
 * so it calls only async-signal-safe functions, touches no heap, and reports a failure
 * through `*child_errno` (shared memory) before _exit(127). ---------------------------- */

typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;        /* NULL: inherit */
    const int *fds;         /* fds[i] = source for child fd i; -1 closed; -2 /dev/null */
    int nfds;
    int setsid;
    int setpgroup;          /* lead a new process group (kill_tree) */
    int pdeathsig;          /* 0, or the signal to get when the parent dies (Linux) */
    pid_t parent;           /* the parent's pid, checked again after PR_SET_PDEATHSIG */
    long uid;               /* -1: unchanged */
    long gid;               /* -1: unchanged */
} cp_spawn_req;

#define CP_SPAWN_SETSID 1
#define CP_SPAWN_SETPGROUP 2

/* The vfork child changes its ids with the bare system calls. glibc's setuid/setgid/setgroups in
 * a process with threads make every thread change too: they walk the thread list under a lock
 * and signal each thread. The vfork child shares the parent's memory, so it would walk the
 * *parent's* list (signalling threads that are not its own), and could block forever on that
 * lock if a parent thread held it at the vfork, with the spawning thread suspended behind it.
 * The child has a single thread, so the system call alone is exactly right. */
#if defined(__linux__)
#define CP_CHILD_SETGROUPS0() syscall(SYS_setgroups, 0, NULL)
#define CP_CHILD_SETGID(g) syscall(SYS_setgid, (g))
#define CP_CHILD_SETUID(u) syscall(SYS_setuid, (u))
#else
#define CP_CHILD_SETGROUPS0() setgroups(0, NULL)
#define CP_CHILD_SETGID(g) setgid(g)
#define CP_CHILD_SETUID(u) setuid(u)
#endif

static inline void cp_child_after_vfork(const cp_spawn_req *req, volatile int *child_errno) {
    struct sigaction sa;
    sigset_t empty;
    int i, fd;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (i = 1; i < NSIG; i++) {
        if (i == SIGKILL || i == SIGSTOP) continue;
        sigaction(i, &sa, NULL);   /* errors (internal signals) are harmless */
    }
    if (req->setsid && setsid() < 0) goto fail;
    if (req->setpgroup && !req->setsid && setpgid(0, 0) < 0) goto fail;
#if defined(__linux__)
    if (req->pdeathsig) {
        if (prctl(PR_SET_PDEATHSIG, (unsigned long)req->pdeathsig, 0UL, 0UL, 0UL) < 0) goto fail;
        /* the parent may have died before the request took effect: then nobody will tell us */
        if (getppid() != req->parent) _exit(127);
    }
#endif
    for (i = 0; i < req->nfds; i++) {
        int src = req->fds[i];
        if (src == -1) { close(i); continue; }
        if (src == -2) {
            fd = open("/dev/null", i == 0 ? O_RDONLY : O_RDWR);
            if (fd < 0) goto fail;
            src = fd;
        }
        if (src == i) {
            int flags = fcntl(i, F_GETFD);
            if (flags < 0 || fcntl(i, F_SETFD, flags & ~FD_CLOEXEC) < 0) goto fail;
        } else if (dup2(src, i) < 0) {
            goto fail;
        }
        if (req->fds[i] == -2 && src != i) close(src);
    }
    cp_close_from(req->nfds);
    if (req->cwd && chdir(req->cwd) < 0) goto fail;
    if (req->uid != -1 || req->gid != -1) CP_CHILD_SETGROUPS0();   /* best effort, as Node */
    if (req->gid != -1 && CP_CHILD_SETGID((gid_t)req->gid) < 0) goto fail;
    if (req->uid != -1 && CP_CHILD_SETUID((uid_t)req->uid) < 0) goto fail;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(req->path, req->argv, req->envp);
fail:
    *child_errno = errno;
    _exit(127);
}

/* Returns 0 and the pid, or an errno value. The caller has already moved every source
 * descriptor to a number >= nfds, so the dup2 loop cannot clobber a later source. */
static inline int cp_vfork_spawn(const cp_spawn_req *req, pid_t *pid_out) {
    volatile int child_errno = 0;
    sigset_t all, old;
    pid_t pid;
    int status;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* no handler may run in the shared child */
    pid = vfork();
    if (pid == 0) {
        cp_child_after_vfork(req, &child_errno);
        _exit(127);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return saved;
    if (child_errno != 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return child_errno;
    }
    *pid_out = pid;
    return 0;
}

/* ---- the whole start: used by spawn() and by the synchronous runner --------------------
 * fds[i] is the parent descriptor for child fd i (CP_FD_CLOSED, CP_FD_DEVNULL). Sources below
 * nfds are first copied above it (close-on-exec), so the dup2 actions can describe any
 * permutation and every dup2 clears close-on-exec on its target. Returns 0 or an errno. */

#define CP_FD_CLOSED (-1)
#define CP_FD_DEVNULL (-2)

static inline int cp_posix_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                          const char *cwd, const int *fds, int nfds, int spawn_flags) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t mask, defaults;
    int i, err;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (spawn_flags & CP_SPAWN_SETSID) flags |= POSIX_SPAWN_SETSID;
    else if (spawn_flags & CP_SPAWN_SETPGROUP) flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigemptyset(&mask);
    sigfillset(&defaults);        /* Python ignores SIGPIPE/SIGXFSZ: the child must not inherit it */
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    err = posix_spawnattr_setflags(&attr, flags);
    if (!err) err = posix_spawnattr_setsigmask(&attr, &mask);
    if (!err) err = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (!err && (flags & POSIX_SPAWN_SETPGROUP)) err = posix_spawnattr_setpgroup(&attr, 0);
    for (i = 0; i < nfds && !err; i++) {
        if (fds[i] == CP_FD_DEVNULL)
            err = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_RDWR, 0);
        else if (fds[i] == CP_FD_CLOSED)
            err = posix_spawn_file_actions_addclose(&fa, i);
        else
            err = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    }
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
    /* macOS: no closefrom file action, but a flag that closes every descriptor the file
     * actions do not name (our sources were moved above nfds, so none is its own target) */
    if (!err && !cp_addclosefrom) err = posix_spawnattr_setflags(&attr, flags | POSIX_SPAWN_CLOEXEC_DEFAULT);
#endif
    if (!err && cp_addclosefrom) err = cp_addclosefrom(&fa, nfds);
    if (!err && cwd) err = cp_addchdir(&fa, cwd);
    if (!err) err = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return err;
}

/* ---- /dev/null for 'ignore' slots ----------------------------------------------------
 * Opening /dev/null in the child costs the parent, suspended until the child's exec, several
 * µs a slot here. One descriptor, read-write (as subprocess.DEVNULL: reading gives end of file,
 * writes are discarded, whichever slot it fills), is opened once per process, close-on-exec,
 * and dup2'd into the slots. It is checked with fstat and F_GETFL before each start: a program
 * that closed it, and got another file at that number, gets a new one (the number is no longer
 * ours: it is left alone). */

static int cp_devnull_fd = -1;
static dev_t cp_devnull_rdev;
static pthread_mutex_t cp_devnull_lock = PTHREAD_MUTEX_INITIALIZER;

static inline int cp_is_our_devnull(int fd) {
    struct stat st;
    int fl;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != cp_devnull_rdev)
        return 0;
    fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

/* The descriptor on /dev/null (owned by this module, never to be closed by the caller), or -1. */
static inline int cp_devnull(void) {
    int fd;
    struct stat st;
    pthread_mutex_lock(&cp_devnull_lock);
    fd = cp_devnull_fd;
    if (!cp_is_our_devnull(fd)) {
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0) cp_devnull_rdev = st.st_rdev;
        cp_devnull_fd = fd;
    }
    pthread_mutex_unlock(&cp_devnull_lock);
    return fd;
}

/* ---- which start path: posix_spawn, or our vfork path for everything ------------------
 * On Linux the vfork path is the default. It runs the child on the parent's own stack, where
 * glibc's posix_spawn maps a fresh stack for each child and unmaps it afterwards: that unmap
 * interrupts the CPU the child ran on (a TLB flush, an IPI; costly in a VM), and every file
 * action asks the kernel for the descriptor limit once more. A batch of 200 short children
 * from asyncio took 4 % less time. Elsewhere posix_spawn stays the default (macOS has no
 * closefrom action to copy, and its vfork is deprecated). Set by each extension module from
 * CHILD_PROCESS_SPAWNER ("posix_spawn" or "vfork") at import; uid, gid, die_with_parent and a
 * libc without the _np file actions take the vfork path whatever this says. */

#if defined(__linux__)
#define CP_DEFAULT_POSIX_SPAWN 0
#else
#define CP_DEFAULT_POSIX_SPAWN 1
#endif
static int cp_use_posix_spawn = CP_DEFAULT_POSIX_SPAWN;

/* "posix_spawn" or "vfork" (anything else: the default); returns the name now in force. */
static inline const char *cp_set_spawner(const char *name) {
    if (name && strcmp(name, "posix_spawn") == 0) cp_use_posix_spawn = 1;
    else if (name && strcmp(name, "vfork") == 0) cp_use_posix_spawn = 0;
    else cp_use_posix_spawn = CP_DEFAULT_POSIX_SPAWN;
    return cp_use_posix_spawn ? "posix_spawn" : "vfork";
}

static inline int cp_can_close_others(void) {
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
    return 1;
#else
    return cp_addclosefrom != NULL;
#endif
}

static inline int cp_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                    const char *cwd, const int *fds_in, int nfds, int spawn_flags, long uid, long gid,
                    int pdeathsig) {
    int fds[nfds > 0 ? nfds : 1];
    int tmp[nfds > 0 ? nfds : 1];
    int ntmp = 0, i, err = 0;
    int devnull = -1;              /* looked up (and checked) once per start, not per slot */
    for (i = 0; i < nfds; i++) {
        int src = fds_in[i];
        if (src == CP_FD_DEVNULL) {
            if (devnull < 0) devnull = cp_devnull();
            src = devnull;
            if (src < 0) { err = errno; goto out; }
        }
        if (src >= 0 && src < nfds) {
            src = fcntl(src, F_DUPFD_CLOEXEC, nfds);
            if (src < 0) { err = errno; goto out; }
            tmp[ntmp++] = src;
        }
        fds[i] = src;
    }
    if (cp_use_posix_spawn && uid == -1 && gid == -1 && pdeathsig == 0
            && (cwd == NULL || cp_addchdir) && cp_can_close_others()) {
        err = cp_posix_spawn(pid, path, argv, envp, cwd, fds, nfds, spawn_flags);
    } else {
        cp_spawn_req req;
        req.path = path; req.argv = argv; req.envp = envp; req.cwd = cwd; req.fds = fds;
        req.nfds = nfds; req.setsid = (spawn_flags & CP_SPAWN_SETSID) != 0;
        req.setpgroup = (spawn_flags & CP_SPAWN_SETPGROUP) != 0;
        req.pdeathsig = pdeathsig; req.parent = pdeathsig ? getpid() : 0;
        req.uid = uid; req.gid = gid;
        err = cp_vfork_spawn(&req, pid);
    }
out:
    for (i = 0; i < ntmp; i++) close(tmp[i]);
    return err;
}

/* ---- SIGCHLD fallback (macOS, kernels without pidfd): the handler only writes a byte to
 * every registered loop's wake-up pipe, then chains to the handler it replaced (so Python's
 * own signal module keeps working). Children are then polled with waitpid(pid, WNOHANG). */

/* The table of wake-up descriptors grows (doubling) in normal context; the handler only reads
 * it. A grown table is published with a release store and the old one is never freed, so a
 * handler running on another thread at that moment still reads valid memory. */
static int *volatile cp_wake_fds = NULL;
static volatile int cp_wake_cap = 0;
static struct sigaction cp_prev_sigchld;
static int cp_sigchld_installed = 0;
static pthread_mutex_t cp_wake_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void cp_sigchld_handler(int sig, siginfo_t *info, void *ctx) {
    int saved = errno;
    int cap = __atomic_load_n(&cp_wake_cap, __ATOMIC_ACQUIRE);
    int *fds = __atomic_load_n(&cp_wake_fds, __ATOMIC_ACQUIRE);
    for (int i = 0; fds && i < cap; i++) {
        int fd = __atomic_load_n(&fds[i], __ATOMIC_RELAXED);
        if (fd > 0) { ssize_t r = write(fd, "c", 1); (void)r; }
    }
    if (cp_prev_sigchld.sa_flags & SA_SIGINFO) {
        if (cp_prev_sigchld.sa_sigaction) cp_prev_sigchld.sa_sigaction(sig, info, ctx);
    } else if (cp_prev_sigchld.sa_handler != SIG_DFL && cp_prev_sigchld.sa_handler != SIG_IGN) {
        cp_prev_sigchld.sa_handler(sig);
    }
    errno = saved;
}

static inline int cp_sigchld_add_wake_fd(int fd) {
    int i, err = 0;
    pthread_mutex_lock(&cp_wake_lock);
    if (!cp_sigchld_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = cp_sigchld_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGCHLD, &sa, &cp_prev_sigchld) < 0) { err = errno; goto out; }
        cp_sigchld_installed = 1;
    }
    for (i = 0; i < cp_wake_cap; i++) {
        if (cp_wake_fds[i] <= 0) { __atomic_store_n(&cp_wake_fds[i], fd, __ATOMIC_RELEASE); goto out; }
    }
    {
        int cap = cp_wake_cap ? cp_wake_cap * 2 : 64;
        int *grown = (int *)calloc((size_t)cap, sizeof(int));
        if (!grown) { err = ENOMEM; goto out; }
        for (i = 0; i < cp_wake_cap; i++) grown[i] = cp_wake_fds[i];
        grown[cp_wake_cap] = fd;
        /* publish the array before the larger capacity: the handler reads cap first */
        __atomic_store_n(&cp_wake_fds, grown, __ATOMIC_RELEASE);
        __atomic_store_n(&cp_wake_cap, cap, __ATOMIC_RELEASE);
    }
out:
    pthread_mutex_unlock(&cp_wake_lock);
    return err;
}

static inline void cp_sigchld_remove_wake_fd(int fd) {
    pthread_mutex_lock(&cp_wake_lock);
    for (int i = 0; i < cp_wake_cap; i++)
        if (cp_wake_fds[i] == fd) __atomic_store_n(&cp_wake_fds[i], 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&cp_wake_lock);
}

#endif
