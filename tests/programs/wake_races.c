/*
 * Signals sent while a thread is on its way to sleep are not lost.
 *
 * For each kind of sleep (pause, nanosleep, a blocking pipe read, a shared-futex wait), a child
 * loops on that sleep while the parent, TRIALS times, wakes it (SIGUSR1 with a handler, a byte
 * in the pipe, FUTEX_WAKE), spins a random while and sends SIGUSR2, so that the signal lands at
 * every point of the child's way back into its sleep. Each SIGUSR2 handler must run within 1 s.
 * Then SIGKILL, the same way: the child must be dead within 2 s.
 *
 * A kernel that looks for pending signals only before it marks the sleeper blocked misses a
 * signal sent in between: its sender sees a running thread and wakes nobody, and the child
 * sleeps on with the signal pending. ktls did that (the syscall fuzzer's rare hang: a process
 * killed with SIGKILL that never died, its parent blocked in waitpid). It takes two CPUs.
 */
#include "ktls_test.h"

#include <sched.h>

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* From linux/futex.h, which musl's headers lack. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

enum kind { PAUSE, NANOSLEEP, PIPE_READ, FUTEX_WAIT_SHARED, KINDS };
static const char *const KIND_NAME[KINDS] = {"pause", "nanosleep", "pipe read",
                                            "shared futex wait"};

/* Signals per kind, and the longest random spin before each. */
#define TRIALS 1000
#define MAX_SPIN 16000

/* Shared with the children: the futex word and the count of SIGUSR2 handler runs. */
static volatile uint32_t *shared;
#define FUTEX_WORD (&shared[0])
#define USR2_RUNS (&shared[1])
static int pipe_fds[2];
static int two_cpus;

static void on_usr1(int sig)
{
    (void)sig;
}

static void on_usr2(int sig)
{
    (void)sig;
    __atomic_add_fetch(USR2_RUNS, 1, __ATOMIC_SEQ_CST);
}

static void sleeper(enum kind k)
{
    for (;;) {
        switch (k) {
        case PAUSE:
            pause();
            break;
        case NANOSLEEP: {
            struct timespec ts = {3600, 0};
            nanosleep(&ts, NULL);
            break;
        }
        case PIPE_READ: {
            char c;
            (void)!read(pipe_fds[0], &c, 1);
            break;
        }
        default:
            syscall(SYS_futex, FUTEX_WORD, FUTEX_WAIT, 0, NULL, NULL, 0);
            break;
        }
    }
}

/* Wakes the sleeper the way its sleep ends without a signal of ours (SIGUSR1 for the
 * sleeps only a signal ends). */
static void poke(enum kind k, pid_t child)
{
    switch (k) {
    case PAUSE:
    case NANOSLEEP:
        kill(child, SIGUSR1);
        break;
    case PIPE_READ:
        (void)!write(pipe_fds[1], "x", 1);
        break;
    default:
        syscall(SYS_futex, FUTEX_WORD, FUTEX_WAKE, 1, NULL, NULL, 0);
        break;
    }
}

static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits up to `ms` for `pid` to end; its status, or -1. */
static int reap_within(pid_t pid, long ms)
{
    for (long waited = 0; waited <= ms; waited++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Waits up to 1 s for the SIGUSR2 handler to have run more than `runs` times. */
static int usr2_ran(uint32_t runs)
{
    double until = mono() + 1;
    while (__atomic_load_n(USR2_RUNS, __ATOMIC_SEQ_CST) == runs)
        if (mono() > until)
            return 0;
    return 1;
}

/* Parent and child on different CPUs: on one, the kernel would not let them overlap. */
static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void race(enum kind k, unsigned *rng)
{
    __atomic_store_n(USR2_RUNS, 0, __ATOMIC_SEQ_CST);
    pid_t pid = fork();
    if (pid == 0) {
        if (two_cpus)
            pin_to(1);
        sleeper(k);
    }
    if (pid < 0) {
        check(0, KIND_NAME[k], "fork failed");
        return;
    }
    /* SIGUSR2 after a wake-up and a random spin, so that it lands at every point of the
     * child's way back into its sleep. A lost one runs at the next poke. */
    int lost = 0;
    for (int i = 0; i < TRIALS; i++) {
        poke(k, pid);
        spin(rand_r(rng) % MAX_SPIN);
        uint32_t runs = __atomic_load_n(USR2_RUNS, __ATOMIC_SEQ_CST);
        kill(pid, SIGUSR2);
        if (!usr2_ran(runs)) {
            lost++;
            poke(k, pid);
            usr2_ran(runs);
        }
    }
    char what[128];
    snprintf(what, sizeof what, "%s: %d signals sent on the way to sleep end the sleep",
             KIND_NAME[k], TRIALS);
    check(lost == 0, what, "%d handlers had not run 1 s later", lost);
    /* And SIGKILL, the same way. */
    int killed_late = 0;
    poke(k, pid);
    spin(rand_r(rng) % MAX_SPIN);
    kill(pid, SIGKILL);
    int st = reap_within(pid, 2000);
    if (st == -1) {
        killed_late = 1;
        kill(pid, SIGKILL); /* found blocked now: woken */
        waitpid(pid, &st, 0);
    }
    snprintf(what, sizeof what, "%s: SIGKILL on the way to sleep kills", KIND_NAME[k]);
    check(!killed_late && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, what,
          "%s, status %#x", killed_late ? "alive 2 s later" : "in time", st);
    /* Leave nothing in the pipe for the next child (the read end blocks: read only what is
     * there). */
    int left = 0;
    if (k == PIPE_READ && ioctl(pipe_fds[0], FIONREAD, &left) == 0 && left > 0) {
        char buf[64];
        while (left > 0) {
            ssize_t n = read(pipe_fds[0], buf, (size_t)left < sizeof buf ? (size_t)left : sizeof buf);
            if (n <= 0)
                break;
            left -= n;
        }
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "SIGUSR1 handler");
    sa.sa_handler = on_usr2;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "SIGUSR2 handler");
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED, "a shared futex word and counter");
    CHECK(pipe(pipe_fds) == 0, "a pipe");
    /* With one CPU the races cannot happen, and the checks pass all the same. */
    two_cpus = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
    if (two_cpus)
        pin_to(0);
    unsigned rng = 12345;
    for (int k = 0; k < KINDS; k++)
        race(k, &rng);
    return finish();
}
