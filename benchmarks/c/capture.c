/* Reference for `capture`: posix_spawn the child with its stdout on a pipe (stdin and stderr
 * on /dev/null), read(2) the pipe to EOF into one growing malloc'd buffer (doubling), waitpid,
 * check that exactly NBYTES arrived and the child exited 0, free.  One operation = one whole
 * capture, spawn to reap.  Besides bench_report's fields it prints "maxrss": the peak
 * resident size of this process (bytes).
 *
 * usage: capture N WARMUP BUDGET_SECONDS NBYTES PROGRAM [ARG...]
 * PROGRAM (found on PATH when it has no slash) is the child, e.g. `writer NBYTES`.
 */
#include "bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

extern char **environ;

static void one(char **child, size_t expected) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) BENCH_DIE("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, child[0], &fa, NULL, child, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) { errno = rc; BENCH_DIE("posix_spawnp"); }
    close(p[1]);

    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) BENCH_DIE("malloc");
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown) BENCH_DIE("realloc");
            buf = grown;
        }
        ssize_t r = read(p[0], buf + len, cap - len);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            BENCH_DIE("read");
        }
        len += (size_t)r;
    }
    close(p[0]);

    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s failed: status %d\n", child[0], status);
        exit(1);
    }
    if (len != expected) {
        fprintf(stderr, "captured %zu bytes, expected %zu\n", len, expected);
        exit(1);
    }
    free(buf);
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 5);
    long warmup = bench_arg(argc, argv, 2, 1);
    double budget = bench_arg_f(argc, argv, 3, 1e9);
    size_t expected = (size_t)bench_arg(argc, argv, 4, 0);
    if (argc < 6) {
        fprintf(stderr, "usage: capture N WARMUP BUDGET NBYTES PROGRAM [ARG...]\n");
        return 2;
    }
    char **child = argv + 5;

    for (long i = 0; i < warmup; i++) one(child, expected);
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        one(child, expected);
        done++;
        t = bench_now();
    }
    struct rusage ru;
    long long maxrss = getrusage(RUSAGE_SELF, &ru) == 0 ? (long long)ru.ru_maxrss * 1024 : 0;
    printf("{\"n\": %ld, \"seconds\": %.9f, \"rss\": %lld, \"maxrss\": %lld}\n",
           done, t - t0, bench_rss(), maxrss);
    fflush(stdout);
    return 0;
}
