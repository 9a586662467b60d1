/* Reference for `spawn_seq` and `spawn_bigparent`: posix_spawn + waitpid of /bin/true in a loop.
 *
 * usage: spawn_seq N WARMUP BUDGET_SECONDS [HOLD_BYTES [pipes]]
 * HOLD_BYTES > 0 first allocates and touches that much memory (the "big parent" case).
 * `pipes`: stdin on a socket pair, stdout and stderr on pipes read to end of file, as
 * spawn() with its default stdio has to do (shown beside the reference, not the reference).
 * The timed loop stops after N iterations or once BUDGET_SECONDS have passed (at least 1).
 */
#include "bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

extern char **environ;
static char *const TRUE_ARGS[] = {"/bin/true", NULL};

static void one(void) {
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, TRUE_ARGS, environ);
    if (rc != 0) { errno = rc; BENCH_DIE("posix_spawn"); }
    bench_reap_ok(pid);
}

static void one_with_pipes(void) {
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
    bench_drain(out[0]);
    bench_drain(err[0]);
    close(in[0]);
    bench_reap_ok(pid);
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 1000);
    long warmup = bench_arg(argc, argv, 2, 10);
    double budget = bench_arg_f(argc, argv, 3, 1e9);
    size_t hold = (size_t)bench_arg(argc, argv, 4, 0);

    void (*op)(void) = argc > 5 && strcmp(argv[5], "pipes") == 0 ? one_with_pipes : one;

    char *memory = bench_hold_memory(hold);

    bench_settle();
    for (long i = 0; i < warmup; i++) op();
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        op();
        done++;
        t = bench_now();
    }
    bench_report(done, t - t0);
    free(memory);
    return 0;
}
