/*
 * Isolation through rseq and KTLS: a registration whose area lies in the kernel half, straddles
 * TASK_SIZE, or sits on a read-only or PROT_NONE page is refused with EFAULT, and so is a
 * clone3(CLONE_RSEQ_KTLS) whose child area would lie there (no child is created). An area that
 * becomes unwritable after registration costs the thread a SIGSEGV at the kernel's next write,
 * never a kernel fault. A fork child's area is its own copy: the kernel's writes for the child
 * leave the parent's area alone.
 *
 * Linux differences, accepted only where no KTLS is advertised (AT_KTLS_FEATURE_SIZE absent):
 * Linux before 7.0 accepts an rseq registration on a read-only page and kills the thread with
 * SIGSEGV on the way back to user space; Linux rejects RSEQ_FLAG_KTLS and CLONE_RSEQ_KTLS with
 * EINVAL. With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0 (the harness does).
 */
#include "ktls_test.h"
#include "child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYS_RSEQ 334
#define SYS_CLONE3 435
#define RSEQ_SIG 0x53053053u
#define RSEQ_FLAG_KTLS 0x10000u
#define CLONE_RSEQ_KTLS 0x10000000000ull
#define AT_KTLS_FEATURE_SIZE 0x4b544c01
#define TASK_SIZE 0x7ffffffff000ul
#define KTLS_LEN 128
#define PAGE 4096

static int have_ktls;

static long sys_rseq(uintptr_t area, uint32_t len, uint32_t flags, uint32_t sig)
{
    return raw_syscall4(SYS_RSEQ, area, len, flags, sig);
}

static uintptr_t fs_base(void)
{
    uintptr_t fs;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(fs));
    return fs;
}

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

/* clone3 whose child (if one is wrongly created) exits at once without touching memory. */
static long clone3_exit(struct clone_args *args)
{
    long ret;
    __asm__ volatile("syscall\n"
                     "test %%rax, %%rax\n"
                     "jnz 1f\n"
                     "mov $60, %%eax\n"
                     "xor %%edi, %%edi\n"
                     "syscall\n"
                     "1:\n"
                     : "=a"(ret)
                     : "a"((long)SYS_CLONE3), "D"(args), "S"(sizeof *args)
                     : "rcx", "r11", "memory");
    return ret;
}

/* A syscall result as an exit status: 0 for EFAULT, 1 for success, 100+errno otherwise. */
static int efault_status(long r)
{
    if (r == -EFAULT)
        return 0;
    if (r == 0)
        return 1;
    return 100 + (int)(-r & 0x7f);
}

enum place {
    KERNEL_HALF,
    KERNEL_TEXT,
    NONCANONICAL,
    ABOVE_USER,
    STRADDLE,
    RO_PAGE,
    NONE_PAGE
};
static const char *const place_names[] = {
    [KERNEL_HALF] = "in the kernel half (0xffff800000000000)",
    [KERNEL_TEXT] = "in the kernel text (0xffffffff80100000)",
    [NONCANONICAL] = "at a non-canonical address",
    [ABOVE_USER] = "at 0x800000000000 (the first non-canonical address)",
    [STRADDLE] = "straddling TASK_SIZE",
    [RO_PAGE] = "on a read-only page",
    [NONE_PAGE] = "on a PROT_NONE page",
};
#define NPLACES 7
static uint8_t *ro_page, *none_page;

/* An address for an area of `len` bytes with alignment `align` at `p`. */
static uintptr_t place_addr(enum place p, uint32_t len)
{
    switch (p) {
    case KERNEL_HALF:
        return 0xffff800000000000ul;
    case KERNEL_TEXT:
        return 0xffffffff80100000ul;
    case NONCANONICAL:
        return 0x8000000000000000ul;
    case ABOVE_USER:
        return 0x800000000000ul;
    case STRADDLE:
        return TASK_SIZE - len / 2;
    case RO_PAGE:
        return (uintptr_t)ro_page + 256;
    case NONE_PAGE:
        return (uintptr_t)none_page + 256;
    }
    return 0;
}

static int rseq_child(long p)
{
    return efault_status(sys_rseq(place_addr(p, 32), 32, 0, RSEQ_SIG));
}

static int ktls_child(long p)
{
    return efault_status(sys_rseq(place_addr(p, KTLS_LEN), KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG));
}

static void refused_registrations(void)
{
    char what[160];
    for (int p = 0; p < NPLACES; p++) {
        if (p == STRADDLE)
            continue; /* a 32-byte area aligned to 32 cannot straddle a page */
        int st = in_child(rseq_child, p);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!have_ktls && p == RO_PAGE && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
            ok = 1; /* Linux before 7.0 */
        snprintf(what, sizeof what, "rseq registration %s: EFAULT", place_names[p]);
        check(ok, what, "child %s (exit 1: registered, 100+e: errno e)", status_text(st));
    }
    for (int p = 0; p < NPLACES; p++) {
        int st = in_child(ktls_child, p);
        int want = have_ktls ? 0 : 100 + EINVAL;
        snprintf(what, sizeof what, "KTLS registration %s: EFAULT (without KTLS: EINVAL)",
                 place_names[p]);
        check(WIFEXITED(st) && WEXITSTATUS(st) == want, what,
              "child %s (exit 1: registered, 100+e: errno e)", status_text(st));
    }
}

/* The KTLS area of the main thread: FS base + offset, the offset fixed by the first call. */
static __thread uint8_t tls_area[KTLS_LEN] __attribute__((aligned(64)));

static long register_tls_area(void)
{
    return sys_rseq((uintptr_t)tls_area, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
}

/*
 * clone3(CLONE_RSEQ_KTLS) whose child area would land at a place. The process's offset
 * (area - FS base) is fixed by its first KTLS registration; three set-ups:
 *   0: the area in our TLS block (a small offset): only a tls in the kernel half reaches the
 *      kernel-half places, and Linux's CLONE_SETTLS rule refuses such a tls with EPERM first;
 *   1: FS base moved to a low page of ours and the area on a high page (offset near 2^47): an
 *      ordinary user tls puts the child's area beyond TASK_SIZE, on a read-only page, ...;
 *   2: FS base on a high page and the area on a low one (offset near -2^47): tls + offset
 *      wraps below 0 into the kernel half.
 * The child runs raw syscalls only while its FS base is not libc's.
 */
#define LOW_FS 0x10000000ul
#define LOW_AREA 0x20000000ul

static int clone3_child(long arg)
{
    int p = arg & 0xff, mode = arg >> 8;
    uintptr_t area, fs = 0, old_fs = fs_base();
    if (mode == 0) {
        area = (uintptr_t)tls_area;
    } else {
        uint8_t *hi = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint8_t *lo = mmap((void *)(mode == 1 ? LOW_FS : LOW_AREA), PAGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (hi == MAP_FAILED || lo == MAP_FAILED || (uintptr_t)hi < (1ul << 46))
            return 87;
        fs = mode == 1 ? (uintptr_t)lo : (uintptr_t)hi;
        area = mode == 1 ? (uintptr_t)hi : (uintptr_t)lo;
        *(uintptr_t *)fs = fs; /* a TCB's self pointer */
        if (raw_syscall2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, fs) != 0)
            return 88;
    }
    long r = sys_rseq(area, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
    int status;
    if (have_ktls && r != 0) {
        status = 90;
    } else {
        intptr_t offset = (intptr_t)area - (intptr_t)fs_base();
        static uint8_t stack[16384] __attribute__((aligned(16)));
        struct clone_args a;
        for (size_t i = 0; i < sizeof a / 8; i++)
            ((uint64_t *)&a)[i] = 0;
        a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                  CLONE_SYSVSEM | CLONE_SETTLS | CLONE_RSEQ_KTLS;
        a.stack = (uintptr_t)stack;
        a.stack_size = sizeof stack;
        if (mode == 2)
            a.tls = 0x10000; /* + offset wraps below 0 */
        else
            a.tls = place_addr(p, KTLS_LEN) - offset;
        if (mode != 0 && (a.tls == 0 || a.tls >= TASK_SIZE)) {
            status = 89;
        } else {
            long c = clone3_exit(&a);
            if (c == -EPERM && mode == 0)
                status = 0; /* tls in the kernel half: Linux's CLONE_SETTLS rule */
            else
                status = efault_status(c);
        }
    }
    if (mode != 0)
        raw_syscall2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, old_fs);
    return status;
}

static void refused_clones(void)
{
    static const char *const setups[] = {"the TLS-block offset", "an offset near 2^47",
                                         "an offset near -2^47"};
    char what[240];
    for (int mode = 0; mode < 3; mode++)
        for (int p = 0; p < NPLACES; p++) {
            int kernel = p == KERNEL_HALF || p == KERNEL_TEXT || p == NONCANONICAL;
            if ((mode == 0 && !kernel) || (mode == 1 && (kernel || p == NONCANONICAL)) ||
                (mode == 2 && p != KERNEL_HALF))
                continue;
            int st = in_child(clone3_child, p | mode << 8);
            int want = have_ktls ? 0 : 100 + EINVAL;
            snprintf(what, sizeof what,
                     "clone3(CLONE_RSEQ_KTLS) with the child's area %s, with %s: %s, no child "
                     "(without KTLS: EINVAL)",
                     mode == 2 ? "wrapping below 0 into the kernel half" : place_names[p],
                     setups[mode], mode == 0 ? "EPERM for the tls, or EFAULT" : "EFAULT");
            check(WIFEXITED(st) && WEXITSTATUS(st) == want, what,
                  "child %s (exit 1: a thread was created, 87-90: set-up failed, "
                  "100+e: errno e)",
                  status_text(st));
        }
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* The first two CPUs we may run on, or -1. */
static int two_cpus(int cpus[2])
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n == 2 ? 0 : -1;
}

/*
 * Register on a page of our own, then take the page away (read-only or unmapped) and make the
 * kernel write the area: for rseq by migrating between two CPUs (the kernel must then store
 * the new cpu_id), for KTLS by changing a credential (stored in every live area); signals in
 * between make the kernel read rseq_cs too. The thread must die of SIGSEGV.
 */
static int unwritable_child(long how)
{
    int ktls = how >= 2, unmap = how % 2;
    uint8_t *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 91;
    long r = ktls ? sys_rseq((uintptr_t)page, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG)
                  : sys_rseq((uintptr_t)page, 32, 0, RSEQ_SIG);
    if (r != 0)
        return 92;
    if (unmap)
        munmap(page, PAGE);
    else
        mprotect(page, PAGE, PROT_READ);
    signal(SIGUSR1, on_usr1);
    int cpus[2];
    int migrate = two_cpus(cpus) == 0;
    uid_t euid = geteuid();
    for (int i = 0; i < 40; i++) {
        if (ktls) {
            /* A real change: root can take any euid and take 0 back. */
            raw_syscall3(SYS_setresuid, -1, euid == 0 ? (i % 2 ? 0 : 1) : euid, -1);
        } else if (migrate) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpus[i % 2], &set);
            sched_setaffinity(0, sizeof set, &set);
        }
        raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), SIGUSR1);
        sched_yield();
    }
    return 93;
}

static void unwritable_after_registration(void)
{
    static const char *const names[] = {
        "an rseq area made read-only after registration: SIGSEGV at the next cpu_id store",
        "an rseq area unmapped after registration: SIGSEGV",
        "a KTLS area made read-only after registration: SIGSEGV at the next credential store",
        "a KTLS area unmapped after registration: SIGSEGV",
    };
    int cpus[2];
    for (int how = 0; how < 4; how++) {
        if (how >= 2 && !have_ktls)
            continue;
        if (how == 0 && two_cpus(cpus) != 0) {
            printf("skip [opt] %s: one CPU, so no cpu_id store is due\n", names[how]);
            continue;
        }
        int st = in_child(unwritable_child, how);
        char what[160];
        snprintf(what, sizeof what, "%s%s", how >= 2 ? "[opt] " : "", names[how]);
        check(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, what,
              "child %s (92: registration failed, 93: no SIGSEGV)", status_text(st));
    }
}

/* A registration on a read-only MAP_SHARED file mapping is refused and the file is untouched. */
static char file_path[] = "/tmp/isolation_rseq_XXXXXX";

static int file_child(long ktls)
{
    int fd = open(file_path, O_RDONLY);
    uint8_t *m = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (fd < 0 || m == MAP_FAILED)
        return 91;
    long r = ktls ? sys_rseq((uintptr_t)m + 256, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG)
                  : sys_rseq((uintptr_t)m + 256, 32, 0, RSEQ_SIG);
    return efault_status(r);
}

static void file_mapping(void)
{
    int fd = mkstemp(file_path);
    uint8_t buf[PAGE];
    memset(buf, 0x5c, sizeof buf);
    CHECK(fd >= 0 && write(fd, buf, sizeof buf) == PAGE, "write a one-page file in /tmp");
    for (int ktls = 0; ktls < 2; ktls++) {
        int st = in_child(file_child, ktls);
        int ok;
        if (ktls)
            ok = WIFEXITED(st) && WEXITSTATUS(st) == (have_ktls ? 0 : 100 + EINVAL);
        else
            ok = (WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
                 (!have_ktls && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
        check(ok,
              ktls ? "KTLS registration on a read-only shared file mapping: EFAULT "
                     "(without KTLS: EINVAL)"
                   : "rseq registration on a read-only shared file mapping: EFAULT",
              "child %s", status_text(st));
        uint8_t back[PAGE];
        memset(back, 0, sizeof back);
        check(pread(fd, back, sizeof back, 0) == PAGE && memcmp(back, buf, PAGE) == 0,
              ktls ? "the file is untouched after the KTLS attempt"
                   : "the file is untouched after the rseq attempt",
              "the file changed");
    }
    close(fd);
    unlink(file_path);
}

/* The kernel's writes for a fork child go to the child's copy of the area. */
static int fork_area_child(long unused)
{
    (void)unused;
    if (register_tls_area() != 0)
        return 94;
    volatile uint32_t *tid = (volatile uint32_t *)(tls_area + 68);
    volatile uint32_t *pid = (volatile uint32_t *)(tls_area + 72);
    uint32_t me = (uint32_t)raw_syscall0(SYS_gettid);
    if (*tid != me || *pid != me)
        return 95;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        _exit(*tid == (uint32_t)raw_syscall0(SYS_gettid) && *tid != me ? 0 : 1);
    int st;
    waitpid(child, &st, 0);
    if (st != 0)
        return 96;
    if (*tid != me || *pid != me)
        return 97;
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    have_ktls = getauxval(AT_KTLS_FEATURE_SIZE) != 0;
    ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none_page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro_page != MAP_FAILED && none_page != MAP_FAILED, "map a read-only and a PROT_NONE page");

    /* The process must not be registered yet (glibc's own rseq is off): a registration of our
     * own succeeds, and goes again. */
    static uint8_t probe[32] __attribute__((aligned(32)));
    long r = sys_rseq((uintptr_t)probe, 32, 0, RSEQ_SIG);
    CHECK(r == 0 && sys_rseq((uintptr_t)probe, 32, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG) == 0,
          "no rseq registration at start (with glibc: GLIBC_TUNABLES=glibc.pthread.rseq=0)");

    refused_registrations();
    refused_clones();
    unwritable_after_registration();
    file_mapping();

    if (have_ktls) {
        int st = in_child(fork_area_child, 0);
        check(st == 0,
              "[opt] a fork child's KTLS area is its own copy: the parent's tid and pid stay",
              "child %s", status_text(st));
    }
    /* A failed registration fixed nothing: the real one still works here (KTLS only). */
    r = register_tls_area();
    const char *what = "after the refusals, a valid KTLS registration succeeds "
                       "(without KTLS: EINVAL)";
    if (have_ktls)
        CHECK_RET(r, 0, what);
    else
        CHECK_ERR(r, EINVAL, what);
    return finish();
}
