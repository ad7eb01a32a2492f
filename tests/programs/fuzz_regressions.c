/*
 * Crashes and hangs found by fuzz_syscalls.c, each minimized to a few calls, with Linux's
 * answer as the expectation. A kernel that still has the bug panics or hangs here (the runner
 * says so), rather than somewhere in a 30-second random run.
 *
 *   1. Lengths that wrap around the address space: mremap(addr, -4096, ...) made ktls take a
 *      range whose end is before its start (a panic in its mapping tree). Linux refuses all
 *      of these with EINVAL (munmap, madvise, mremap) or ENOMEM (mprotect, msync, mincore).
 *   2. clone(CLONE_VM | CLONE_VFORK | CLONE_THREAD | CLONE_SIGHAND): the parent waits until
 *      the child releases the memory, which a thread does by exiting; ktls waited forever (and
 *      neither exit_group nor SIGKILL ended the process). Run in a child under a watchdog, last.
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

static void wrapping_lengths(void)
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
        WRAP(raw_syscall3(SYS_mincore, a, len, a + PAGE), ENOMEM, "mincore");
#undef WRAP
        snprintf(what, sizeof what, "after the length %ld calls, the mapping is intact", len);
        check(a[0] == 1 && raw_syscall2(SYS_munmap, a, 4 * PAGE) == 0, what, "a[0] = %d",
              a[0]);
    }
}

static char clone_stack[16384] __attribute__((aligned(16)));

/* clone whose child exits at once (SYS_exit), touching no memory. */
static long clone_exit(long flags, long sp)
{
    long ret;
    register long r10 __asm__("r10") = 0;
    register long r8 __asm__("r8") = 0;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "a"((long)SYS_clone), "D"(flags), "S"(sp), "d"(0l), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

static long clone3_exit(struct clone_args *args)
{
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "a"(435l), "D"(args), "S"(sizeof *args)
                     : "rcx", "r11", "memory");
    return ret;
}

#define VFORK_THREAD (CLONE_VM | CLONE_VFORK | CLONE_THREAD | CLONE_SIGHAND)

static int vfork_thread_child(int use_clone3)
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
        r = clone_exit(VFORK_THREAD, (long)(clone_stack + sizeof clone_stack));
    }
    return r > 0 ? 0 : 10 + (int)(-r & 0x3f);
}

/* Runs the vfork-thread clone in a child; gives it 5 s. */
static int vfork_thread(int use_clone3)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(vfork_thread_child(use_clone3));
    for (int i = 0; i < 500; i++) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    return -1; /* hung; not waited for (a kernel with the bug cannot end it) */
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    wrapping_lengths();
    int st = vfork_thread(0);
    check(st == 0,
          "clone(CLONE_VM|CLONE_VFORK|CLONE_THREAD|CLONE_SIGHAND): the parent resumes when the "
          "child thread exits",
          st == -1 ? "the parent still waits after 5 s" : "child status %#x (10+e: errno e)", st);
    if (st != -1) {
        st = vfork_thread(1);
        check(st == 0, "clone3 with the same flags: the parent resumes when the child exits",
              st == -1 ? "the parent still waits after 5 s" : "child status %#x (10+e: errno e)",
              st);
    }
    return finish();
}
