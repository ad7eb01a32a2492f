/*
 * Process identity, clocks, sleeping, randomness, resource limits, signal dispositions and
 * masks, the alternate signal stack and unknown syscalls. Prints nothing host-specific.
 */
#include "ktls_test.h"

#include <signal.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static int field_ok(const char *f, size_t cap)
{
    return memchr(f, 0, cap) != NULL && f[0] != 0;
}

static long ts_ns(struct timespec t)
{
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void test_uname(void)
{
    struct utsname u;
    CHECK(uname(&u) == 0, "uname");
    CHECK(strcmp(u.sysname, "Linux") == 0, "uname sysname is Linux");
    CHECK(strcmp(u.machine, "x86_64") == 0, "uname machine is x86_64");
    CHECK(field_ok(u.nodename, sizeof(u.nodename)), "uname nodename present");
    CHECK(field_ok(u.release, sizeof(u.release)) && u.release[0] >= '1' && u.release[0] <= '9',
          "uname release present and starts with a version number");
    CHECK(field_ok(u.version, sizeof(u.version)), "uname version present");
    CHECK(memchr(u.domainname, 0, sizeof(u.domainname)) != NULL, "uname domainname terminated");
}

static void test_ids(void)
{
    pid_t pid = getpid();
    CHECK(pid > 0, "getpid is positive");
    CHECK(raw_syscall0(SYS_getpid) == pid, "raw getpid agrees with libc");
    CHECK(raw_syscall0(SYS_gettid) == pid, "gettid equals getpid in a single-threaded process");
    CHECK(getppid() >= 0 && getppid() != pid, "getppid is not getpid");
    CHECK(getuid() == geteuid(), "getuid equals geteuid");
    CHECK(getgid() == getegid(), "getgid equals getegid");
    CHECK(raw_syscall1(SYS_set_tid_address, &(int){0}) == pid, "set_tid_address returns the tid");
    CHECK(raw_syscall0(SYS_sched_yield) == 0, "sched_yield returns 0");
}

static void test_clocks(void)
{
    /* libc's clock_gettime (vDSO when there is one) interleaved with the raw syscall. */
    struct timespec a, b, raw;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0, "clock_gettime(CLOCK_MONOTONIC)");
    int mono = 1, raw_ok = 1;
    for (int i = 0; i < 1000; i++) {
        raw_ok &= raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &raw) == 0;
        clock_gettime(CLOCK_MONOTONIC, &b);
        mono &= ts_ns(a) <= ts_ns(raw) && ts_ns(raw) <= ts_ns(b);
        mono &= raw.tv_nsec >= 0 && raw.tv_nsec < 1000000000L;
        a = b;
    }
    CHECK(raw_ok, "raw clock_gettime(CLOCK_MONOTONIC) succeeds");
    CHECK(mono, "CLOCK_MONOTONIC never goes backwards (libc and raw syscall interleaved)");

    struct timespec res;
    CHECK(clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0 &&
              res.tv_nsec <= 10000000,
          "clock_getres(CLOCK_MONOTONIC) is at most 10 ms");
    CHECK_ERR(raw_syscall2(SYS_clock_gettime, 12345, &raw), EINVAL,
              "clock_gettime with an unknown clock is EINVAL");

    struct timespec t0, t1, req = {0, 10000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(nanosleep(&req, NULL) == 0, "nanosleep 10 ms");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long slept = ts_ns(t1) - ts_ns(t0);
    check(slept >= 10000000L, "nanosleep 10 ms takes at least 10 ms of CLOCK_MONOTONIC",
          "slept %ld ns", slept);
    check(slept < 2000000000L, "nanosleep 10 ms returns within 2 s", "slept %ld ns", slept);
    struct timespec bad = {0, 1000000000L};
    CHECK_ERR(raw_syscall2(SYS_nanosleep, &bad, 0), EINVAL, "nanosleep with tv_nsec = 1e9 is EINVAL");

    struct timespec rt;
    struct timeval tv;
    CHECK(clock_gettime(CLOCK_REALTIME, &rt) == 0, "clock_gettime(CLOCK_REALTIME)");
    CHECK(gettimeofday(&tv, NULL) == 0, "gettimeofday");
    time_t t = time(NULL);
    long raw_time = raw_syscall1(SYS_time, 0);
    CHECK(rt.tv_sec > 1600000000L, "CLOCK_REALTIME is after 2020");
    CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "gettimeofday tv_usec in range");
    CHECK(labs(tv.tv_sec - rt.tv_sec) <= 1, "gettimeofday agrees with CLOCK_REALTIME within 1 s");
    CHECK(labs(t - rt.tv_sec) <= 1, "time() agrees with CLOCK_REALTIME within 1 s");
    CHECK(labs(raw_time - rt.tv_sec) <= 1, "raw time(2) agrees with CLOCK_REALTIME within 1 s");
}

static void test_random(void)
{
    unsigned char a[64], b[64], zero[64] = {0};
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    CHECK(getrandom(a, sizeof(a), 0) == sizeof(a), "getrandom 64 bytes");
    CHECK(getrandom(b, sizeof(b), GRND_NONBLOCK) == sizeof(b), "getrandom GRND_NONBLOCK 64 bytes");
    CHECK(memcmp(a, zero, sizeof(a)) != 0 && memcmp(b, zero, sizeof(b)) != 0,
          "getrandom filled the buffers");
    CHECK(memcmp(a, b, sizeof(a)) != 0, "two getrandom calls differ");
    CHECK_ERR(raw_syscall3(SYS_getrandom, a, sizeof(a), 0x100), EINVAL,
              "getrandom with an unknown flag is EINVAL");
}

static void test_rlimits(void)
{
    struct rlimit st, nf, st64, nf64;
    CHECK(getrlimit(RLIMIT_STACK, &st) == 0, "getrlimit(RLIMIT_STACK)");
    CHECK(getrlimit(RLIMIT_NOFILE, &nf) == 0, "getrlimit(RLIMIT_NOFILE)");
    CHECK_RET(raw_syscall4(SYS_prlimit64, 0, RLIMIT_STACK, 0, &st64), 0, "prlimit64(RLIMIT_STACK)");
    CHECK_RET(raw_syscall4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, &nf64), 0,
              "prlimit64(RLIMIT_NOFILE)");
    CHECK(st.rlim_cur == st64.rlim_cur && st.rlim_max == st64.rlim_max,
          "getrlimit and prlimit64 agree on RLIMIT_STACK");
    CHECK(nf.rlim_cur == nf64.rlim_cur && nf.rlim_max == nf64.rlim_max,
          "getrlimit and prlimit64 agree on RLIMIT_NOFILE");
    CHECK(st.rlim_cur <= st.rlim_max && st.rlim_cur >= 128 * 1024,
          "RLIMIT_STACK is at least 128 KiB and cur <= max");
    CHECK(nf.rlim_cur <= nf.rlim_max && nf.rlim_cur >= 64, "RLIMIT_NOFILE is at least 64 and cur <= max");
    CHECK_ERR(raw_syscall4(SYS_prlimit64, 0, 1000, 0, &st64), EINVAL,
              "prlimit64 with an unknown resource is EINVAL");
    struct rlimit lower = {nf.rlim_cur - 1, nf.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &lower) == 0, "setrlimit lowers RLIMIT_NOFILE");
    CHECK(getrlimit(RLIMIT_NOFILE, &nf64) == 0 && nf64.rlim_cur == nf.rlim_cur - 1,
          "the lowered RLIMIT_NOFILE reads back");
    CHECK(setrlimit(RLIMIT_NOFILE, &nf) == 0, "setrlimit restores RLIMIT_NOFILE");
}

static void handler(int sig)
{
    (void)sig;
}

/* The kernel's struct sigaction for rt_sigaction. */
struct ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

static void restorer(void)
{
}

static void test_signals(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction sets a SIGUSR1 handler");
    memset(&old, 0, sizeof(old));
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0, "sigaction reads it back");
    CHECK(old.sa_handler == handler, "the handler reads back");
    CHECK(old.sa_flags & SA_RESTART, "SA_RESTART reads back");
    CHECK(sigismember(&old.sa_mask, SIGUSR2) == 1, "the handler's mask reads back");

    /* The raw syscall round-trips every field of the kernel's struct. */
    struct ksigaction k = {(void *)handler, SA_RESTART | SA_SIGINFO | 0x04000000 /* SA_RESTORER */,
                           (void *)restorer, 1UL << (SIGTERM - 1)};
    struct ksigaction back;
    memset(&back, 0xff, sizeof(back));
    CHECK_RET(raw_syscall4(SYS_rt_sigaction, SIGUSR2, &k, 0, 8), 0, "raw rt_sigaction sets SIGUSR2");
    CHECK_RET(raw_syscall4(SYS_rt_sigaction, SIGUSR2, 0, &back, 8), 0, "raw rt_sigaction reads it");
    CHECK(back.handler == k.handler && back.flags == k.flags && back.restorer == k.restorer &&
              back.mask == k.mask,
          "raw rt_sigaction round-trips handler, flags, restorer and mask");
    struct ksigaction dfl = {SIG_DFL, 0, 0, 0};
    CHECK_RET(raw_syscall4(SYS_rt_sigaction, SIGUSR2, &dfl, &back, 8), 0,
              "rt_sigaction resets SIGUSR2 and returns the old action");
    CHECK(back.handler == (void *)handler, "the old action is the one set before");
    CHECK_ERR(raw_syscall4(SYS_rt_sigaction, SIGKILL, &k, 0, 8), EINVAL,
              "a SIGKILL handler is EINVAL");
    CHECK_ERR(raw_syscall4(SYS_rt_sigaction, SIGUSR2, &k, 0, 4), EINVAL,
              "rt_sigaction with sigsetsize 4 is EINVAL");
    CHECK_ERR(raw_syscall4(SYS_rt_sigaction, 65, &k, 0, 8), EINVAL, "rt_sigaction of signal 65 is EINVAL");
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == handler,
          "the SIGUSR1 handler is still set");

    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGKILL);
    sigaddset(&set, SIGSTOP);
    CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask blocks SIGUSR1 (and tries SIGKILL)");
    CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0, "sigprocmask reads the mask");
    CHECK(sigismember(&cur, SIGUSR1) == 1, "SIGUSR1 is blocked");
    CHECK(sigismember(&cur, SIGKILL) == 0 && sigismember(&cur, SIGSTOP) == 0,
          "SIGKILL and SIGSTOP cannot be blocked");
    uint64_t kmask = 0;
    CHECK_RET(raw_syscall4(SYS_rt_sigprocmask, SIG_BLOCK, 0, &kmask, 8), 0, "raw rt_sigprocmask reads");
    CHECK(kmask & (1UL << (SIGUSR1 - 1)), "the raw mask has SIGUSR1's bit");
    CHECK(sigprocmask(SIG_UNBLOCK, &set, NULL) == 0, "sigprocmask unblocks");
    CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGUSR1) == 0,
          "SIGUSR1 is unblocked");
    CHECK_ERR(raw_syscall4(SYS_rt_sigprocmask, 3, &kmask, 0, 8), EINVAL,
              "rt_sigprocmask with how = 3 is EINVAL");
    CHECK_ERR(raw_syscall4(SYS_rt_sigprocmask, SIG_BLOCK, &kmask, 0, 16), EINVAL,
              "rt_sigprocmask with sigsetsize 16 is EINVAL");

    stack_t ss, oss;
    memset(&oss, 0xff, sizeof(oss));
    CHECK(sigaltstack(NULL, &oss) == 0, "sigaltstack reads");
    CHECK(oss.ss_flags == SS_DISABLE, "no alternate stack at start (SS_DISABLE)");
    static char altstack[64 * 1024];
    ss.ss_sp = altstack;
    ss.ss_size = sizeof(altstack);
    ss.ss_flags = 0;
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack sets a 64 KiB stack");
    memset(&oss, 0, sizeof(oss));
    CHECK(sigaltstack(NULL, &oss) == 0, "sigaltstack reads it back");
    CHECK(oss.ss_sp == altstack && oss.ss_size == sizeof(altstack) && oss.ss_flags == 0,
          "sigaltstack round-trips sp, size and flags");
    ss.ss_size = 1024;
    errno = 0;
    CHECK(sigaltstack(&ss, NULL) == -1 && errno == ENOMEM, "a 1 KiB alternate stack is ENOMEM");
    ss.ss_flags = SS_DISABLE;
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack disables");
    CHECK(sigaltstack(NULL, &oss) == 0 && oss.ss_flags == SS_DISABLE, "the alternate stack is off");
}

static void test_unknown_syscalls(void)
{
    CHECK_ERR(raw_syscall0(500), ENOSYS, "syscall 500 is ENOSYS");
    CHECK_ERR(raw_syscall0(511), ENOSYS, "syscall 511 is ENOSYS");
    CHECK_ERR(raw_syscall0(-1), ENOSYS, "syscall -1 is ENOSYS");
    CHECK_ERR(raw_syscall0(0x40000000L + 39), ENOSYS, "x32 getpid is ENOSYS for a 64-bit process");
}

int main(void)
{
    test_uname();
    test_ids();
    test_clocks();
    test_random();
    test_rlimits();
    test_signals();
    test_unknown_syscalls();
    return finish();
}
