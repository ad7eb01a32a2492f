/*
 * File descriptor exhaustion: RLIMIT_NOFILE is honoured by every call that makes a descriptor
 * (open, dup, dup2/dup3 targets, fcntl F_DUPFD, pipe2), with Linux's errors (EMFILE when the
 * table is full, EBADF/EINVAL for a target at or above the limit), lowest-free numbering, and
 * a limit raised again is usable. Then a bigger round: the soft limit at min(hard, 4096), that
 * many descriptors, about half of them pipes holding 4 KiB each; after closing everything the
 * free memory (ktls's MemFree, "info memfree" lines the harness compares) is back.
 *
 * Each round runs in a fork child, so the parent's own table and limits are never changed.
 */
#include "ktls_test.h"
#include "meminfo.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Runs fn in a fork child, which prints its own check lines; returns its status. */
static int in_child(void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(ktls_failures ? 1 : 0);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    return st;
}

#define LIMIT 32

static void small_limit(void)
{
    /* Only 0, 1 and 2 open, as the harness starts us. */
    raw_syscall3(SYS_close_range, 3, ~0u, 0);
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    struct rlimit low = {LIMIT, r.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "set RLIMIT_NOFILE to 32");
    int last = -1, n = 0, err = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            err = errno;
            break;
        }
        if (fd != last + 1 && last != -1)
            break;
        last = fd;
        n++;
        if (n > 1000)
            break;
    }
    check(err == EMFILE, "open fails with EMFILE at the limit", "after %d opens, errno %d", n,
          err);
    check(last == LIMIT - 1 && n == LIMIT - 3, "descriptors 3 to 31 were handed out in order",
          "%d opens, last fd %d", n, last);
    CHECK_ERR(raw_syscall1(SYS_dup, 0), EMFILE, "dup at the limit: EMFILE");
    CHECK_ERR(raw_syscall3(SYS_fcntl, 0, F_DUPFD, 0), EMFILE, "fcntl F_DUPFD at the limit: EMFILE");
    int p[2];
    CHECK_ERR(raw_syscall2(SYS_pipe2, p, 0), EMFILE, "pipe2 at the limit: EMFILE");
    CHECK_ERR(raw_syscall2(SYS_dup2, 0, LIMIT), EBADF, "dup2 to fd 32 (the limit): EBADF");
    CHECK_ERR(raw_syscall3(SYS_dup3, 0, LIMIT + 100, 0), EBADF, "dup3 to fd 132: EBADF");
    CHECK_ERR(raw_syscall3(SYS_fcntl, 0, F_DUPFD, LIMIT), EINVAL,
              "fcntl F_DUPFD from 32 (the limit): EINVAL");
    CHECK_RET(raw_syscall2(SYS_dup2, 0, LIMIT - 1), LIMIT - 1,
              "dup2 onto the last allowed fd (open) works");

    /* Lowest free first: close 7 and 20, get 7 then 20. */
    close(7);
    close(20);
    CHECK_RET(raw_syscall1(SYS_dup, 0), 7, "after closing 7 and 20, dup gives 7");
    CHECK_RET(raw_syscall1(SYS_dup, 0), 20, "then 20");
    CHECK_ERR(raw_syscall1(SYS_dup, 0), EMFILE, "then EMFILE again");

    /* A lower limit than open descriptors: allowed; only new ones are refused. */
    struct rlimit lower = {8, r.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &lower) == 0, "lower the limit to 8 below open fds");
    close(5);
    CHECK_RET(raw_syscall1(SYS_dup, 0), 5, "a free fd below the new limit is handed out");
    close(12);
    CHECK_ERR(raw_syscall1(SYS_dup, 0), EMFILE, "a free fd above the new limit is not");
    struct stat sb;
    CHECK(fstat(LIMIT - 1, &sb) == 0, "descriptors above the lowered limit stay usable");
    /* Raised again, up to the hard limit. */
    CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0, "raise the limit back");
    CHECK_RET(raw_syscall1(SYS_dup, 0), 12, "then fd 12 is handed out");
    CHECK(raw_syscall1(SYS_dup, 0) == LIMIT, "and fds at and past 32 too");

    /* Limits Linux refuses. */
    struct rlimit inverted = {r.rlim_max, r.rlim_max / 2};
    CHECK(setrlimit(RLIMIT_NOFILE, &inverted) != 0 && errno == EINVAL,
          "rlim_cur above rlim_max: EINVAL");
}

static void big_round(void)
{
    raw_syscall3(SYS_close_range, 3, ~0u, 0);
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    rlim_t lim = r.rlim_max < 4096 ? r.rlim_max : 4096;
    struct rlimit want = {lim, r.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &want) == 0, "set the soft limit to min(hard, 4096)");
    static char page[4096];
    memset(page, 'x', sizeof page);
    int fds = 3, pipes = 0, err = 0;
    for (;;) {
        int p[2];
        if (pipe2(p, O_NONBLOCK) != 0) {
            err = errno;
            break;
        }
        fds += 2;
        pipes++;
        ssize_t w = write(p[1], page, sizeof page);
        if (w != (ssize_t)sizeof page) {
            printf("FAIL writing 4 KiB into pipe %d: got %zd, errno %d\n", pipes, w, errno);
            ktls_failures++;
            err = -1;
            break;
        }
        if (fds + 2 > (int)lim - (int)lim / 2)
            break;
    }
    while (err == 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            err = errno;
            break;
        }
        fds++;
    }
    printf("info big round: limit %lu, %d descriptors, %d pipes with 4 KiB each\n",
           (unsigned long)lim, fds, pipes);
    check(err == EMFILE && fds == (int)lim, "the table fills up to the limit, then EMFILE",
          "%d descriptors with the limit at %lu, errno %d", fds, (unsigned long)lim, err);
    CHECK(raw_syscall3(SYS_close_range, 3, ~0u, 0) == 0, "close them all");
    CHECK_RET(raw_syscall1(SYS_dup, 0), 3, "then fd 3 is free again");
}

/*
 * Pipe flood: FLOOD_PROCS children, each with the soft limit at min(hard, 4096), make pipes
 * holding one byte until something fails (EMFILE, or ENFILE/ENOMEM when the system runs out
 * first), then, still holding them all, try fork, mmap and open. Errors are fine; every child
 * must get to report (a kernel that cannot allocate must say so, not stop).
 */
#define FLOOD_PROCS 4

static void flood_child(int report)
{
    raw_syscall3(SYS_close_range, 3, report - 1, 0);
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max < 4096 ? r.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &r);
    int pipes = 0, err = 0;
    for (;;) {
        int p[2];
        if (pipe(p) != 0) {
            err = errno;
            break;
        }
        pipes++;
        if (write(p[1], "x", 1) != 1) {
            err = 1000 + errno;
            break;
        }
    }
    /* Make room for one more descriptor, then try the other allocations. */
    close(report + 1 < 10 ? 10 : report + 1);
    pid_t f = fork();
    if (f == 0)
        _exit(0);
    int fork_err = f < 0 ? errno : 0;
    if (f > 0)
        waitpid(f, NULL, 0);
    long m = raw_syscall6(SYS_mmap, 0, 1 << 20, 3, 0x22, -1, 0);
    int mmap_err = m < 0 && m > -4096 ? (int)-m : 0;
    if (!mmap_err)
        memset((void *)m, 1, 1 << 20);
    int fd = open("/dev/null", O_RDONLY);
    int open_err = fd < 0 ? errno : 0;
    char line[128];
    int n = snprintf(line, sizeof line, "%d %d %d %d %d\n", pipes, err, fork_err, mmap_err,
                     open_err);
    (void)!write(report, line, n);
    _exit(0);
}

static int acceptable(int e)
{
    return e == 0 || e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN;
}

static void pipe_flood(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe flood: a report pipe");
    pid_t kids[FLOOD_PROCS];
    for (int i = 0; i < FLOOD_PROCS; i++) {
        fflush(stdout);
        kids[i] = fork();
        if (kids[i] == 0) {
            close(p[0]);
            flood_child(p[1]);
        }
    }
    close(p[1]);
    char buf[1024] = "";
    size_t len = 0;
    for (;;) {
        ssize_t r = read(p[0], buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += r;
    }
    close(p[0]);
    for (int i = 0; i < FLOOD_PROCS; i++)
        waitpid(kids[i], NULL, 0);
    int reports = 0, bad = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        int pipes, err, fork_err, mmap_err, open_err;
        if (sscanf(line, "%d %d %d %d %d", &pipes, &err, &fork_err, &mmap_err, &open_err) != 5)
            continue;
        reports++;
        printf("info pipe flood child: %d pipes, then errno %d; fork %d, mmap %d, open %d\n",
               pipes, err, fork_err, mmap_err, open_err);
        if (!(err == EMFILE || err == ENFILE || err == ENOMEM) || !acceptable(fork_err) ||
            !acceptable(mmap_err) || !acceptable(open_err))
            bad++;
    }
    check(reports == FLOOD_PROCS, "pipe flood: every child got to report",
          "%d of %d reports", reports, FLOOD_PROCS);
    check(bad == 0,
          "pipe flood: pipe() stops with EMFILE, ENFILE or ENOMEM (a 1-byte write never "
          "fails), and fork/mmap/open then fail only with resource errors",
          "%d children saw other errors (1000+e: a write failed with e)", bad);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Warm up stdio, /proc/meminfo and fork, then measure. */
    (void)meminfo("MemFree");
    pid_t w = fork();
    if (w == 0)
        _exit(0);
    waitpid(w, NULL, 0);
    report_memory("start");

    int st = in_child(small_limit);
    CHECK(st == 0, "the small-limit child passed its checks");
    report_memory("after-small-limit");
    st = in_child(big_round);
    CHECK(st == 0, "the big-round child passed its checks");
    report_memory("after-big-round");
    pipe_flood();
    report_memory("after-pipe-flood");
    return finish();
}
