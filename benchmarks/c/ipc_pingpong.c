/* Reference for `ipc_pingpong`: the round trip of one small JSON-line frame between a parent
 * and a forked child over an AF_UNIX stream socketpair (the channel Node's fork() uses).
 *
 * The child echoes every complete line it reads (one write per read).  The parent writes one
 * frame, `{"i":<n>,"s":"hello"}\n` (the bytes a JSON encoder would produce; no encoder runs),
 * with one write(2), reads until the whole line is back (one read(2) in practice), checks it
 * and sends the next.  Only the round trips after the warm-up are timed: fork() and the
 * child's exit are not.
 *
 * usage: ipc_pingpong N WARMUP BUDGET_SECONDS [CHILD_CPU=-1]
 * CHILD_CPU >= 0: the child moves itself to that CPU first (the runner pins the parent).
 */
#include "bench.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The child: echo complete lines back, keep a partial one until its end arrives. */
static void echo(int fd) {
    static char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r == 0) _exit(0);
        if (r < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        have += (size_t)r;
        char *last = memrchr(buf, '\n', have);
        if (last == NULL) {
            if (have == sizeof buf) _exit(3);  /* a line longer than the buffer */
            continue;
        }
        size_t whole = (size_t)(last - buf) + 1;
        if (write_all(fd, buf, whole) < 0) _exit(2);
        memmove(buf, buf + whole, have - whole);
        have -= whole;
    }
}

/* `{"i":<n>,"s":"hello"}\n` into out; returns its length. */
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

static long seq = 0;

static void place(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) _exit(4);
}

static void round_trip(int fd) {
    char out[64], in[256];
    size_t len = frame(out, seq++);
    if (write_all(fd, out, len) < 0) BENCH_DIE("write");
    size_t got = 0;
    while (got == 0 || in[got - 1] != '\n') {
        ssize_t r = read(fd, in + got, sizeof in - got);
        if (r == 0) { fprintf(stderr, "the child closed the channel\n"); exit(1); }
        if (r < 0) {
            if (errno == EINTR) continue;
            BENCH_DIE("read");
        }
        got += (size_t)r;
        if (got == sizeof in) { fprintf(stderr, "reply too long\n"); exit(1); }
    }
    if (got != len || memcmp(in, out, len) != 0) {
        fprintf(stderr, "the reply differs from the frame sent\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 10000);
    long warmup = bench_arg(argc, argv, 2, 100);
    double budget = bench_arg_f(argc, argv, 3, 1e9);
    int child_cpu = argc > 4 ? atoi(argv[4]) : -1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) BENCH_DIE("socketpair");
    pid_t pid = fork();
    if (pid < 0) BENCH_DIE("fork");
    if (pid == 0) {
        close(sv[0]);
        place(child_cpu);
        echo(sv[1]);
    }
    close(sv[1]);
    int fd = sv[0];

    for (long i = 0; i < warmup; i++) round_trip(fd);
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        round_trip(fd);
        done++;
        t = bench_now();
    }
    double seconds = t - t0;

    close(fd);  /* the child reads EOF and exits */
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the echo child failed: status %d\n", status);
        return 1;
    }
    bench_report(done, seconds);
    return 0;
}
