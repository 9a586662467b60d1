/* Shared helpers for the C reference programs of the benchmark suite.
 *
 * Every reference program takes its iteration count, warm-up count and time budget on the
 * command line, does the work with raw syscalls, and prints ONE JSON line on stdout:
 *     {"n": <timed iterations>, "seconds": <total wall time of those>, "rss": <bytes>}
 * The runner divides seconds by n.  A failure prints a message on stderr and exits 1.
 */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleep BENCH_SETTLE seconds (the runner sets it for the spawning scenarios) before the
 * warm-up, as every implementation does: a process that has just been busy (an interpreter
 * starting up) has its vfork children scheduled worse for a while; see run.py. */
static inline void bench_settle(void) {
    const char *s = getenv("BENCH_SETTLE");
    double seconds = s ? atof(s) : 0.0;
    if (seconds > 0) {
        struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
}

static inline long bench_arg(int argc, char **argv, int i, long dflt) {
    if (i >= argc) return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "bad argument %d: %s\n", i, argv[i]);
        exit(2);
    }
    return v;
}

static inline double bench_arg_f(int argc, char **argv, int i, double dflt) {
    if (i >= argc) return dflt;
    char *end;
    double v = strtod(argv[i], &end);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "bad argument %d: %s\n", i, argv[i]);
        exit(2);
    }
    return v;
}

/* Resident set size of this process, from /proc/self/statm (0 where unavailable). */
static inline long long bench_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (long long)sysconf(_SC_PAGESIZE);
}

/* Allocate `bytes` and write to every page so the memory is really resident. */
static inline char *bench_hold_memory(size_t bytes) {
    if (bytes == 0) return NULL;
    char *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < bytes; off += (size_t)page) p[off] = 1;
    return p;
}

static inline void bench_report(long n, double seconds) {
    printf("{\"n\": %ld, \"seconds\": %.9f, \"rss\": %lld}\n", n, seconds, bench_rss());
    fflush(stdout);
}

#define BENCH_DIE(what) do { \
        fprintf(stderr, "%s: %s\n", (what), strerror(errno)); exit(1); } while (0)

/* Read `fd` to end of file, discarding the data, then close it. */
static inline void bench_drain(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0) break;
        if (r < 0 && errno != EINTR) BENCH_DIE("read");
    }
    close(fd);
}

/* Reap child `pid` (includes <sys/wait.h> where used); exit 1 unless it exited with 0. */
#define bench_reap_ok(pid) do { \
        int bench_status_; \
        while (waitpid((pid), &bench_status_, 0) < 0) { \
            if (errno != EINTR) BENCH_DIE("waitpid"); \
        } \
        if (!WIFEXITED(bench_status_) || WEXITSTATUS(bench_status_) != 0) { \
            fprintf(stderr, "child failed: status %d\n", bench_status_); \
            exit(1); \
        } \
    } while (0)

#endif
