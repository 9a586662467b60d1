/* The child of the `capture` scenario, the same for every implementation: writes N bytes to
 * stdout with write(2), in chunks of 1 MiB from one static buffer, then exits 0.
 *
 * usage: writer N
 * Exits 1 (with a message on stderr) when a write fails, e.g. EPIPE once the reader has gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static char buffer[CHUNK];

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: writer N\n");
        return 2;
    }
    char *end;
    long long left = strtoll(argv[1], &end, 10);
    if (*end != '\0' || left < 0) {
        fprintf(stderr, "writer: bad byte count %s\n", argv[1]);
        return 2;
    }
    memset(buffer, 'x', sizeof buffer);  /* real pages, not the shared zero page */
    size_t off = 0;                      /* position inside the current chunk */
    while (left > 0) {
        size_t want = CHUNK - off;
        if ((long long)want > left) want = (size_t)left;
        ssize_t w = write(1, buffer + off, want);
        if (w < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "writer: write: %s\n", strerror(errno));
            return 1;
        }
        left -= w;
        off = (off + (size_t)w) % CHUNK;
    }
    return 0;
}
