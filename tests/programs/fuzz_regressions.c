/*
 * Crashes and hangs found by fuzz_syscalls.c, each minimized to a few calls, with Linux's
 * answer as the expectation: `fuzz_regressions [CASE]`, every case without an argument. The
 * harness runs each case in its own boot, so that one that panics or hangs the kernel does not
 * hide the others.
 *
 *   lengths       mremap/munmap/mprotect/madvise/mincore with lengths that wrap around the
 *                 address space: Linux refuses them (EINVAL or ENOMEM). ktls panicked in its
 *                 mapping tree on mremap(addr, -4096, 0x26, 0) ("range start is greater than
 *                 range end in BTreeMap").
 *   settid        clone with CLONE_PARENT_SETTID or CLONE_CHILD_SETTID and a tid pointer the
 *                 kernel cannot write: Linux ignores the failed write, the child runs and is
 *                 reaped. ktls returned EFAULT and left a half-made child that wait4 counts but
 *                 that never ends.
 *   pidfd         clone with CLONE_PIDFD and an unwritable pidfd pointer: Linux fails with
 *                 EFAULT and creates no child.
 *   group_kill    SIGKILL to a process group that holds such a half-made child (as the fuzzer's
 *                 clean-up does): everything is reaped. ktls went into an endless "nested fault
 *                 while reporting" loop.
 *   vfork_thread  clone(CLONE_VM | CLONE_VFORK | CLONE_THREAD | CLONE_SIGHAND): the parent waits
 *                 until the child releases the memory, which a thread does by exiting. ktls
 *                 waited forever, and neither exit_group nor SIGKILL ended the process.
 *   vfork_kill    the vfork wait is killable: a CLONE_VFORK thread that dies of a signal takes
 *                 the whole process, its waiting parent thread included, and SIGKILL ends a
 *                 parent whose vfork child never execs or exits. ktls waited forever (the
 *                 fuzzer's clone(0x16d4d00) hang: a CLONE_VFORK | CLONE_THREAD child whose
 *                 process was killed).
 *
 * Every case that could hang runs in a child under a watchdog.
 */
#include "ktls_test.h"

#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096l

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------------ */

static void lengths(void)
{
    static const long LENS[] = {-PAGE, -2 * PAGE};
    char what[128];
    for (size_t i = 0; i < sizeof LENS / sizeof LENS[0]; i++) {
        long len = LENS[i];
        char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(a != MAP_FAILED, "map 4 pages");
        if (a == MAP_FAILED)
            return;
        a[0] = 1;
#define WRAP(call, err, name)                                                                  \
    do {                                                                                       \
        snprintf(what, sizeof what, "%s with length %ld: %s", name, len, #err);                \
        CHECK_ERR(call, err, what);                                                            \
    } while (0)
        WRAP(raw_syscall6(SYS_mremap, (long)a, len, PAGE, 0, 0, 0), EINVAL,
             "mremap shrinking from a wrapping old length");
        WRAP(raw_syscall6(SYS_mremap, (long)a, len, PAGE, MREMAP_MAYMOVE, 0, 0), EINVAL,
             "mremap MREMAP_MAYMOVE from a wrapping old length");
        WRAP(raw_syscall6(SYS_mremap, (long)a, PAGE, len, MREMAP_MAYMOVE, 0, 0), EINVAL,
             "mremap MREMAP_MAYMOVE to a wrapping new length");
        WRAP(raw_syscall6(SYS_mremap, (long)a, len, len, MREMAP_MAYMOVE, 0, 0), EINVAL,
             "mremap MREMAP_MAYMOVE with both lengths wrapping");
        WRAP(raw_syscall2(SYS_munmap, a, len), EINVAL, "munmap");
        WRAP(raw_syscall3(SYS_mprotect, a, len, PROT_READ), ENOMEM, "mprotect");
        WRAP(raw_syscall3(SYS_madvise, a, len, MADV_DONTNEED), EINVAL, "madvise(MADV_DONTNEED)");
#undef WRAP
        /* mincore changes nothing; a kernel without it says ENOSYS (and names it in its log). */
        long r = raw_syscall3(SYS_mincore, a, len, a + PAGE);
        snprintf(what, sizeof what, "mincore with length %ld: ENOMEM (or ENOSYS)", len);
        check(r == -ENOMEM || r == -ENOSYS, what, "got %ld", r);
        snprintf(what, sizeof what, "after the length %ld calls, the mapping is intact", len);
        check(a[0] == 1 && raw_syscall2(SYS_munmap, a, 4 * PAGE) == 0, what, "a[0] = %d",
              a[0]);
    }
}

/* ------------------------------------------------------------------------------------------ */

static char clone_stack[16384] __attribute__((aligned(16)));

/* clone whose child exits at once (SYS_exit), touching no memory. */
static long clone_exit(long flags, long sp, long ptid, long ctid)
{
    return raw_clone_exit(SYS_clone, flags, sp, ptid, ctid, 0);
}

/* Waits up to `ms` for any child; the pid, 0 if none ended, -1 with ECHILD if none exists. */
static pid_t wait_any(long ms, int *status)
{
    for (long t = 0;; t += 10) {
        pid_t w = waitpid(-1, status, WNOHANG | __WALL);
        if (w != 0 || t >= ms)
            return w;
        sleep_ms(10);
    }
}

/* Runs fn in a child that must end by itself within `ms`; its status, or -1 (then it was sent
 * SIGKILL and not waited for: a kernel with the bug may never end it). */
static int in_child_within(int (*fn)(long), long arg, long ms)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    for (long t = 0; t <= ms; t += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    return -1;
}

/* The bad tid pointers: not mapped, in the kernel half, and straddling the end of user space. */
static const uintptr_t BAD_TID[] = {1, 0xffff800000000000ul, 0x7ffffffffffful};

/* clone with CLONE_PARENT_SETTID (arg bit 0 clear) or CLONE_CHILD_SETTID (set) at BAD_TID[arg
 * >> 1]: 0 when the child was made and then reaped with status 0. */
static int settid_child(long arg)
{
    uintptr_t p = BAD_TID[arg >> 1];
    long flags = (arg & 1 ? CLONE_CHILD_SETTID : CLONE_PARENT_SETTID) | SIGCHLD;
    long r = clone_exit(flags, 0, (long)p, (long)p);
    if (r < 0)
        return 10 + (int)(-r & 0x3f);
    int st = -1;
    pid_t w = wait_any(2000, &st);
    if (w == 0)
        return 8; /* a child exists but never ends */
    if (w != r || st != 0)
        return 9;
    return 0;
}

static void settid(void)
{
    char what[160];
    for (long arg = 0; arg < 6; arg++) {
        int st = in_child_within(settid_child, arg, 4000);
        snprintf(what, sizeof what,
                 "clone %s with the tid pointer at %#lx: the child runs and is reaped (the "
                 "failed write is ignored)",
                 arg & 1 ? "CLONE_CHILD_SETTID" : "CLONE_PARENT_SETTID",
                 (unsigned long)BAD_TID[arg >> 1]);
        check(st == 0, what,
              "status %#x (exit 10+e: clone failed with errno e; 8: a child that never ends; "
              "-1: hung)",
              st);
    }
}

/* ------------------------------------------------------------------------------------------ */

static int pidfd_child(long arg)
{
    long r = clone_exit(CLONE_PIDFD | SIGCHLD, 0, (long)BAD_TID[arg], 0);
    int st;
    pid_t w = wait_any(500, &st);
    if (r != -EFAULT)
        return r > 0 ? 20 : 10 + (int)(-r & 0x3f);
    if (!(w < 0 && errno == ECHILD))
        return 8; /* a child was made after all */
    return 0;
}

static void pidfd(void)
{
    char what[160];
    for (long arg = 0; arg < 3; arg++) {
        int st = in_child_within(pidfd_child, arg, 3000);
        snprintf(what, sizeof what,
                 "clone CLONE_PIDFD with the pidfd pointer at %#lx: EFAULT, no child",
                 (unsigned long)BAD_TID[arg]);
        check(st == 0, what,
              "status %#x (exit 20: clone succeeded; 10+e: errno e; 8: a child exists)", st);
    }
}

/* ------------------------------------------------------------------------------------------ */

/* A process group whose leader tried a CLONE_CHILD_SETTID clone with a bad pointer, then
 * waits; the parent kills the whole group and must be able to reap everything. */
static void group_kill(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "a pipe");
    fflush(stdout);
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        clone_exit(CLONE_CHILD_SETTID | SIGCHLD, 0, 0, 1);
        (void)!write(p[1], "x", 1);
        for (;;)
            sleep_ms(1000);
    }
    setpgid(leader, leader);
    char c;
    CHECK(read(p[0], &c, 1) == 1, "the group leader made its clone");
    CHECK(kill(-leader, SIGKILL) == 0, "SIGKILL to the process group");
    int reaped = 0, st;
    pid_t w;
    while ((w = wait_any(3000, &st)) > 0)
        reaped++;
    check(w < 0 && errno == ECHILD && reaped >= 1,
          "everything in the killed group is reaped, then ECHILD",
          "%d reaped, then %s", reaped, w == 0 ? "a child that never ends" : "an error");
    close(p[0]);
    close(p[1]);
}

/* ------------------------------------------------------------------------------------------ */

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

static long clone3_exit(struct clone_args *args)
{
    return raw_clone_exit(SYS_clone3, (long)args, sizeof *args, 0, 0, 0);
}

#define VFORK_THREAD (CLONE_VM | CLONE_VFORK | CLONE_THREAD | CLONE_SIGHAND)

static int vfork_thread_child(long use_clone3)
{
    long r;
    if (use_clone3) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = VFORK_THREAD;
        a.stack = (uintptr_t)clone_stack;
        a.stack_size = sizeof clone_stack;
        r = clone3_exit(&a);
    } else {
        r = clone_exit(VFORK_THREAD, (long)(clone_stack + sizeof clone_stack), 0, 0);
    }
    return r > 0 ? 0 : 10 + (int)(-r & 0x3f);
}

static void vfork_thread(void)
{
    int st = in_child_within(vfork_thread_child, 0, 5000);
    check(st == 0,
          "clone(CLONE_VM|CLONE_VFORK|CLONE_THREAD|CLONE_SIGHAND): the parent resumes when the "
          "child thread exits",
          "status %#x (-1: the parent still waits after 5 s; 10+e: errno e)", st);
    if (st == -1)
        return; /* a second stuck process would not tell more */
    st = in_child_within(vfork_thread_child, 1, 5000);
    check(st == 0, "clone3 with the same flags: the parent resumes when the child exits",
          "status %#x (-1: the parent still waits after 5 s; 10+e: errno e)", st);
}

/* ------------------------------------------------------------------------------------------ */

/* clone whose child executes ud2 at once (SIGILL), touching no memory. */
static long clone_ud2(long flags, long sp)
{
    long ret;
    register long r10 __asm__("r10") = 0;
    register long r8 __asm__("r8") = 0;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "a"((long)SYS_clone), "D"(flags), "S"(sp), "d"(0l), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

/* clone whose child pauses forever (it shares our memory, so it touches none). */
static long clone_pause(long flags)
{
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n"
                     "2:\n\t"
                     "mov $34, %%eax\n\t"
                     "syscall\n\t"
                     "jmp 2b\n"
                     "1:"
                     : "=a"(ret)
                     : "a"((long)SYS_clone), "D"(flags), "S"(0l), "d"(0l)
                     : "rcx", "r11", "r10", "r8", "r9", "memory");
    return ret;
}

static int vfork_thread_dies(long arg)
{
    (void)arg;
    long r = clone_ud2(VFORK_THREAD, (long)(clone_stack + sizeof clone_stack));
    return r > 0 ? 50 : 10 + (int)(-r & 0x3f);
}

static void vfork_kill(void)
{
    int st = in_child_within(vfork_thread_dies, 0, 5000);
    check(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGILL,
          "a CLONE_VFORK | CLONE_THREAD child dying of SIGILL kills its waiting parent too",
          "status %#x (-1: still waiting after 5 s; exit 50: the parent went on; 10+e: errno e)",
          st);

    /* A parent in vfork whose child pauses: SIGKILL to the group ends both. */
    int p[2];
    CHECK(pipe(p) == 0, "a pipe");
    fflush(stdout);
    pid_t parent = fork();
    if (parent == 0) {
        setpgid(0, 0);
        (void)!write(p[1], "x", 1);
        long r = clone_pause(CLONE_VM | CLONE_VFORK | SIGCHLD);
        _exit(r > 0 ? 50 : 10 + (int)(-r & 0x3f));
    }
    setpgid(parent, parent);
    char c;
    CHECK(read(p[0], &c, 1) == 1, "the vfork parent is about to clone");
    sleep_ms(300);
    CHECK(kill(-parent, SIGKILL) == 0, "SIGKILL to its process group");
    st = -1;
    for (int t = 0; t <= 3000; t += 10) {
        if (waitpid(parent, &st, WNOHANG) == parent)
            break;
        st = -1;
        sleep_ms(10);
    }
    check(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
          "SIGKILL ends a parent waiting for a vfork child that never execs or exits",
          "status %#x (-1: still waiting after 3 s)", st);
    close(p[0]);
    close(p[1]);
}

/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*run)(void);
} CASES[] = {
    {"lengths", lengths},       {"settid", settid},
    {"pidfd", pidfd},           {"group_kill", group_kill},
    {"vfork_thread", vfork_thread}, {"vfork_kill", vfork_kill},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int ran = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (argc < 2 || strcmp(argv[1], CASES[i].name) == 0) {
            CASES[i].run();
            ran++;
        }
    if (!ran) {
        printf("FAIL no case named %s\n", argv[1]);
        return 2;
    }
    return finish();
}
