/* Reference for `fd_passing`: pass a socket's descriptor to a forked child over an AF_UNIX
 * stream socketpair, one in flight: the parent sendmsg()s one byte with the descriptor in
 * SCM_RIGHTS; the child recvmsg()s it, closes the descriptor it got and answers one byte (the
 * ACK); the parent reads the answer before sending the next.  Only the transfers after the
 * warm-up are timed: fork() and the child's exit are not.
 *
 * usage: fd_passing N WARMUP BUDGET_SECONDS
 */
#include "bench.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void child(int fd) {
    for (;;) {
        char byte;
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&byte, 1};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof cbuf;
        ssize_t r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (r == 0) _exit(0);
        if (r < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        if (cm == NULL || cm->cmsg_type != SCM_RIGHTS) _exit(2);
        int got;
        memcpy(&got, CMSG_DATA(cm), sizeof got);
        close(got);
        while (write(fd, "A", 1) < 0) {
            if (errno != EINTR) _exit(3);
        }
    }
}

static void pass_one(int fd, int pass) {
    char byte = 'H';
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pass, sizeof pass);
    while (sendmsg(fd, &msg, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("sendmsg");
    }
    char ack;
    ssize_t r;
    while ((r = read(fd, &ack, 1)) < 0) {
        if (errno != EINTR) BENCH_DIE("read");
    }
    if (r == 0 || ack != 'A') { fprintf(stderr, "the child did not acknowledge\n"); exit(1); }
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 10000);
    long warmup = bench_arg(argc, argv, 2, 100);
    double budget = bench_arg_f(argc, argv, 3, 1e9);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) BENCH_DIE("socketpair");
    pid_t pid = fork();
    if (pid < 0) BENCH_DIE("fork");
    if (pid == 0) {
        close(sv[0]);
        child(sv[1]);
    }
    close(sv[1]);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp < 0) BENCH_DIE("socket");
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(udp, (struct sockaddr *)&sin, sizeof sin) < 0) BENCH_DIE("bind");

    for (long i = 0; i < warmup; i++) pass_one(sv[0], udp);
    double t0 = bench_now(), t = t0;
    long done = 0;
    while (done < n && (done == 0 || t - t0 < budget)) {
        pass_one(sv[0], udp);
        done++;
        t = bench_now();
    }
    double seconds = t - t0;
    close(sv[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) BENCH_DIE("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the receiving child failed: status %d\n", status);
        return 1;
    }
    bench_report(done, seconds);
    return 0;
}
