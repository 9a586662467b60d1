/* Reference for `fork_startup`: fork() + exec of a tiny C child (this same program, run as
 * `fork_startup child FD`) that writes one line to its end of an AF_UNIX socketpair, as a
 * forked child announcing itself on its IPC channel would.  Timed: from the fork() call to the
 * parent having read that whole line.  Not timed: reaping the child and closing the socket.
 *
 * usage: fork_startup N WARMUP BUDGET_SECONDS
 */
#include "bench.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const char READY[] = "\"ready\"\n";
static char self[PATH_MAX];

static double one(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) BENCH_DIE("socketpair");
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) BENCH_DIE("fork");
    if (pid == 0) {
        /* the child's end survives the exec; the parent's does not (close-on-exec) */
        int flags = fcntl(sv[1], F_GETFD);
        if (flags < 0 || fcntl(sv[1], F_SETFD, flags & ~FD_CLOEXEC) < 0) _exit(126);
        char *args[] = {self, "child", fdarg, NULL};
        execv(self, args);
        _exit(127);
    }
    close(sv[1]);
    char in[64];
    size_t got = 0;
    while (got == 0 || in[got - 1] != '\n') {
        ssize_t r = read(sv[0], in + got, sizeof in - got);
        if (r == 0) { fprintf(stderr, "the child closed without a line\n"); exit(1); }
        if (r < 0) {
            if (errno == EINTR) continue;
            BENCH_DIE("read");
        }
        got += (size_t)r;
        if (got == sizeof in) { fprintf(stderr, "line too long\n"); exit(1); }
    }
    double t1 = bench_now();
    if (got != sizeof READY - 1 || memcmp(in, READY, got) != 0) {
        fprintf(stderr, "unexpected line from the child\n");
        exit(1);
    }
    close(sv[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the child failed: status %d\n", status);
        exit(1);
    }
    return t1 - t0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        int fd = atoi(argv[2]);
        ssize_t w = write(fd, READY, sizeof READY - 1);
        return w == (ssize_t)(sizeof READY - 1) ? 0 : 1;
    }
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
    } else {
        snprintf(self, sizeof self, "%s", argv[0]);  /* the runner passes an absolute path */
    }
    long n = bench_arg(argc, argv, 1, 20);
    long warmup = bench_arg(argc, argv, 2, 2);
    double budget = bench_arg_f(argc, argv, 3, 1e9);

    for (long i = 0; i < warmup; i++) one();
    double total = 0;
    long done = 0;
    while (done < n && (done == 0 || total < budget)) {
        total += one();
        done++;
    }
    bench_report(done, total);
    return 0;
}
