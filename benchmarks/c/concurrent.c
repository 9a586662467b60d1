/* Reference for `concurrent200`: start K /bin/true children at once, each with its stdout on
 * its own pipe (stdin and stderr on /dev/null), then read every pipe to EOF and reap every
 * child.  One batch = all K started and all K reaped.
 *
 * usage: concurrent BATCHES WARMUP BUDGET_SECONDS [K=200]
 */
#include "bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static void batch(long k, pid_t *pids, int *fds) {
    static char *const args[] = {"/bin/true", NULL};
    for (long i = 0; i < k; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) BENCH_DIE("pipe2");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        int rc = posix_spawn(&pids[i], "/bin/true", &fa, NULL, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
        close(p[1]);
        fds[i] = p[0];
    }
    for (long i = 0; i < k; i++) bench_drain(fds[i]);
    for (long i = 0; i < k; i++) bench_reap_ok(pids[i]);
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 10);
    long warmup = bench_arg(argc, argv, 2, 1);
    double budget = bench_arg_f(argc, argv, 3, 1e9);
    long k = bench_arg(argc, argv, 4, 200);
    if (k < 1) k = 1;

    pid_t *pids = calloc((size_t)k, sizeof *pids);
    int *fds = calloc((size_t)k, sizeof *fds);
    if (!pids || !fds) BENCH_DIE("calloc");

    bench_settle();
    for (long i = 0; i < warmup; i++) batch(k, pids, fds);
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        batch(k, pids, fds);
        done++;
        t = bench_now();
    }
    bench_report(done, t - t0);
    return 0;
}
