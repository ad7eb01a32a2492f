/*
 * Isolation: user code cannot read, write or execute kernel memory, cannot map anything into the
 * kernel half (or the last page below it), cannot make the kernel write into kernel memory
 * through a pointer argument, and cannot write the vDSO or the vvar page before it.
 *
 * Direct accesses run in this process with a SIGSEGV handler that siglongjmps back; pointer
 * arguments go through raw syscalls and must give Linux's errno (EFAULT for buffers; ENOMEM or
 * EINVAL for the mm calls, exactly as Linux 6.x answers); calls whose kernel writes Linux
 * ignores (set_tid_address, CLONE_*_SETTID, the robust list) run in fork children that must
 * simply live and exit 0. Checks that depend on the host (a vDSO, the top user page being free)
 * are tagged "[opt]": the harness does not compare them between the native and the ktls run.
 */
#include "ktls_test.h"

#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

/* x86_64 Linux's TASK_SIZE_MAX: the first address user mappings may not reach. */
#define TASK_SIZE 0x7ffffffff000ul

struct addr {
    uintptr_t a;
    const char *name;
    int canonical;
};

static const struct addr kernel_addrs[] = {
    {0xffff800000000000ul, "the kernel half's first page (ktls's direct map)", 1},
    {0xffff888000000000ul, "Linux's direct map", 1},
    {0xffffffff80000000ul, "the kernel image base", 1},
    {0xffffffff80100000ul, "ktls's kernel text", 1},
    {0xffffffff81000000ul, "Linux's kernel text", 1},
    {0xfffffffffffff000ul, "the top page", 1},
    {0x7ffffffff000ul, "the last page below TASK_SIZE", 1},
    {0x0000800000000000ul, "the first non-canonical address", 0},
    {0x8000000000000000ul, "a non-canonical address", 0},
};
#define NADDRS (sizeof(kernel_addrs) / sizeof(kernel_addrs[0]))

static sigjmp_buf jump;
static volatile sig_atomic_t fault_sig;
static void *volatile fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fault_sig = sig;
    fault_addr = si->si_addr;
    siglongjmp(jump, 1);
}

enum access { READ, WRITE, EXEC };
static const char *const access_names[] = {"read", "write", "execute"};

/* Accesses addr; returns the signal that stopped it (0 if none). */
static int touch(enum access how, uintptr_t addr)
{
    fault_sig = 0;
    fault_addr = NULL;
    if (sigsetjmp(jump, 1) == 0) {
        switch (how) {
        case READ:
            (void)*(volatile uint8_t *)addr;
            break;
        case WRITE:
            *(volatile uint8_t *)addr = 0x5a;
            break;
        case EXEC:
            ((void (*)(void))addr)();
            break;
        }
    }
    return fault_sig;
}

static void direct_accesses(void)
{
    char what[160];
    for (size_t i = 0; i < NADDRS; i++) {
        const struct addr *k = &kernel_addrs[i];
        for (int how = READ; how <= EXEC; how++) {
            int sig = touch(how, k->a);
            snprintf(what, sizeof what, "%s %s (%#lx): SIGSEGV", access_names[how], k->name,
                     (unsigned long)k->a);
            check(sig == SIGSEGV, what, "signal %d", sig);
            if (sig == SIGSEGV && k->canonical) {
                snprintf(what, sizeof what, "%s %s: si_addr is the address", access_names[how],
                         k->name);
                check(fault_addr == (void *)k->a, what, "si_addr %p", fault_addr);
            }
        }
    }
}

/* The mm calls refuse every range that reaches the kernel half, with Linux's errno. */
static void mm_calls(void)
{
    char what[160];
    uintptr_t brk0 = (uintptr_t)raw_syscall1(SYS_brk, 0);
    for (size_t i = 0; i < NADDRS; i++) {
        const struct addr *k = &kernel_addrs[i];
        uintptr_t a = k->a;
#define MM(call, want, desc)                                                                   \
    do {                                                                                       \
        snprintf(what, sizeof what, "%s at %s", desc, k->name);                                \
        CHECK_ERR(call, want, what);                                                           \
    } while (0)
        MM(raw_syscall6(SYS_mmap, a, 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
           ENOMEM, "mmap MAP_FIXED");
        MM(raw_syscall6(SYS_mmap, a, 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
           ENOMEM, "mmap MAP_FIXED_NOREPLACE");
        MM(raw_syscall2(SYS_munmap, a, 4096), EINVAL, "munmap");
        MM(raw_syscall3(SYS_mprotect, a, 4096, PROT_READ), ENOMEM, "mprotect");
        /* madvise and mlock: EINVAL when the range wraps around, else ENOMEM (no mapping). */
        int wraps = a + 4096 < a;
        MM(raw_syscall3(SYS_madvise, a, 4096, MADV_DONTNEED), wraps ? EINVAL : ENOMEM,
           "madvise(MADV_DONTNEED)");
        /* msync and mlock change nothing but are refused the same way; a kernel that does not
         * implement them yet says ENOSYS (and names them in its log). */
        long r = raw_syscall3(SYS_msync, a, 4096, MS_ASYNC);
        snprintf(what, sizeof what, "msync at %s: ENOMEM (or ENOSYS)", k->name);
        check(r == -ENOMEM || r == -ENOSYS, what, "got %ld", r);
        r = raw_syscall2(SYS_mlock, a, 4096);
        snprintf(what, sizeof what, "mlock at %s: %s (or ENOSYS)", k->name,
                 wraps ? "EINVAL" : "ENOMEM");
        check(r == (wraps ? -EINVAL : -ENOMEM) || r == -ENOSYS, what, "got %ld", r);
        MM(raw_syscall6(SYS_mremap, a, 4096, 4096, MREMAP_MAYMOVE, 0, 0), EFAULT,
           "mremap from");

        /* A hint there is only a hint: the mapping lands in user space. */
        long h = raw_syscall6(SYS_mmap, a, 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        snprintf(what, sizeof what, "mmap with a hint at %s lands below TASK_SIZE", k->name);
        check(h > 0 && (uintptr_t)h + 4096 <= TASK_SIZE, what, "got %#lx", h);
        if (h > 0) {
            MM(raw_syscall6(SYS_mremap, h, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, a, 0),
               EINVAL, "mremap MREMAP_FIXED to");
            raw_syscall2(SYS_munmap, h, 4096);
        }
        snprintf(what, sizeof what, "brk to %s leaves the break alone", k->name);
        long b = raw_syscall1(SYS_brk, a);
        check((uintptr_t)b == brk0, what, "brk returned %#lx, break was %#lx", b,
              (unsigned long)brk0);
#undef MM
    }
    CHECK_ERR(raw_syscall6(SYS_mmap, 0x7fffffffd000ul, 0x4000, PROT_READ,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
              ENOMEM, "mmap MAP_FIXED straddling TASK_SIZE");
    CHECK_ERR(raw_syscall6(SYS_mmap, 0x10000, 0xfffffffffffff000ul, PROT_READ,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
              ENOMEM, "mmap MAP_FIXED with a length that wraps into the kernel half");
    CHECK_ERR(raw_syscall6(SYS_mmap, 0, 0xffff800000000000ul, PROT_READ,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              ENOMEM, "mmap of more than the user address space");
}

/* Pointer arguments into the kernel half give EFAULT and move no data. */
static void pointer_arguments(void)
{
    char what[160];
    int zero = open("/dev/zero", O_RDONLY);
    int p[2];
    CHECK(zero >= 0 && pipe2(p, O_NONBLOCK) == 0, "open /dev/zero and a pipe");
    for (size_t i = 0; i < NADDRS; i++) {
        const struct addr *k = &kernel_addrs[i];
        uintptr_t a = k->a;
#define PA(call, want, desc)                                                                   \
    do {                                                                                       \
        snprintf(what, sizeof what, "%s into %s", desc, k->name);                              \
        CHECK_ERR(call, want, what);                                                           \
    } while (0)
        PA(raw_syscall3(SYS_read, zero, a, 64), EFAULT, "read /dev/zero");
        /* Data waiting in a pipe stays there. */
        CHECK_RET(write(p[1], "0123456789abcdef", 16), 16, "fill the pipe");
        PA(raw_syscall3(SYS_read, p[0], a, 16), EFAULT, "read a pipe");
        int n = -1;
        ioctl(p[0], FIONREAD, &n);
        snprintf(what, sizeof what, "a failed pipe read into %s leaves the data", k->name);
        check(n == 16, what, "FIONREAD %d", n);
        char buf[32];
        CHECK_RET(read(p[0], buf, sizeof buf), 16, "drain the pipe");
        PA(raw_syscall3(SYS_write, p[1], a, 16), EFAULT, "write a pipe from");
        snprintf(what, sizeof what, "a failed pipe write from %s writes nothing", k->name);
        check(read(p[0], buf, sizeof buf) < 0 && errno == EAGAIN, what, "the pipe has data");
        struct iovec iov = {(void *)a, 16};
        PA(raw_syscall3(SYS_readv, zero, &iov, 1), EFAULT, "readv /dev/zero");
        PA(raw_syscall3(SYS_getrandom, a, 16, 0), EFAULT, "getrandom");
        PA(raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, a), EFAULT, "clock_gettime");
        PA(raw_syscall1(SYS_uname, a), EFAULT, "uname");
        PA(raw_syscall2(SYS_fstat, 1, a), EFAULT, "fstat");
        PA(raw_syscall2(SYS_pipe2, a, 0), EFAULT, "pipe2");
        PA(raw_syscall2(SYS_getcwd, a, 256), EFAULT, "getcwd");
        PA(raw_syscall4(SYS_rt_sigprocmask, SIG_BLOCK, 0, a, 8), EFAULT, "rt_sigprocmask");
        PA(raw_syscall4(SYS_rt_sigaction, SIGUSR1, 0, a, 8), EFAULT, "rt_sigaction (old)");
        PA(raw_syscall4(SYS_rt_sigaction, SIGUSR1, a, 0, 8), EFAULT, "rt_sigaction (new)");
        PA(raw_syscall2(SYS_sigaltstack, 0, a), EFAULT, "sigaltstack (old)");
        PA(raw_syscall4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, a), EFAULT, "prlimit64 (old)");
        PA(raw_syscall3(SYS_futex, a, FUTEX_WAKE, 1), EFAULT, "futex FUTEX_WAKE");
        struct timespec ts = {0, 1000};
        PA(raw_syscall4(SYS_futex, a, FUTEX_WAIT, 0, &ts), EFAULT, "futex FUTEX_WAIT");
        PA(raw_syscall4(SYS_openat, AT_FDCWD, a, O_RDONLY, 0), EFAULT, "openat path");
        PA(raw_syscall2(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, a), EFAULT,
           "arch_prctl(ARCH_GET_FS)");
#undef PA
        /* execve: path, argv, a string in argv, envp (the file exists and is executable), in
         * a child whose environment makes a wrongly started image exit 99 at once. */
        for (int v = 0; v < 4; v++) {
            static const char *const desc[] = {"path", "argv", "argv string", "envp"};
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                setenv("ISOLATION_EXEC_CHILD", "1", 1);
                extern char **environ;
                const char *strs[] = {(const char *)a, NULL};
                long r;
                switch (v) {
                case 0:
                    r = raw_syscall3(SYS_execve, a, 0, environ);
                    break;
                case 1:
                    r = raw_syscall3(SYS_execve, "/proc/self/exe", a, environ);
                    break;
                case 2:
                    r = raw_syscall3(SYS_execve, "/proc/self/exe", strs, environ);
                    break;
                default:
                    r = raw_syscall3(SYS_execve, "/proc/self/exe", 0, strs);
                    break;
                }
                _exit(r == -EFAULT ? 0 : 100 + (int)(-r & 0x3f));
            }
            int st = -1;
            waitpid(pid, &st, 0);
            snprintf(what, sizeof what, "execve with the %s at %s: EFAULT", desc[v], k->name);
            check(st == 0, what, "child status %#x (99: the exec happened, 100+e: errno e)", st);
        }
    }
    close(zero);
    close(p[0]);
    close(p[1]);
}

/*
 * A buffer that ends beyond TASK_SIZE: Linux refuses it up front (EFAULT, nothing written); a
 * short count that stops exactly at TASK_SIZE would keep isolation too. Needs the top mappable
 * page, which the host's stack may occupy: [opt].
 */
static void straddling_task_size(void)
{
    uintptr_t top = TASK_SIZE - 4096;
    long m = raw_syscall6(SYS_mmap, top, 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != (long)top) {
        printf("skip [opt] buffers straddling TASK_SIZE: the top page is taken (%ld)\n", m);
        if (m > 0)
            raw_syscall2(SYS_munmap, m, 4096);
        return;
    }
    memset((void *)top, 0xaa, 4096);
    int zero = open("/dev/zero", O_RDONLY);
    long r = raw_syscall3(SYS_read, zero, TASK_SIZE - 8, 64);
    check(r == -EFAULT || r == 8, "[opt] read /dev/zero into a buffer straddling TASK_SIZE",
          "got %ld", r);
    int p[2];
    pipe2(p, O_NONBLOCK);
    (void)!write(p[1], "0123456789abcdef0123456789abcdef", 32);
    r = raw_syscall3(SYS_read, p[0], TASK_SIZE - 8, 32);
    check(r == -EFAULT || r == 8, "[opt] read a pipe into a buffer straddling TASK_SIZE",
          "got %ld", r);
    r = raw_syscall3(SYS_write, p[1], TASK_SIZE - 8, 32);
    check(r == -EFAULT || r == 8 || r == -EAGAIN,
          "[opt] write a pipe from a buffer straddling TASK_SIZE", "got %ld", r);
    close(zero);
    close(p[0]);
    close(p[1]);
    raw_syscall2(SYS_munmap, top, 4096);
}

/* vDSO: readable, not writable; the vvar page before it is not writable either. [opt] */
static void vdso(void)
{
    uintptr_t v = getauxval(AT_SYSINFO_EHDR);
    if (!v) {
        printf("skip [opt] vDSO checks: no AT_SYSINFO_EHDR\n");
        return;
    }
    int sig = touch(READ, v);
    check(sig == 0 && memcmp((void *)v, "\177ELF", 4) == 0, "[opt] the vDSO is readable (ELF)",
          "signal %d", sig);
    sig = touch(WRITE, v);
    check(sig == SIGSEGV && fault_addr == (void *)v, "[opt] writing the vDSO text: SIGSEGV",
          "signal %d at %p", sig, fault_addr);
    sig = touch(WRITE, v + 0x200);
    check(sig == SIGSEGV, "[opt] writing inside the vDSO: SIGSEGV", "signal %d", sig);
    sig = touch(WRITE, v - 4096);
    check(sig == SIGSEGV, "[opt] writing the page before the vDSO (vvar): SIGSEGV", "signal %d",
          sig);
    int zero = open("/dev/zero", O_RDONLY);
    CHECK_ERR(raw_syscall3(SYS_read, zero, v, 16), EFAULT,
              "[opt] read(2) into the vDSO: EFAULT");
    CHECK_ERR(raw_syscall3(SYS_read, zero, v - 4096, 16), EFAULT,
              "[opt] read(2) into the vvar page: EFAULT");
    close(zero);
}

/* Runs fn in a fork child; returns its wait status. */
static int in_child(int (*fn)(uintptr_t), uintptr_t a)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(a));
    int st = -1;
    waitpid(pid, &st, 0);
    return st;
}

static int child_set_tid_address(uintptr_t a)
{
    raw_syscall1(SYS_set_tid_address, a);
    return 0;
}

static int child_robust_list(uintptr_t a)
{
    long r = raw_syscall2(SYS_set_robust_list, a, 24);
    return r == 0 ? 0 : 10;
}

/* A list head in user memory whose entries point into the kernel. */
static int child_robust_entries(uintptr_t a)
{
    static struct {
        uintptr_t next;
        long futex_offset;
        uintptr_t pending;
    } head;
    head.next = a;
    head.futex_offset = 0;
    head.pending = a;
    long r = raw_syscall2(SYS_set_robust_list, &head, sizeof head);
    return r == 0 ? 0 : 10;
}

/* fork-like clone with CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID at a. */
static int child_clone_settid(uintptr_t a)
{
    long pid = raw_syscall6(SYS_clone,
                            SIGCHLD | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID |
                                CLONE_CHILD_CLEARTID,
                            0, a, a, 0, 0);
    if (pid == 0)
        raw_syscall1(SYS_exit, 0);
    if (pid < 0)
        return 64 + (int)-pid; /* Linux ignores the failed writes: clone succeeds */
    int st;
    if (waitpid(pid, &st, 0) != pid || st != 0)
        return 11;
    return 0;
}

static void kernel_writes_ignored(void)
{
    char what[160];
    static const struct {
        int (*fn)(uintptr_t);
        const char *desc;
    } cases[] = {
        {child_set_tid_address, "set_tid_address"},
        {child_robust_list, "set_robust_list"},
        {child_robust_entries, "robust list entries"},
        {child_clone_settid, "clone CLONE_{PARENT,CHILD}_SETTID|CLONE_CHILD_CLEARTID"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t i = 0; i < NADDRS; i++) {
            int st = in_child(cases[c].fn, kernel_addrs[i].a);
            snprintf(what, sizeof what, "%s at %s: the child lives and exits 0", cases[c].desc,
                     kernel_addrs[i].name);
            check(st == 0, what, "status %#x (exit 64+e: clone failed with errno e)", st);
        }
}

int main(void)
{
    if (getenv("ISOLATION_EXEC_CHILD"))
        _exit(99);
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    direct_accesses();
    mm_calls();
    pointer_arguments();
    straddling_task_size();
    vdso();
    kernel_writes_ignored();

    /* Still alive, and the kernel still works. */
    int p[2];
    char buf[4] = {0};
    CHECK(pipe(p) == 0 && write(p[1], "live", 4) == 4 && read(p[0], buf, 4) == 4 &&
              memcmp(buf, "live", 4) == 0,
          "the kernel still moves data afterwards");
    return finish();
}
