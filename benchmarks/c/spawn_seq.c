/* Reference for `spawn_seq` and `spawn_bigparent`: posix_spawn + waitpid of /bin/true in a loop.
 *
 * usage: spawn_seq N WARMUP BUDGET_SECONDS [HOLD_BYTES]
 * HOLD_BYTES > 0 first allocates and touches that much memory (the "big parent" case).
 * The timed loop stops after N iterations or once BUDGET_SECONDS have passed (at least 1).
 */
#include "bench.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static void one(void) {
    static char *const args[] = {"/bin/true", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, args, environ);
    if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "/bin/true failed: status %d\n", status);
        exit(1);
    }
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 1000);
    long warmup = bench_arg(argc, argv, 2, 10);
    double budget = bench_arg_f(argc, argv, 3, 1e9);
    size_t hold = (size_t)bench_arg(argc, argv, 4, 0);

    char *memory = bench_hold_memory(hold);

    for (long i = 0; i < warmup; i++) one();
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        one();
        done++;
        t = bench_now();
    }
    bench_report(done, t - t0);
    free(memory);
    return 0;
}
