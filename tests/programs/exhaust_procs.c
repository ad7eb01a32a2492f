/*
 * Process and thread exhaustion: a fork bomb and a thread bomb, each in its own child running
 * under a low RLIMIT_NPROC, must hit EAGAIN without ever exceeding the limit; the parent then
 * kills and reaps everything, can still fork, and (on ktls) gets its free memory back.
 *
 * RLIMIT_NPROC counts the processes (threads, on Linux) of the caller's real user, and root is
 * exempt, so a bomb running as root switches to a spare uid first (BOMB_UID, which owns nothing
 * else; a non-root user keeps its own uid, whose other processes only make EAGAIN come sooner).
 * That also bounds the bombs natively: at most NPROC_LIMIT tasks, for at most DEADLINE_S
 * seconds, and the parent kills the whole process group if more than SAFETY_CAP ever start.
 *
 * "info memfree ..." and "info heapused ..." lines give /proc/meminfo's MemFree and (on ktls)
 * KernelHeapUsed at the start and after each bomb; the harness compares them on ktls only.
 */
#include "ktls_test.h"
#include "meminfo.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NPROC_LIMIT 64
#define SAFETY_CAP 400
#define DEADLINE_S 8
#define BOMB_UID 0x7ffe4b54 /* "KT": a uid nothing else uses */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Drops root for RLIMIT_NPROC to apply; returns 0 on success. */
static int become_bomb_user(void)
{
    if (geteuid() != 0)
        return 0;
    if (raw_syscall3(SYS_setresgid, BOMB_UID, BOMB_UID, BOMB_UID) != 0)
        return -1;
    if (raw_syscall2(SYS_setgroups, 0, 0) != 0 && raw_syscall0(SYS_getuid) != 0)
        return -1;
    return raw_syscall3(SYS_setresuid, BOMB_UID, BOMB_UID, BOMB_UID) == 0 ? 0 : -1;
}

static int set_nproc(rlim_t n)
{
    struct rlimit r = {n, n};
    return setrlimit(RLIMIT_NPROC, &r);
}

/* Kills the process group and reaps every child (bomb processes orphaned on the way come to us:
 * we are pid 1 on ktls, and a child subreaper natively). Returns how many were reaped. */
static int kill_and_reap(pid_t pgid, int *stragglers)
{
    int reaped = 0;
    double until = now() + 20;
    for (;;) {
        kill(-pgid, SIGKILL);
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            reaped++;
            continue;
        }
        if (p < 0 && errno == ECHILD)
            break;
        if (now() > until) {
            *stragglers = 1;
            break;
        }
        sleep_ms(2);
    }
    return reaped;
}

static double deadline;
static int report_fd;

static void announce(char c)
{
    while (write(report_fd, &c, 1) < 0 && errno == EINTR)
        ;
}

/* Every bomb process: fork until the deadline; announce each birth and each EAGAIN. */
static void fork_bomb_loop(void)
{
    int backoff = 1;
    while (now() < deadline) {
        pid_t p = fork();
        if (p == 0) {
            announce('p');
            continue;
        }
        if (p < 0) {
            announce(errno == EAGAIN ? 'E' : 'X');
            sleep_ms(backoff);
            if (backoff < 64)
                backoff *= 2;
        }
    }
    for (;;)
        sleep_ms(1000); /* wait to be killed */
}

struct counts {
    int births, eagain, other_errors;
};

/* Reads announcements until the deadline (or stop()); kills the group over SAFETY_CAP. */
static void watch(int fd, pid_t pgid, struct counts *c, double stop_after_eagain)
{
    double eagain_at = 0;
    while (now() < deadline) {
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == 'p')
                    c->births++;
                else if (buf[i] == 'E')
                    c->eagain++;
                else
                    c->other_errors++;
            }
            if (c->eagain && !eagain_at)
                eagain_at = now();
            if (c->births > SAFETY_CAP) {
                kill(-pgid, SIGKILL);
                return;
            }
            continue;
        }
        if (eagain_at && now() - eagain_at > stop_after_eagain)
            return;
        sleep_ms(1);
    }
}

static void fork_bomb(void)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0, "fork bomb: a report pipe");
    deadline = now() + DEADLINE_S;
    fflush(stdout);
    pid_t root = fork();
    if (root == 0) {
        close(p[0]);
        report_fd = p[1];
        fcntl(report_fd, F_SETFL, 0); /* writers block rather than lose reports */
        setpgid(0, 0);
        if (become_bomb_user() != 0 || set_nproc(NPROC_LIMIT) != 0) {
            announce('S');
            _exit(3);
        }
        announce('r');
        fork_bomb_loop();
    }
    close(p[1]);
    setpgid(root, root);
    /* Wait for the root's set-up report. */
    char first = 0;
    while (now() < deadline && read(p[0], &first, 1) != 1)
        sleep_ms(1);
    CHECK(first == 'r', "fork bomb: the bomb child dropped root and set RLIMIT_NPROC");
    struct counts c = {0, 0, 0};
    if (first == 'r')
        watch(p[0], root, &c, 0.5);
    int stragglers = 0;
    int reaped = kill_and_reap(root, &stragglers);
    printf("info fork bomb: %d births, %d EAGAIN, %d other errors, %d reaped\n", c.births,
           c.eagain, c.other_errors, reaped);
    check(c.births <= SAFETY_CAP, "fork bomb: contained", "more than %d processes started",
          SAFETY_CAP);
    check(c.eagain > 0, "fork bomb: fork fails with EAGAIN at RLIMIT_NPROC",
          "%d processes started in %d s without EAGAIN (%d other errors)", c.births, DEADLINE_S,
          c.other_errors);
    check(c.births + 1 <= NPROC_LIMIT, "fork bomb: never more than RLIMIT_NPROC processes",
          "%d processes with the limit at %d", c.births + 1, NPROC_LIMIT);
    check(c.other_errors == 0, "fork bomb: no error but EAGAIN", "%d", c.other_errors);
    check(!stragglers && reaped == c.births + 1, "fork bomb: the parent kills and reaps all",
          "reaped %d of %d%s", reaped, c.births + 1, stragglers ? ", some never died" : "");
    close(p[0]);
}

static int go_fd;

static void *sleeper(void *arg)
{
    (void)arg;
    char c;
    while (read(go_fd, &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* The thread bomb's child: threads until pthread_create fails; exit status = how it went. */
static void thread_bomb_child(int report)
{
    int go[2];
    if (pipe(go) != 0 || become_bomb_user() != 0 || set_nproc(NPROC_LIMIT) != 0)
        _exit(3);
    go_fd = go[0];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int made = 0, err = 0;
    while (made < SAFETY_CAP && now() < deadline) {
        pthread_t t;
        err = pthread_create(&t, &attr, sleeper, NULL);
        if (err != 0)
            break;
        made++;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%d %d\n", made, err);
    (void)!write(report, line, n);
    _exit(0); /* ends every thread */
}

static void thread_bomb(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "thread bomb: a report pipe");
    deadline = now() + DEADLINE_S;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        thread_bomb_child(p[1]);
    }
    close(p[1]);
    char line[64] = "";
    ssize_t n = 0;
    while (n < (ssize_t)sizeof line - 1) {
        ssize_t r = read(p[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += r;
    }
    close(p[0]);
    int st = -1;
    waitpid(child, &st, 0);
    int made = -1, err = -1;
    sscanf(line, "%d %d", &made, &err);
    printf("info thread bomb: %d threads, then error %d\n", made, err);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "thread bomb: the child dropped root, set RLIMIT_NPROC and exited", "status %#x", st);
    check(err == EAGAIN, "thread bomb: pthread_create fails with EAGAIN at RLIMIT_NPROC",
          "%d threads, then error %d", made, err);
    check(made >= 0 && made + 1 <= NPROC_LIMIT, "thread bomb: never more than RLIMIT_NPROC tasks",
          "%d threads plus the main thread with the limit at %d", made, NPROC_LIMIT);
}

static void still_alive(const char *after)
{
    char what[96];
    fflush(stdout);
    pid_t p = fork();
    if (p == 0)
        _exit(42);
    int st = -1;
    if (p > 0)
        waitpid(p, &st, 0);
    snprintf(what, sizeof what, "after the %s, the parent forks a child that exits 42", after);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 42, what, "fork %d, status %#x", p, st);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Orphaned bomb processes must come back to us to be reaped (natively; ktls's pid 1 gets
     * them anyway). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* Warm up what the measurements below need (stdio, a fork, a pipe), then measure. */
    still_alive("warm-up");
    report_memory("start");

    fork_bomb();
    still_alive("fork bomb");
    report_memory("after-fork-bomb");

    thread_bomb();
    still_alive("thread bomb");
    report_memory("after-thread-bomb");
    return finish();
}
