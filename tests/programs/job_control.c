/*
 * Job control: stop signals stop a whole process and SIGCONT continues it, as on Linux.
 *
 * A forked child that spins (incrementing a counter in shared memory) is stopped with SIGSTOP
 * and continued with SIGCONT: waitpid with WUNTRACED / WCONTINUED reports each once, and the
 * counter stands still while the child is stopped. The parent's SIGCHLD handler gets
 * CLD_STOPPED / CLD_CONTINUED, and does not with SA_NOCLDSTOP. SIGTSTP runs its handler when
 * it has one and stops the child when it has none; SIGCONT discards a pending SIGTSTP; every
 * thread of a multi-threaded child stops; a child stopped in a pipe read finishes the read
 * after SIGCONT; SIGKILL ends a stopped child; waitid with WSTOPPED | WNOWAIT reports twice;
 * SIGCONT to a running child with a handler just runs the handler.
 */
#include "ktls_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS 3

/* What the parent and its children share. */
struct shared {
    volatile unsigned long counter[THREADS + 1]; /* one per spinning thread */
    volatile int ready;                          /* the child has set itself up */
    volatile int handled;                        /* the child's handler ran (count) */
    volatile int step;                           /* protocol steps, both ways */
    volatile int result;                         /* what the child reports */
    volatile int pending_before, pending_after;  /* SIGTSTP pending, as the child saw it */
    char data[8];
};

static struct shared *sh;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (up to 3 s) until *flag reaches `want`; returns whether it did. */
static int wait_for(volatile int *flag, int want)
{
    for (int i = 0; i < 600 && *flag < want; i++)
        sleep_ms(5);
    return *flag >= want;
}

/* Whether counter `i` moves within 3 s. */
static int moves(int i)
{
    unsigned long before = sh->counter[i];
    for (int n = 0; n < 600; n++) {
        sleep_ms(5);
        if (sh->counter[i] != before)
            return 1;
    }
    return 0;
}

/* Whether counter `i` stands still for 50 ms. */
static int stands_still(int i)
{
    unsigned long before = sh->counter[i];
    sleep_ms(50);
    return sh->counter[i] == before;
}

static void reset_shared(void)
{
    memset((void *)sh, 0, sizeof *sh);
}

static void spin(int i)
{
    for (;;)
        sh->counter[i]++;
}

/* Forks a child that runs `setup` (if any), says it is ready, and spins on counter 0. */
static pid_t spinner(void (*setup)(void))
{
    reset_shared();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setup)
            setup();
        sh->ready = 1;
        spin(0);
    }
    wait_for(&sh->ready, 1);
    return pid;
}

/* Kills and reaps a child; returns whether SIGKILL ended it. */
static int kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    return r == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* waitpid that retries on EINTR (a SIGCHLD handler may run meanwhile). */
static pid_t waitpid_retry(pid_t pid, int *st, int options)
{
    pid_t r;
    while ((r = waitpid(pid, st, options)) < 0 && errno == EINTR)
        ;
    return r;
}

/* ---- SIGSTOP, SIGCONT and wait ---- */

static void test_stop_continue(void)
{
    pid_t pid = spinner(NULL);
    CHECK(moves(0), "the spinning child makes progress");
    CHECK(kill(pid, SIGSTOP) == 0, "kill(SIGSTOP)");
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP,
          "waitpid(WUNTRACED) reports the child stopped by SIGSTOP", "r %d status %#x", r, st);
    CHECK(stands_still(0), "a stopped child makes no progress");
    r = waitpid_retry(pid, &st, WUNTRACED | WNOHANG);
    check(r == 0, "a stop is reported once", "r %d status %#x", r, st);
    r = waitpid_retry(pid, &st, WNOHANG);
    check(r == 0, "waitpid without WUNTRACED does not report a stop", "r %d status %#x", r, st);
    CHECK(kill(pid, SIGCONT) == 0, "kill(SIGCONT)");
    r = waitpid_retry(pid, &st, WCONTINUED);
    check(r == pid && WIFCONTINUED(st), "waitpid(WCONTINUED) reports the child continued",
          "r %d status %#x", r, st);
    r = waitpid_retry(pid, &st, WCONTINUED | WNOHANG);
    check(r == 0, "a continue is reported once", "r %d status %#x", r, st);
    CHECK(moves(0), "the continued child makes progress again");
    /* Stopped and continued again: reported again. */
    kill(pid, SIGSTOP);
    r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st), "a second stop is reported", "r %d status %#x", r, st);
    kill(pid, SIGCONT);
    r = waitpid_retry(pid, &st, WNOHANG);
    check(r == 0, "waitpid without WCONTINUED does not report a continue", "r %d status %#x", r,
          st);
    r = waitpid_retry(pid, &st, WCONTINUED);
    check(r == pid && WIFCONTINUED(st), "a second continue is reported", "r %d status %#x", r,
          st);
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

/* ---- SIGCHLD with CLD_STOPPED / CLD_CONTINUED ---- */

#define MAX_EVENTS 8
static volatile int chld_count;
static volatile int chld_code[MAX_EVENTS], chld_status[MAX_EVENTS], chld_pid[MAX_EVENTS];

static void on_chld(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    int n = chld_count;
    if (n < MAX_EVENTS) {
        chld_code[n] = si->si_code;
        chld_status[n] = si->si_status;
        chld_pid[n] = si->si_pid;
        chld_count = n + 1;
    }
}

static void set_chld_handler(int flags)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | flags;
    sigaction(SIGCHLD, &sa, NULL);
    chld_count = 0;
}

/* Waits (up to 3 s) for SIGCHLD number `n` (counting from 1). */
static int chld_arrives(int n)
{
    for (int i = 0; i < 600 && chld_count < n; i++)
        sleep_ms(5);
    return chld_count >= n;
}

static void test_sigchld(void)
{
    set_chld_handler(0);
    pid_t pid = spinner(NULL);
    kill(pid, SIGSTOP);
    CHECK(chld_arrives(1), "SIGCHLD arrives when the child stops");
    check(chld_code[0] == CLD_STOPPED && chld_status[0] == SIGSTOP && chld_pid[0] == pid,
          "its siginfo says CLD_STOPPED, SIGSTOP and the child's pid", "code %d status %d",
          chld_code[0], chld_status[0]);
    kill(pid, SIGCONT);
    CHECK(chld_arrives(2), "SIGCHLD arrives when the child continues");
    check(chld_code[1] == CLD_CONTINUED && chld_status[1] == SIGCONT && chld_pid[1] == pid,
          "its siginfo says CLD_CONTINUED, SIGCONT and the child's pid", "code %d status %d",
          chld_code[1], chld_status[1]);
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
    signal(SIGCHLD, SIG_DFL);
}

static void test_nocldstop(void)
{
    set_chld_handler(SA_NOCLDSTOP);
    pid_t pid = spinner(NULL);
    kill(pid, SIGSTOP);
    int st = 0;
    waitpid_retry(pid, &st, WUNTRACED);
    kill(pid, SIGCONT);
    waitpid_retry(pid, &st, WCONTINUED);
    sleep_ms(20);
    check(chld_count == 0, "with SA_NOCLDSTOP no SIGCHLD comes for a stop or a continue",
          "%d SIGCHLD(s), first code %d", chld_count, chld_code[0]);
    kill(pid, SIGKILL);
    CHECK(chld_arrives(1), "with SA_NOCLDSTOP SIGCHLD still comes when the child dies");
    check(chld_code[0] == CLD_KILLED && chld_status[0] == SIGKILL,
          "its siginfo says CLD_KILLED and SIGKILL", "code %d status %d", chld_code[0],
          chld_status[0]);
    waitpid_retry(pid, &st, 0);
    signal(SIGCHLD, SIG_DFL);
}

/* ---- SIGTSTP ---- */

static void on_tstp(int sig)
{
    (void)sig;
    sh->handled++;
}

static void catch_tstp(void)
{
    signal(SIGTSTP, on_tstp);
}

static void test_tstp(void)
{
    pid_t pid = spinner(catch_tstp);
    kill(pid, SIGTSTP);
    CHECK(wait_for(&sh->handled, 1), "SIGTSTP with a handler runs the handler");
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED | WNOHANG);
    check(r == 0, "SIGTSTP with a handler does not stop the child", "r %d status %#x", r, st);
    CHECK(moves(0), "the child goes on running");
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");

    pid = spinner(NULL);
    kill(pid, SIGTSTP);
    r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP,
          "SIGTSTP with SIG_DFL stops the child (WSTOPSIG is SIGTSTP)", "r %d status %#x", r, st);
    CHECK(stands_still(0), "the child stopped by SIGTSTP makes no progress");
    kill(pid, SIGCONT);
    CHECK(moves(0), "SIGCONT continues it");
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

/* The child blocks SIGTSTP; the parent sends SIGTSTP (pending) and then SIGCONT, which
 * discards it: once unblocked, nothing stops the child. */
static void tstp_discarded_child(void)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGTSTP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sh->ready = 1;
    while (sh->step < 1)
        ;
    sigpending(&pend);
    sh->pending_before = sigismember(&pend, SIGTSTP);
    sh->step = 2;
    while (sh->step < 3)
        ;
    sigpending(&pend);
    sh->pending_after = sigismember(&pend, SIGTSTP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sh->step = 4;
}

static void test_cont_discards_stop(void)
{
    pid_t pid = spinner(tstp_discarded_child);
    kill(pid, SIGTSTP);
    sh->step = 1;
    wait_for(&sh->step, 2);
    CHECK(sh->pending_before, "a blocked SIGTSTP stays pending");
    kill(pid, SIGCONT);
    sh->step = 3;
    CHECK(wait_for(&sh->step, 4), "the child unblocks SIGTSTP");
    CHECK(!sh->pending_after, "SIGCONT discards the pending SIGTSTP");
    CHECK(moves(0), "the child is not stopped after unblocking SIGTSTP");
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED | WNOHANG);
    check(r == 0, "no stop is reported", "r %d status %#x", r, st);
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

/* ---- threads ---- */

static void *spin_thread(void *arg)
{
    spin((int)(intptr_t)arg);
    return NULL;
}

static void start_threads(void)
{
    for (int i = 1; i <= THREADS; i++) {
        pthread_t th;
        pthread_create(&th, NULL, spin_thread, (void *)(intptr_t)i);
    }
}

static void test_threads(void)
{
    pid_t pid = spinner(start_threads);
    int all = 1;
    for (int i = 0; i <= THREADS; i++)
        all &= moves(i);
    CHECK(all, "every thread of the child makes progress");
    kill(pid, SIGSTOP);
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st), "the multi-threaded child stops", "r %d status %#x", r, st);
    unsigned long before[THREADS + 1];
    for (int i = 0; i <= THREADS; i++)
        before[i] = sh->counter[i];
    sleep_ms(50);
    int still = 1;
    for (int i = 0; i <= THREADS; i++)
        still &= sh->counter[i] == before[i];
    CHECK(still, "none of its threads makes progress while it is stopped");
    kill(pid, SIGCONT);
    all = 1;
    for (int i = 0; i <= THREADS; i++)
        all &= moves(i);
    CHECK(all, "every thread makes progress again after SIGCONT");
    kill(pid, SIGSTOP);
    waitpid_retry(pid, &st, WUNTRACED);
    CHECK(kill_and_reap(pid), "SIGKILL ends the stopped multi-threaded child");
}

/* ---- a stopped read ---- */

static int pipe_fds[2];

static void read_child(void)
{
    sh->ready = 1;
    char buf[8] = {0};
    ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    sh->result = n < 0 ? -errno : (int)n;
    memcpy(sh->data, buf, sizeof buf);
    sh->step = 1;
    _exit(0);
}

static void test_stopped_read(void)
{
    CHECK(pipe(pipe_fds) == 0, "pipe");
    pid_t pid = spinner(read_child);
    sleep_ms(50); /* blocked in read by now */
    kill(pid, SIGSTOP);
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st), "the child blocked in read stops", "r %d status %#x", r, st);
    CHECK(write(pipe_fds[1], "data", 4) == 4, "data is written while it is stopped");
    sleep_ms(50);
    CHECK(sh->step == 0, "the stopped child does not read it");
    kill(pid, SIGCONT);
    CHECK(wait_for(&sh->step, 1), "after SIGCONT the read completes");
    check(sh->result == 4 && memcmp(sh->data, "data", 4) == 0,
          "the read returns the data (no EINTR)", "result %d", sh->result);
    r = waitpid_retry(pid, &st, 0);
    check(r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exits normally",
          "r %d status %#x", r, st);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* ---- A sleep across a stop: it goes on (restart_syscall), it does not end early ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_child(void)
{
    sh->ready = 1;
    double t0 = mono_s();
    struct timespec ts = {0, 400 * 1000000L}, rem = {0, 0};
    int r = nanosleep(&ts, &rem);
    sh->result = r == 0 ? (int)((mono_s() - t0) * 1000) : -errno;
    sh->step = 1;
    _exit(0);
}

static void test_stopped_sleep(void)
{
    pid_t pid = spinner(sleep_child);
    sleep_ms(50); /* in nanosleep by now */
    kill(pid, SIGSTOP);
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WUNTRACED);
    check(r == pid && WIFSTOPPED(st), "the child in nanosleep stops", "r %d status %#x", r, st);
    sleep_ms(50);
    kill(pid, SIGCONT);
    CHECK(wait_for(&sh->step, 1), "after SIGCONT the sleep ends");
    check(sh->result >= 400, "nanosleep goes on after a stop and continue: it returns 0 "
          "after the whole time", "result %d (ms slept, or -errno)", sh->result);
    r = waitpid_retry(pid, &st, 0);
    check(r == pid && WIFEXITED(st), "the child exits normally", "r %d status %#x", r, st);
}

/* ---- SIGKILL while stopped ---- */

static void test_kill_stopped(void)
{
    pid_t pid = spinner(NULL);
    kill(pid, SIGSTOP);
    int st = 0;
    waitpid_retry(pid, &st, WUNTRACED);
    /* Signals other than SIGKILL wait for SIGCONT. */
    kill(pid, SIGTERM);
    sleep_ms(30);
    pid_t r = waitpid_retry(pid, &st, WNOHANG);
    check(r == 0, "SIGTERM does not end a stopped child before SIGCONT", "r %d status %#x", r,
          st);
    kill(pid, SIGKILL);
    r = waitpid_retry(pid, &st, 0);
    check(r == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "SIGKILL ends a stopped child",
          "r %d status %#x", r, st);

    pid = spinner(NULL);
    kill(pid, SIGSTOP);
    waitpid_retry(pid, &st, WUNTRACED);
    kill(pid, SIGTERM);
    kill(pid, SIGCONT);
    r = waitpid_retry(pid, &st, 0);
    check(r == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
          "a SIGTERM sent while stopped ends the child once it is continued", "r %d status %#x",
          r, st);
}

/* ---- waitid ---- */

static int waitid_event(pid_t pid, int options, siginfo_t *si)
{
    memset(si, 0, sizeof *si);
    int r;
    while ((r = waitid(P_PID, pid, si, options)) < 0 && errno == EINTR)
        ;
    return r;
}

static void test_waitid(void)
{
    pid_t pid = spinner(NULL);
    siginfo_t si;
    kill(pid, SIGSTOP);
    int r = waitid_event(pid, WSTOPPED | WNOWAIT, &si);
    check(r == 0 && si.si_pid == pid && si.si_code == CLD_STOPPED && si.si_status == SIGSTOP &&
              si.si_signo == SIGCHLD,
          "waitid(WSTOPPED | WNOWAIT) reports CLD_STOPPED and SIGSTOP", "r %d pid %d code %d status %d",
          r, si.si_pid, si.si_code, si.si_status);
    r = waitid_event(pid, WSTOPPED | WNOWAIT, &si);
    check(r == 0 && si.si_pid == pid && si.si_code == CLD_STOPPED,
          "waitid(WSTOPPED | WNOWAIT) reports it again", "r %d pid %d code %d", r, si.si_pid,
          si.si_code);
    r = waitid_event(pid, WSTOPPED, &si);
    check(r == 0 && si.si_pid == pid && si.si_code == CLD_STOPPED,
          "waitid(WSTOPPED) reports it a third time, and consumes it", "r %d pid %d code %d", r,
          si.si_pid, si.si_code);
    r = waitid_event(pid, WSTOPPED | WNOHANG, &si);
    check(r == 0 && si.si_pid == 0, "then waitid(WSTOPPED | WNOHANG) finds nothing",
          "r %d pid %d code %d", r, si.si_pid, si.si_code);
    r = waitid_event(pid, WEXITED | WNOHANG, &si);
    check(r == 0 && si.si_pid == 0, "waitid(WEXITED) does not report a stopped child",
          "r %d pid %d code %d", r, si.si_pid, si.si_code);
    kill(pid, SIGCONT);
    r = waitid_event(pid, WCONTINUED | WNOWAIT, &si);
    check(r == 0 && si.si_pid == pid && si.si_code == CLD_CONTINUED && si.si_status == SIGCONT,
          "waitid(WCONTINUED | WNOWAIT) reports CLD_CONTINUED and SIGCONT",
          "r %d pid %d code %d status %d", r, si.si_pid, si.si_code, si.si_status);
    r = waitid_event(pid, WCONTINUED, &si);
    check(r == 0 && si.si_pid == pid && si.si_code == CLD_CONTINUED,
          "waitid(WCONTINUED) reports it again, and consumes it", "r %d pid %d code %d", r,
          si.si_pid, si.si_code);
    r = waitid_event(pid, WCONTINUED | WNOHANG, &si);
    check(r == 0 && si.si_pid == 0, "then waitid(WCONTINUED | WNOHANG) finds nothing",
          "r %d pid %d code %d", r, si.si_pid, si.si_code);
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

/* ---- SIGCONT with a handler ---- */

static void on_cont(int sig)
{
    (void)sig;
    sh->handled++;
}

static void catch_cont(void)
{
    signal(SIGCONT, on_cont);
}

static void test_cont_handler(void)
{
    pid_t pid = spinner(catch_cont);
    kill(pid, SIGCONT);
    CHECK(wait_for(&sh->handled, 1), "SIGCONT to a running child runs its handler");
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WCONTINUED | WUNTRACED | WNOHANG);
    check(r == 0, "and there is nothing to report", "r %d status %#x", r, st);
    CHECK(moves(0), "the child goes on running");

    kill(pid, SIGSTOP);
    waitpid_retry(pid, &st, WUNTRACED);
    kill(pid, SIGCONT);
    r = waitpid_retry(pid, &st, WCONTINUED);
    check(r == pid && WIFCONTINUED(st), "SIGCONT with a handler continues a stopped child",
          "r %d status %#x", r, st);
    CHECK(wait_for(&sh->handled, 2), "and then runs the handler");
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

static void block_cont(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCONT);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static void test_cont_blocked(void)
{
    pid_t pid = spinner(block_cont);
    kill(pid, SIGSTOP);
    int st = 0;
    waitpid_retry(pid, &st, WUNTRACED);
    kill(pid, SIGCONT);
    CHECK(moves(0), "a blocked SIGCONT continues a stopped child too");
    CHECK(kill_and_reap(pid), "SIGKILL ends the child");
}

static int run_tests(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    test_stop_continue();
    test_sigchld();
    test_nocldstop();
    test_tstp();
    test_cont_discards_stop();
    test_threads();
    test_stopped_read();
    test_stopped_sleep();
    test_kill_stopped();
    test_waitid();
    test_cont_handler();
    test_cont_blocked();
    return finish();
}

static int wait_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

/*
 * Linux discards SIGTSTP, SIGTTIN and SIGTTOU whose action is the default at delivery to a
 * process whose process group is orphaned (no member has a parent in another group of the
 * session), which ours may be, depending on how the test was started. So the tests run in a
 * group that is not: a new session, whose leader waits, and in it a group of their own. The
 * leader also kills whatever the tests leave behind (a spinning child of a failed check), and
 * an alarm turns a test that hangs into a failure.
 */
int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t leader = fork();
    if (leader == 0) {
        if (setsid() < 0)
            _exit(90);
        pid_t tests = fork();
        if (tests == 0) {
            if (setpgid(0, 0) != 0)
                _exit(91);
            alarm(120);
            _exit(run_tests());
        }
        int st = wait_status(tests);
        kill(-tests, SIGKILL);
        if (WIFSIGNALED(st))
            printf("FAIL the tests ended by signal %d\n", WTERMSIG(st));
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 92);
    }
    int st = wait_status(leader);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 93;
}
