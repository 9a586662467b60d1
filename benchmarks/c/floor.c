/* Variants of the spawning references, for benchmarks/floor.py: what the machine charges for
 * the work a process library cannot avoid, measured in C so that no interpreter is counted.
 *
 * usage: floor MODE N
 *   seq-bare         posix_spawn + waitpid of /bin/true (the spawn_seq reference)
 *   seq-pipes        the same with stdin on a socket pair and stdout/stderr on pipes, both read
 *                    to end of file (what spawn() with its default stdio has to do)
 *   concurrent       the concurrent200 reference (200 children with stdout piped, started,
 *                    then read and reaped)
 * Prints the JSON line of bench.h; for `concurrent` n counts batches.
 */
#include "bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

extern char **environ;
static char *const TRUE_ARGS[] = {"/bin/true", NULL};

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "/bin/true failed: status %d\n", status);
        exit(1);
    }
}

static void drain(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0) break;
        if (r < 0 && errno != EINTR) BENCH_DIE("read");
    }
    close(fd);
}

static void seq_bare(void) {
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, TRUE_ARGS, environ);
    if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
    reap(pid);
}

static void seq_pipes(void) {
    int in[2], out[2], err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) BENCH_DIE("socketpair");
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) BENCH_DIE("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[1], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/true", &fa, NULL, TRUE_ARGS, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
    close(in[1]);
    close(out[1]);
    close(err[1]);
    drain(out[0]);
    drain(err[0]);
    close(in[0]);
    reap(pid);
}

static void concurrent(void) {
    enum { K = 200 };
    pid_t pids[K];
    int fds[K];
    for (int i = 0; i < K; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) BENCH_DIE("pipe2");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        int rc = posix_spawn(&pids[i], "/bin/true", &fa, NULL, TRUE_ARGS, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
        close(p[1]);
        fds[i] = p[0];
    }
    for (int i = 0; i < K; i++) drain(fds[i]);
    for (int i = 0; i < K; i++) reap(pids[i]);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor seq-bare|seq-pipes|concurrent N\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = bench_arg(argc, argv, 2, 100);
    void (*one)(void) = NULL;
    if (strcmp(mode, "seq-bare") == 0) one = seq_bare;
    else if (strcmp(mode, "seq-pipes") == 0) one = seq_pipes;
    else if (strcmp(mode, "concurrent") != 0) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    for (int i = 0; i < (one ? 10 : 1); i++) {      /* warm-up */
        if (one) one(); else concurrent();
    }
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (one) one(); else concurrent();
    }
    bench_report(n, bench_now() - t0);
    return 0;
}
