/* Reference for `ipc_stream`: a forked child writes WARMUP + N frames
 * `{"i":<n>,"s":"hello"}\n` to an AF_UNIX stream socketpair, one write(2) per frame, then
 * exits; the parent reads 256 KiB at a time and splits the lines (memchr), checking their
 * count.  Timed at the parent, as for every row of the scenario: from the arrival of frame
 * number WARMUP (the last warm-up frame) to the arrival of frame number WARMUP + N; the rate is
 * N over that time.  Fork and exit are thus not counted.
 *
 * usage: ipc_stream N WARMUP BUDGET_SECONDS [CHILD_CPU=-1]
 * The budget is unused: the count is fixed.  CHILD_CPU >= 0: the child moves itself to that
 * CPU first (the runner pins the parent).
 */
#include "bench.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>

static size_t frame(char *out, long n) {
    char digits[24];
    int k = 0;
    do { digits[k++] = (char)('0' + n % 10); n /= 10; } while (n > 0);
    size_t len = 0;
    memcpy(out, "{\"i\":", 5); len = 5;
    while (k > 0) out[len++] = digits[--k];
    memcpy(out + len, ",\"s\":\"hello\"}\n", 14); len += 14;
    return len;
}

static void produce(int fd, long total) {
    char out[64];
    for (long i = 0; i < total; i++) {
        size_t len = frame(out, i), off = 0;
        while (off < len) {
            ssize_t w = write(fd, out + off, len - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                _exit(2);
            }
            off += (size_t)w;
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 100000);
    long warmup = bench_arg(argc, argv, 2, 1000);
    if (n < 1) n = 1;
    if (warmup < 1) warmup = 1;
    long total = warmup + n;
    int child_cpu = argc > 4 ? atoi(argv[4]) : -1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) BENCH_DIE("socketpair");
    pid_t pid = fork();
    if (pid < 0) BENCH_DIE("fork");
    if (pid == 0) {
        close(sv[0]);
        if (child_cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(child_cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) < 0) _exit(4);
        }
        produce(sv[1], total);
    }
    close(sv[1]);

    static char buf[256 * 1024];
    size_t have = 0;
    long count = 0;
    double t0 = 0, t1 = 0;
    for (;;) {
        ssize_t r = read(sv[0], buf + have, sizeof buf - have);
        if (r < 0) {
            if (errno == EINTR) continue;
            BENCH_DIE("read");
        }
        if (r == 0) break;
        have += (size_t)r;
        char *p = buf, *end = buf + have, *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            count++;  /* one frame: p .. nl */
            if (count == warmup) t0 = bench_now();
            else if (count == total) t1 = bench_now();
            p = nl + 1;
        }
        have = (size_t)(end - p);
        memmove(buf, p, have);
    }
    close(sv[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the writing child failed: status %d\n", status);
        return 1;
    }
    if (count != total || have != 0) {
        fprintf(stderr, "received %ld frames (+%zu bytes), expected %ld\n", count, have, total);
        return 1;
    }
    bench_report(n, t1 - t0);
    return 0;
}
