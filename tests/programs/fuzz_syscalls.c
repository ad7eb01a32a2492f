/*
 * A syscall fuzzer: `fuzz_syscalls SECONDS SEED THREADS`.
 *
 * Nothing user space does may crash the kernel or reach what is not its own. For SECONDS, THREADS
 * threads make random system calls with random and edge-case arguments (bad and kernel pointers,
 * read-only, PROT_NONE and unmapped memory, huge and negative lengths, bad and closed fds, random
 * flags, rseq/KTLS registrations, clone3 structs of every size, memory-map changes, signals to
 * themselves), while the main thread keeps two "chaos" children alive, forked processes that do
 * the same with no holds barred (their own memory, garbage sigreturn frames, exit) and are
 * killed after a second. At the end it prints a summary and exits 0.
 *
 * Structure:
 *   supervisor (main): prints "seed N", reads /proc/meminfo, forks the fuzz process, waits for
 *     it (killing it if it overruns by more than HANG_GRACE_S), kills and reaps every process
 *     left in its process group, removes its private directory, reads /proc/meminfo again and
 *     prints both ("info memfree before|after KiB", "info heapused ...") and the summary.
 *   fuzz process: the threads and the chaos children; its stdout is /dev/null while it fuzzes
 *     (it keeps the real one at SAVED_FD for its summary and any failure report).
 *
 * It must not end early, hang or hurt the host when run natively (also as root), so the threads
 * of the fuzz process obey rules the chaos children do not all follow:
 *   - never exit/exit_group, pause, rt_sigsuspend, rt_sigreturn, set_tid_address, a blocking
 *     wait, a sleep or timeout longer than a few milliseconds (timeouts come from a private
 *     buffer no other call writes), nor a read that can block (every pipe, socket, eventfd,
 *     timerfd, signalfd and inotify fd is O_NONBLOCK and stays so);
 *   - memory calls touch only the ARENA (or bad addresses), never live memory; pointers given to
 *     the kernel point into SCRATCH (garbage anyone may overwrite), or are bad on purpose;
 *   - signals sent to ourselves are the FUZZ_SIGS, which always have a handler (or SIG_IGN);
 *     exit signals of clone children are 0, SIGCHLD or a FUZZ_SIG; clone children exit at once
 *     (assembly, no stack, all signals blocked) and never get CLONE_PARENT;
 *   - paths: only relative names inside the private directory (mutating calls) or a list of
 *     harmless absolute files opened read-only; no syscall that changes the host (mount,
 *     reboot, time, hostname, swap, modules, keys, ptrace, iopl, mknod of devices, SysV IPC,
 *     fanotify, real-time scheduling, kill of pid -1 or of anything but ourselves...);
 *   - the saved stdout and the private directory's fd are never named as an fd argument.
 * Each thread's call sequence is a function of SEED and its index (thread interleaving is not).
 */
#define _GNU_SOURCE
#include "meminfo.h"
#include "raw_syscall.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define SAVED_FD 990
#define DIR_FD 991
#define MAX_THREADS 16
#define CHAOS_ALIVE 2
#define CHAOS_LIFETIME_MS 1000
#define HANG_GRACE_S 20
#define STUCK_S 10
#define PAGE 4096ul
#define SCRATCH_SIZE (64 * 1024ul)
#define ARENA_SIZE (16ul << 20)
#define CLONE_STACK_SIZE (16 * 1024ul)
#define ALTSTACK_SIZE (64 * 1024ul)
#define RSEQ_SIG 0x53053053u
#define RSEQ_FLAG_KTLS 0x10000u
#define CLONE_RSEQ_KTLS 0x10000000000ull
#define AT_KTLS_FEATURE_SIZE 0x4b544c01
#define TASK_SIZE 0x7ffffffff000ul

static int is_err(long r)
{
    return r < 0 && r > -4096;
}

/* ------------------------------------------------------------------------------------------ */
/* Randomness. */

struct rng {
    uint64_t s;
};

static uint64_t next(struct rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
    return n ? next(r) % n : 0;
}

static int chance(struct rng *r, unsigned percent)
{
    return below(r, 100) < percent;
}

#define PICK(r, arr) ((arr)[below((r), sizeof(arr) / sizeof((arr)[0]))])

/* ------------------------------------------------------------------------------------------ */
/* Shared state of the fuzz process. */

static uint8_t *scratch;   /* SCRATCH_SIZE bytes of garbage between two PROT_NONE guards */
static uint8_t *ro_page;   /* read-only, holds some names */
static uint8_t *none_page; /* PROT_NONE */
static uint8_t *arena;     /* ARENA_SIZE: the only place memory calls may change */
static char priv_dir[128];
static pid_t fuzz_pid;
static volatile int stop;
static volatile int fuzz_failed;
/* FUZZ_TRACE=1 (environment): every call of the fuzz threads is printed before it is made. */
static int trace;
/* FUZZ_CALLS=N (environment): each thread stops after N calls (to bisect a finding: with one
 * thread and no chaos children, a seed gives the same N calls every time). */
static long max_calls = -1;
/* FUZZ_CHAOS=0 (environment): no chaos children (to bisect a finding). */
static int chaos_alive = CHAOS_ALIVE;
static int have_ktls;
/* The break when the threads started: libc's heap lies below; we only ever go above. */
static uintptr_t brk_floor;
static volatile int go;
static int nthreads;
static pid_t thread_tids[MAX_THREADS];

static volatile sig_atomic_t signals_handled;

static const int FUZZ_SIGS[] = {SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO,
                                SIGURG,  SIGWINCH, SIGCHLD, 36,       37,      38,
                                39,      40};

static int is_fuzz_sig(long s)
{
    for (size_t i = 0; i < sizeof FUZZ_SIGS / sizeof FUZZ_SIGS[0]; i++)
        if (FUZZ_SIGS[i] == s)
            return 1;
    return 0;
}

static void on_fuzz_signal(int sig)
{
    (void)sig;
    signals_handled++;
}

/* The restorer our own rt_sigaction calls install (libc's is not ours to name). */
__asm__(".text\n"
        ".globl fuzz_restorer\n"
        "fuzz_restorer:\n"
        "  mov $15, %eax\n"
        "  syscall\n"
        "  ud2\n");
void fuzz_restorer(void);

struct k_sigaction {
    uintptr_t handler;
    unsigned long flags;
    uintptr_t restorer;
    uint64_t mask;
};

/* Per-thread state. */
struct slot {
    volatile long calls, errors, efaults, enosys;
    long slowest_ns, slowest_nr, slowest_args[6];
    volatile long nr;
    volatile long args[6];
    volatile int done;
};
static struct slot slots[MAX_THREADS + 1];

struct ctx {
    struct rng r;
    int chaos;
    int index;
    struct slot *slot;
    int fds[16];
    unsigned nfds;
    struct {
        uintptr_t addr;
        size_t len;
    } ring[16];
    unsigned nring;
    int timers[8];
    unsigned ntimers;
    uint8_t *priv;        /* PAGE bytes of structs only this thread writes */
    uint8_t *clone_stack; /* CLONE_STACK_SIZE */
    uint8_t *altstack;    /* ALTSTACK_SIZE */
};

/* A KTLS/rseq area in every thread's TLS block (KTLS registrations must be FS base + offset). */
static __thread uint8_t tls_area[128] __attribute__((aligned(64)));
/* The KTLS area of this thread's CLONE_RSEQ_KTLS children: in the TLS block too, so that only
 * the kernel writes it (an area in scratch would get a garbage rseq_cs from other calls, and
 * the kernel rightly kills the process at the child's first return to user space). */
static __thread uint8_t child_ktls_area[128] __attribute__((aligned(64)));

/* The FS base that puts a KTLS child's area (FS base + the process's offset, which our own
 * registration of tls_area fixed) on child_ktls_area. */
static uintptr_t child_ktls_tls(void)
{
    uintptr_t fs;
    __asm__("mov %%fs:0, %0" : "=r"(fs));
    return fs + (uintptr_t)(child_ktls_area - tls_area);
}

/* ------------------------------------------------------------------------------------------ */
/* Argument generators. */

static const uintptr_t BAD_PTRS[] = {
    0,
    1,
    0xfff,
    0xffff800000000000ul,
    0xffff800000001000ul,
    0xffff888000000000ul,
    0xffffffff80000000ul,
    0xffffffff80100000ul,
    0xffffffff81000000ul,
    0xfffffffffffff000ul,
    0xffffffffffffffffull,
    0x800000000000ul,
    0x8000000000000000ul,
    0x7ffffffff000ul,
    0x7ffffffff000ul - 8,
    0x7fffffffffffull,
    0x10000,
    0x400000 - 4096,
};

/* Pointers nothing can read: for structs whose contents we must control (actions, timeouts,
 * clone arguments, stacks), where "bad" must never mean "garbage the kernel accepts". */
static uintptr_t unreadable(struct ctx *c)
{
    static const uintptr_t NONE[] = {0x1, 0xfff, 0xffff800000000000ul, 0xffffffff80100000ul,
                                     0xfffffffffffff000ul, 0x800000000000ul,
                                     0x8000000000000000ul};
    if (chance(&c->r, 20))
        return (uintptr_t)none_page + below(&c->r, PAGE - 64);
    return PICK(&c->r, NONE);
}

static uintptr_t bad_ptr(struct ctx *c)
{
    switch (below(&c->r, 6)) {
    case 0:
        return (uintptr_t)ro_page + below(&c->r, PAGE);
    case 1:
        return (uintptr_t)none_page + below(&c->r, PAGE);
    case 2:
        return (uintptr_t)arena + below(&c->r, ARENA_SIZE); /* mostly PROT_NONE or unmapped */
    case 3:
        return (uintptr_t)scratch + SCRATCH_SIZE - below(&c->r, 64); /* runs into the guard */
    case 4:
        return next(&c->r);
    default:
        return PICK(&c->r, BAD_PTRS);
    }
}

/* A buffer the kernel may write: scratch, or something bad. Chaos children: anything. */
static uintptr_t buf_ptr(struct ctx *c)
{
    if (c->chaos && chance(&c->r, 15)) {
        static int global;
        int local;
        switch (below(&c->r, 4)) {
        case 0:
            return (uintptr_t)&global;
        case 1:
            return (uintptr_t)&local - below(&c->r, 8192);
        case 2:
            return (uintptr_t)&buf_ptr + below(&c->r, 4096);
        default:
            return (uintptr_t)c->priv + below(&c->r, PAGE);
        }
    }
    if (chance(&c->r, 70))
        return (uintptr_t)scratch + below(&c->r, SCRATCH_SIZE - 256);
    return bad_ptr(c);
}

static long length(struct ctx *c)
{
    static const long EDGE[] = {0,
                                1,
                                -1,
                                -4096,
                                0x7fffffff,
                                0x80000000l,
                                0xffffffffl,
                                1l << 31,
                                1l << 40,
                                1l << 62,
                                (long)0x8000000000000000ul,
                                4095,
                                4097,
                                65536};
    switch (below(&c->r, 5)) {
    case 0:
        return PICK(&c->r, EDGE);
    case 1:
        return below(&c->r, 64);
    case 2:
        return below(&c->r, 4096);
    case 3:
        return below(&c->r, SCRATCH_SIZE);
    default:
        return (long)next(&c->r);
    }
}

static long small_int(struct ctx *c)
{
    static const long EDGE[] = {0, 1, 2, -1, -2, 0x7fffffff, (long)0x80000000u, -0x80000000l,
                                255, 256, 1024, 65535};
    if (chance(&c->r, 50))
        return (long)below(&c->r, 70) - 2;
    if (chance(&c->r, 50))
        return PICK(&c->r, EDGE);
    return (long)next(&c->r);
}

static long flags(struct ctx *c)
{
    switch (below(&c->r, 5)) {
    case 0:
        return 0;
    case 1:
        return 1l << below(&c->r, 32);
    case 2:
        return (long)(next(&c->r) & 0xffffffff);
    case 3:
        return (long)(next(&c->r) & next(&c->r) & 0xffffffff);
    default:
        return (long)next(&c->r);
    }
}

static long fd_arg(struct ctx *c)
{
    switch (below(&c->r, 8)) {
    case 0:
    case 1:
    case 2:
        if (c->nfds)
            return c->fds[below(&c->r, c->nfds < 16 ? c->nfds : 16)];
        return below(&c->r, 20);
    case 3:
        return below(&c->r, 64);
    case 4:
        return PICK(&c->r, ((const long[]){-1, -100 /* AT_FDCWD */, 1 << 30, 0x7fffffff,
                                            -0x80000000l, 1023, 1024, 4096}));
    case 5:
        return below(&c->r, 3);
    default:
        return (long)(int)next(&c->r);
    }
}

static long dirfd_arg(struct ctx *c)
{
    if (chance(&c->r, 60))
        return AT_FDCWD;
    return fd_arg(c);
}

static void remember_fd(struct ctx *c, long fd)
{
    if (fd >= 0 && fd < SAVED_FD)
        c->fds[c->nfds++ % 16] = (int)fd;
}

/* Names in the private directory (the cwd), for calls that create, change or remove. */
static const char *priv_name(struct ctx *c)
{
    static const char *const NAMES[] = {"f0", "f1", "f2", "f3", "f4", "d0", "d0/f1", "d0/d1",
                                        "d0/d1/f2", "l0", "l1", "s0", "",   ".",  "nonexistent/x",
                                        "f0/x", "d0/", "f1/"};
    static char long_name[300], very_long[4200];
    if (!long_name[0]) {
        memset(long_name, 'n', sizeof long_name - 1);
        memset(very_long, 'p', sizeof very_long - 1);
        for (size_t i = 8; i < sizeof very_long - 1; i += 9)
            very_long[i] = '/';
    }
    switch (below(&c->r, 12)) {
    case 0:
        return long_name + below(&c->r, 60); /* 239..299 characters */
    case 1:
        return very_long;
    default:
        return PICK(&c->r, NAMES);
    }
}

static uintptr_t priv_path(struct ctx *c)
{
    /* Never garbage: random bytes could spell an absolute path on the host. */
    if (chance(&c->r, 8))
        return unreadable(c);
    if (chance(&c->r, 3))
        return (uintptr_t)ro_page + PAGE - 3; /* "abc" running into the end of the page */
    return (uintptr_t)priv_name(c);
}

/* Harmless absolute paths, for calls that only look (opened read-only). */
static uintptr_t ro_path(struct ctx *c)
{
    static const char *const PATHS[] = {
        "/proc/self/maps", "/proc/self/status", "/proc/meminfo", "/proc/self/exe", "/dev/null",
        "/dev/zero",       "/dev/urandom",      "/nonexistent/x", "/proc/self/stat",
        "/proc/self/cmdline"};
    if (chance(&c->r, 40))
        return priv_path(c);
    return (uintptr_t)PICK(&c->r, PATHS);
}

/* A timespec that is short (at most 2 ms) or invalid, in this thread's private buffer. */
static uintptr_t timeout_ptr(struct ctx *c, int slot)
{
    struct timespec *ts = (struct timespec *)(c->priv + 64 + 16 * slot);
    if (chance(&c->r, 10))
        return unreadable(c);
    ts->tv_sec = 0;
    ts->tv_nsec = (long)below(&c->r, 2000000);
    if (chance(&c->r, 10))
        ts->tv_nsec = PICK(&c->r, ((const long[]){-1, 1000000000, 0x7fffffffffffffffl}));
    if (chance(&c->r, 5))
        ts->tv_sec = -1;
    return (uintptr_t)ts;
}

static long fuzz_sig(struct ctx *c)
{
    return PICK(&c->r, FUZZ_SIGS);
}

/* A signal number for a signal to ourselves: handled, or not a valid signal at all. */
static long self_sig(struct ctx *c)
{
    if (chance(&c->r, 85))
        return fuzz_sig(c);
    return PICK(&c->r, ((const long[]){0, 65, 1000, -1, 0x7fffffff}));
}

/* A pid that is ourselves, one of our threads, or nobody. */
static long self_pid(struct ctx *c)
{
    switch (below(&c->r, 6)) {
    case 0:
        return 0;
    case 1:
        return fuzz_pid;
    case 2:
        return thread_tids[below(&c->r, nthreads)];
    case 3:
        return 0x3fffffff; /* above any pid_max */
    case 4:
        return -fuzz_pid; /* our process group */
    default:
        return (long)raw_syscall0(SYS_gettid);
    }
}

/* An address for the memory calls: in the arena (aligned or not), or one no mapping of ours
 * can be at (never a bad_ptr(): munmap(ro_page, 64 pages) would take live memory with it). */
static uintptr_t arena_addr(struct ctx *c)
{
    /* Never 0 or anything low and aligned: munmap(0, 1 << 40) is valid and takes all. */
    static const uintptr_t NOWHERE[] = {0x1,
                                        0xfff,
                                        0x1001,
                                        0xffff800000000000ul,
                                        0xffffffff80100000ul,
                                        0xfffffffffffff000ul,
                                        0x7ffffffff000ul,
                                        0x800000000000ul,
                                        0x8000000000000000ul};
    if (chance(&c->r, 85)) {
        uintptr_t a = (uintptr_t)arena + below(&c->r, ARENA_SIZE / PAGE) * PAGE;
        if (chance(&c->r, 5))
            a += below(&c->r, PAGE);
        return a;
    }
    return PICK(&c->r, NOWHERE);
}

/* A range that starts in the arena ends in it too, unless the kernel must refuse it anyway
 * (it wraps around): munmap(arena + x, 1 << 40) would take everything above with it. */
static long fit(uintptr_t addr, long len)
{
    uintptr_t end = (uintptr_t)arena + ARENA_SIZE;
    if (addr < (uintptr_t)arena || addr >= end)
        return len;
    if (addr + (uintptr_t)len < addr)
        return len;
    if (addr + (uintptr_t)len > end)
        return (long)(end - addr);
    return len;
}

static long map_length(struct ctx *c)
{
    if (chance(&c->r, 70))
        return (long)(below(&c->r, 64) + 1) * PAGE - (chance(&c->r, 10) ? 1 : 0);
    return length(c);
}

/* ------------------------------------------------------------------------------------------ */
/* The calls. Each builds its arguments (possibly doing set-up calls) and returns the result. */

static sigset_t all_signals;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ring_push(struct ctx *c, uintptr_t addr, size_t len)
{
    if (addr >= (uintptr_t)arena && addr < (uintptr_t)arena + ARENA_SIZE)
        return;
    unsigned i = c->nring++ % 16;
    if (c->nring > 16)
        raw_syscall2(SYS_munmap, c->ring[i].addr, c->ring[i].len);
    c->ring[i].addr = addr;
    c->ring[i].len = len;
}

static void ring_drain(struct ctx *c)
{
    for (unsigned i = 0; i < 16 && i < c->nring; i++)
        raw_syscall2(SYS_munmap, c->ring[i].addr, c->ring[i].len);
    c->nring = 0;
}

/* Never an fd argument we depend on; never a value that hits them after (int) truncation. */
static void shield(long a[6])
{
    for (int i = 0; i < 6; i++) {
        int v = (int)a[i];
        if (v == SAVED_FD || v == DIR_FD)
            a[i] ^= 4;
    }
}

enum {
    X_NONE,
    X_FD,      /* result is an fd */
    X_FD_PAIR, /* a[0 or 3] points to two fds */
    X_MAP,     /* result is a mapping of a[1] bytes */
};

struct call {
    long nr;
    long a[6];
    int post;
    int pair_arg;
    int clone_family;
};

static void gen_clone3(struct ctx *c, struct call *k)
{
    uint64_t *ca = (uint64_t *)(c->priv + 1024);
    size_t size = below(&c->r, 201);
    if (chance(&c->r, 50))
        size = PICK(&c->r, ((const size_t[]){64, 80, 88, 96, 104}));
    for (int i = 0; i < 25; i++)
        ca[i] = chance(&c->r, 80) ? 0 : next(&c->r);
    uint64_t f = 0;
    static const uint64_t BITS[] = {CLONE_VM,      CLONE_FS,        CLONE_FILES,
                                    CLONE_SIGHAND, CLONE_PIDFD,     CLONE_PTRACE,
                                    CLONE_VFORK,   CLONE_THREAD,    CLONE_SYSVSEM,
                                    CLONE_SETTLS,  CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID,
                                    CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID,
                                    CLONE_IO,      CLONE_RSEQ_KTLS, 1ull << 32 /* CLEAR_SIGHAND */,
                                    1ull << 33 /* INTO_CGROUP */};
    for (size_t i = 0; i < sizeof BITS / sizeof BITS[0]; i++)
        if (chance(&c->r, 30))
            f |= BITS[i];
    if (chance(&c->r, 3))
        f |= 1ull << below(&c->r, 64);
    if (chance(&c->r, 25))
        f = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
            CLONE_SETTLS | (chance(&c->r, 50) ? CLONE_RSEQ_KTLS : 0);
    /* Namespaces are heavy on a host: one now and then, never in the fuzz process's threads. */
    f &= ~(uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x80 /* NEWTIME */);
    f &= ~(uint64_t)CLONE_PARENT;
    ca[0] = f;
    ca[1] = chance(&c->r, 50) ? buf_ptr(c) : 0;
    ca[2] = chance(&c->r, 50) ? buf_ptr(c) : 0;
    ca[3] = chance(&c->r, 50) ? buf_ptr(c) : 0;
    long es = chance(&c->r, 50) ? SIGCHLD : PICK(&c->r, ((const long[]){0, SIGUSR1, 36, 65, 1000}));
    ca[4] = (uint64_t)es;
    if (f & CLONE_VM || chance(&c->r, 50)) {
        ca[5] = (uintptr_t)c->clone_stack;
        ca[6] = CLONE_STACK_SIZE;
        if (chance(&c->r, 10))
            ca[5] = 0, ca[6] = 0;
        if (!(f & CLONE_VM) && chance(&c->r, 20))
            ca[5] = unreadable(c), ca[6] = length(c);
    } else {
        ca[5] = 0;
        ca[6] = 0;
    }
    switch (below(&c->r, 4)) {
    case 0:
        ca[7] = 0;
        break;
    case 1:
        ca[7] = f & CLONE_RSEQ_KTLS ? child_ktls_tls() : (uintptr_t)scratch + SCRATCH_SIZE / 2;
        break;
    case 2:
        ca[7] = PICK(&c->r, BAD_PTRS);
        break;
    default:
        ca[7] = next(&c->r) & ~63ull;
        break;
    }
    if (chance(&c->r, 90)) {
        ca[8] = 0;
        ca[9] = 0;
    } else {
        ca[8] = buf_ptr(c);
        ca[9] = below(&c->r, 40);
    }
    ca[10] = fd_arg(c);
    k->nr = SYS_clone3;
    k->a[0] = chance(&c->r, 95) ? (long)ca : (long)unreadable(c);
    k->a[1] = (long)size;
    k->clone_family = 1;
}

static void gen_clone(struct ctx *c, struct call *k)
{
    long f = (long)(next(&c->r) & 0xffffff00);
    if (chance(&c->r, 40))
        f = 0;
    if (chance(&c->r, 20))
        f = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
            CLONE_SETTLS;
    f &= ~(long)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                 CLONE_NEWPID | CLONE_NEWNET | CLONE_PARENT);
    long es = chance(&c->r, 60) ? SIGCHLD : PICK(&c->r, ((const long[]){0, SIGUSR2, 37}));
    f |= es;
    k->nr = SYS_clone;
    k->a[0] = f;
    /* The x86_64 order: flags, stack, parent_tid, child_tid, tls. */
    k->a[1] = (f & CLONE_VM) || chance(&c->r, 50) ? (long)(c->clone_stack + CLONE_STACK_SIZE) : 0;
    k->a[2] = (long)buf_ptr(c);
    k->a[3] = (long)buf_ptr(c);
    k->a[4] = chance(&c->r, 50) ? (long)(scratch + SCRATCH_SIZE / 2) : (long)PICK(&c->r, BAD_PTRS);
    k->clone_family = 1;
}

static long ioctl_cmd(struct ctx *c)
{
    static const long CMDS[] = {0x541b /* FIONREAD */, 0x5401 /* TCGETS */,
                                0x5413 /* TIOCGWINSZ */, 0x5451 /* FIOCLEX */,
                                0x5450 /* FIONCLEX */,  0x5460 /* FIOQSIZE */,
                                0x80086601 /* FS_IOC_GETFLAGS */, 2 /* FIGETBSZ */,
                                0x540f /* TIOCGPGRP */, 0x5429 /* TIOCGSID */,
                                0x8008551d /* random-ish */};
    if (chance(&c->r, 70))
        return PICK(&c->r, CMDS);
    /* Random commands of a type no driver uses. */
    return (long)((next(&c->r) & 0xffff00ff) | 0xee00);
}

static long fcntl_cmd(struct ctx *c, long *arg)
{
    static const long SAFE[] = {F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD, F_DUPFD_CLOEXEC,
                                F_GETLK, F_SETLK, F_GETOWN, F_SETOWN, F_GETSIG, F_SETSIG,
                                1025 /* F_GETLEASE */, 1032 /* F_GETPIPE_SZ */,
                                1031 /* F_SETPIPE_SZ */, 1034 /* F_GET_SEALS */,
                                1033 /* F_ADD_SEALS */, 36 /* F_OFD_GETLK */, 37 /* F_OFD_SETLK */,
                                0x7fff, -1};
    long cmd = PICK(&c->r, SAFE);
    *arg = small_int(c);
    switch (cmd) {
    case F_SETFL:
        *arg = (flags(c) & ~O_ASYNC) | O_NONBLOCK;
        break;
    case F_GETLK:
    case F_SETLK:
    case 36:
    case 37:
        *arg = (long)buf_ptr(c);
        break;
    case F_SETOWN:
        *arg = chance(&c->r, 50) ? fuzz_pid : 0;
        break;
    case F_SETSIG:
        *arg = chance(&c->r, 80) ? fuzz_sig(c) : 0;
        break;
    case 1031:
        *arg = (long)below(&c->r, 1 << 20);
        break;
    default:
        break;
    }
    return cmd;
}

static void gen_openat(struct ctx *c, struct call *k)
{
    k->nr = SYS_openat;
    k->a[0] = dirfd_arg(c);
    if (chance(&c->r, 50)) {
        k->a[1] = (long)priv_path(c);
        k->a[2] = flags(c) | O_NONBLOCK;
    } else {
        k->a[1] = (long)ro_path(c);
        k->a[2] = (flags(c) & (O_CLOEXEC | O_NOFOLLOW | O_PATH | O_NOATIME | O_DIRECTORY |
                               O_LARGEFILE | O_NOCTTY)) |
                  O_RDONLY | O_NONBLOCK;
        k->a[0] = AT_FDCWD; /* an fd of ours could be a private directory: keep it simple */
    }
    k->a[3] = (long)(next(&c->r) & 07777);
    k->post = X_FD;
}

/* FUZZ_CASES=a-b,c,... (environment): only these cases of gen_call, to bisect a finding. */
#define NCASES 118
static unsigned char case_allowed[NCASES];
static int case_filter;

static void parse_case_filter(const char *spec)
{
    if (!spec || !*spec)
        return;
    case_filter = 1;
    while (*spec) {
        char *end;
        long lo = strtol(spec, &end, 10), hi = lo;
        if (*end == '-')
            hi = strtol(end + 1, &end, 10);
        for (long i = lo; i <= hi && i < NCASES; i++)
            if (i >= 0)
                case_allowed[i] = 1;
        spec = *end == ',' ? end + 1 : end;
        if (end == spec && *spec)
            break;
    }
}

/* The safe repertoire: every call the fuzz process's threads may make. */
static void gen_call(struct ctx *c, struct call *k)
{
    memset(k, 0, sizeof *k);
    long *a = k->a;
    unsigned pick = (unsigned)below(&c->r, NCASES);
    for (int tries = 0; case_filter && !case_allowed[pick] && tries < 10000; tries++)
        pick = (unsigned)below(&c->r, NCASES);
    switch (pick) {
    case 0:
    case 1:
        k->nr = SYS_read;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        break;
    case 2:
    case 3:
        k->nr = SYS_write;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        break;
    case 4:
        k->nr = chance(&c->r, 50) ? SYS_pread64 : SYS_pwrite64;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c), a[3] = length(c);
        break;
    case 5:
    case 6: {
        /* readv/writev/preadv/pwritev/preadv2/pwritev2 with iovecs in our private buffer */
        struct {
            uintptr_t base;
            long len;
        } *iov = (void *)(c->priv + 512);
        int n = (int)below(&c->r, 8);
        for (int i = 0; i < n; i++)
            iov[i].base = buf_ptr(c), iov[i].len = chance(&c->r, 80) ? (long)below(&c->r, 4096)
                                                                      : length(c);
        static const long NRS[] = {SYS_readv, SYS_writev, SYS_preadv, SYS_pwritev, 327, 328};
        k->nr = PICK(&c->r, NRS);
        a[0] = fd_arg(c);
        a[1] = chance(&c->r, 90) ? (long)iov : (long)unreadable(c);
        a[2] = chance(&c->r, 90) ? n : small_int(c);
        a[3] = length(c), a[4] = 0;
        a[5] = flags(c) & 0x1f; /* RWF_* */
        break;
    }
    case 7:
    case 8:
        gen_openat(c, k);
        break;
    case 9:
    case 10:
        k->nr = SYS_close;
        a[0] = fd_arg(c);
        break;
    case 11: {
        static const long NRS[] = {SYS_stat, SYS_lstat, SYS_access, SYS_readlink};
        k->nr = PICK(&c->r, NRS);
        a[0] = (long)ro_path(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        if (k->nr == SYS_access)
            a[1] = small_int(c);
        break;
    }
    case 12:
        k->nr = SYS_newfstatat;
        a[0] = dirfd_arg(c), a[1] = (long)ro_path(c), a[2] = (long)buf_ptr(c);
        a[3] = flags(c) & 0x1f00;
        if (a[3] & 0x1000 /* AT_EMPTY_PATH */)
            a[1] = (long)"";
        break;
    case 13:
        k->nr = 332; /* statx */
        a[0] = dirfd_arg(c), a[1] = (long)ro_path(c), a[2] = flags(c) & 0x7f00;
        a[3] = flags(c), a[4] = (long)buf_ptr(c);
        break;
    case 14:
        k->nr = SYS_fstat;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c);
        break;
    case 15:
        k->nr = SYS_lseek;
        a[0] = fd_arg(c), a[1] = length(c), a[2] = small_int(c);
        break;
    case 16:
    case 17:
    case 18: { /* mmap */
        long f = flags(c) & 0x1fffff;
        long len = map_length(c);
        if (!(f & 0x3) || chance(&c->r, 50))
            f = (f & ~0xfl) | (chance(&c->r, 80) ? MAP_PRIVATE : MAP_SHARED);
        if (chance(&c->r, 60))
            f |= MAP_ANONYMOUS;
        if (len < 0 || len > (1l << 20))
            f &= ~(long)(MAP_POPULATE | MAP_LOCKED);
        uintptr_t addr = chance(&c->r, 60) ? arena_addr(c) : next(&c->r) & 0x7ffffffff000ul;
        if (f & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
            if (chance(&c->r, 85)) {
                addr = arena_addr(c);
                if (addr >= (uintptr_t)arena && addr < (uintptr_t)arena + ARENA_SIZE &&
                    (len < 0 || addr + (uintptr_t)len > (uintptr_t)arena + ARENA_SIZE))
                    len = (long)((uintptr_t)arena + ARENA_SIZE - addr);
            } else {
                addr = PICK(&c->r, BAD_PTRS) & ~0xffful;
            }
            if (!(addr >= (uintptr_t)arena && addr < (uintptr_t)arena + ARENA_SIZE) &&
                addr < TASK_SIZE)
                f &= ~(long)(MAP_FIXED | MAP_FIXED_NOREPLACE);
        }
        k->nr = SYS_mmap;
        a[0] = (long)addr, a[1] = len, a[2] = flags(c) & 0xf;
        a[3] = f, a[4] = f & MAP_ANONYMOUS && chance(&c->r, 80) ? -1 : fd_arg(c);
        a[5] = chance(&c->r, 80) ? (long)(below(&c->r, 4) * PAGE) : length(c);
        k->post = X_MAP;
        break;
    }
    case 19:
    case 20:
        k->nr = SYS_munmap;
        a[0] = (long)arena_addr(c), a[1] = fit(a[0], map_length(c));
        break;
    case 21:
    case 22:
        k->nr = SYS_mprotect;
        a[0] = (long)arena_addr(c), a[1] = fit(a[0], map_length(c));
        a[2] = chance(&c->r, 80) ? (long)below(&c->r, 8) : flags(c);
        break;
    case 23: { /* mremap */
        k->nr = SYS_mremap;
        a[0] = (long)arena_addr(c), a[1] = fit(a[0], map_length(c)), a[2] = map_length(c);
        a[3] = flags(c) & 0x7;
        a[4] = (long)arena_addr(c);
        if (!(a[4] >= (long)arena && a[4] < (long)(arena + ARENA_SIZE)))
            a[3] &= ~2l; /* MREMAP_FIXED only into the arena */
        if (a[3] & 2 && a[4] + a[2] > (long)(arena + ARENA_SIZE))
            a[2] = (long)(arena + ARENA_SIZE) - a[4];
        k->post = X_MAP;
        break;
    }
    case 24: { /* madvise, never the poisoning advice */
        k->nr = SYS_madvise;
        a[0] = (long)arena_addr(c), a[1] = fit(a[0], map_length(c));
        long adv = (long)below(&c->r, 27);
        if (chance(&c->r, 10))
            adv = 256 + (long)below(&c->r, 1 << 20);
        a[2] = adv;
        break;
    }
    case 25: {
        /* The mlock calls only on ktls: natively, a thread once waited 10 s in Linux's mlock
         * (faulting in arena pages on a loaded host, seed 81596137), and a call that blocks
         * makes the fuzzer report a stuck thread. tests/programs/mlock.c checks their
         * semantics on both. */
        static const long NRS[] = {SYS_msync, 329 /* pkey_mprotect */, SYS_mincore, SYS_mlock,
                                   SYS_munlock, 325 /* mlock2 */};
        k->nr = NRS[below(&c->r, have_ktls ? 6 : 3)];
        a[0] = (long)arena_addr(c), a[1] = fit(a[0], map_length(c));
        a[2] = k->nr == SYS_mincore ? (long)buf_ptr(c) : flags(c) & 0xff;
        a[3] = small_int(c);
        break;
    }
    case 26: { /* brk: above the floor (then back to it, in do_call), or refused values */
        uintptr_t to;
        switch (below(&c->r, 4)) {
        case 0:
        case 1:
            to = brk_floor + below(&c->r, 16 << 20);
            break;
        case 2:
            to = PICK(&c->r, BAD_PTRS);
            break;
        default:
            to = brk_floor > (2 << 20) ? brk_floor - below(&c->r, 1 << 20) - (1 << 20) : 0;
            break;
        }
        k->nr = SYS_brk;
        a[0] = (long)to;
        break;
    }
    case 27:
    case 28: { /* rt_sigaction on a fuzz signal (handler or ignore), or a query */
        struct k_sigaction *sa = (void *)(c->priv + 256);
        long sig = chance(&c->r, 80) ? fuzz_sig(c) : small_int(c);
        sa->handler = chance(&c->r, 80) ? (uintptr_t)on_fuzz_signal : (uintptr_t)SIG_IGN;
        sa->flags = (flags(c) & (SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER |
                                 SA_NOCLDSTOP | SA_NOCLDWAIT)) |
                    0x04000000 /* SA_RESTORER */;
        sa->restorer = (uintptr_t)fuzz_restorer;
        sa->mask = next(&c->r);
        k->nr = SYS_rt_sigaction;
        a[0] = sig;
        /* A new action only for a fuzz signal, and only ours; else a query or an unreadable
         * action (EFAULT, or EINVAL for a bad signal number first). */
        if (is_fuzz_sig(sig) && chance(&c->r, 90))
            a[1] = (long)sa;
        else
            a[1] = chance(&c->r, 50) ? 0 : (long)unreadable(c);
        a[2] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        a[3] = chance(&c->r, 90) ? 8 : small_int(c);
        break;
    }
    case 29:
    case 30: {
        uint64_t *set = (uint64_t *)(c->priv + 320);
        *set = next(&c->r);
        k->nr = SYS_rt_sigprocmask;
        a[0] = small_int(c) & 3;
        if (chance(&c->r, 10))
            a[0] = small_int(c);
        a[1] = chance(&c->r, 70) ? (long)set : chance(&c->r, 50) ? 0 : (long)bad_ptr(c);
        a[2] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        a[3] = chance(&c->r, 90) ? 8 : small_int(c);
        break;
    }
    case 31:
        k->nr = SYS_rt_sigpending;
        a[0] = (long)buf_ptr(c), a[1] = chance(&c->r, 80) ? 8 : small_int(c);
        break;
    case 32: {
        uint64_t *set = (uint64_t *)(c->priv + 328);
        *set = next(&c->r);
        k->nr = SYS_rt_sigtimedwait;
        a[0] = chance(&c->r, 90) ? (long)set : (long)bad_ptr(c);
        a[1] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        a[2] = (long)timeout_ptr(c, 0);
        a[3] = chance(&c->r, 90) ? 8 : small_int(c);
        break;
    }
    case 33:
    case 34: { /* signals to ourselves */
        static const long NRS[] = {SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo,
                                   SYS_rt_tgsigqueueinfo};
        k->nr = PICK(&c->r, NRS);
        long pid = self_pid(c);
        long sig = self_sig(c);
        switch (k->nr) {
        case SYS_kill:
            a[0] = pid, a[1] = sig;
            break;
        case SYS_tkill:
            a[0] = pid > 0 ? pid : (long)raw_syscall0(SYS_gettid), a[1] = sig;
            break;
        case SYS_tgkill:
            a[0] = chance(&c->r, 80) ? fuzz_pid : pid, a[1] = self_pid(c), a[2] = sig;
            if (a[1] <= 0)
                a[1] = (long)raw_syscall0(SYS_gettid);
            break;
        case SYS_rt_sigqueueinfo:
            a[0] = pid > 0 ? pid : fuzz_pid, a[1] = sig, a[2] = (long)buf_ptr(c);
            break;
        default:
            a[0] = fuzz_pid, a[1] = self_pid(c), a[2] = sig, a[3] = (long)buf_ptr(c);
            if (a[1] <= 0)
                a[1] = (long)raw_syscall0(SYS_gettid);
            break;
        }
        break;
    }
    case 35: { /* sigaltstack: this thread's own alternate stack, or bad */
        stack_t *ss = (void *)(c->priv + 384);
        ss->ss_sp = c->altstack;
        /* Big enough for any frame, or below MINSIGSTKSZ (refused): an accepted stack too
         * small for this CPU's frame would make every delivery a SIGSEGV. */
        ss->ss_size = chance(&c->r, 80) ? ALTSTACK_SIZE : (size_t)below(&c->r, 2048);
        ss->ss_flags = chance(&c->r, 70) ? 0 : (int)PICK(&c->r, ((const long[]){1, 2, 1 << 31, 4}));
        k->nr = SYS_sigaltstack;
        a[0] = chance(&c->r, 70) ? (long)ss : chance(&c->r, 50) ? 0 : (long)unreadable(c);
        a[1] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        break;
    }
    case 36:
        k->nr = SYS_ioctl;
        a[0] = fd_arg(c), a[1] = ioctl_cmd(c), a[2] = (long)buf_ptr(c);
        break;
    case 37:
    case 38: {
        long arg;
        k->nr = SYS_fcntl;
        a[0] = fd_arg(c);
        a[1] = fcntl_cmd(c, &arg);
        a[2] = arg;
        if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC)
            k->post = X_FD;
        break;
    }
    case 39:
        k->nr = SYS_pipe2;
        a[0] = chance(&c->r, 90) ? (long)(c->priv + 448) : (long)bad_ptr(c);
        a[1] = (flags(c) & (O_CLOEXEC | O_DIRECT)) | O_NONBLOCK;
        k->post = X_FD_PAIR;
        k->pair_arg = 0;
        break;
    case 40:
        k->nr = SYS_dup;
        a[0] = fd_arg(c);
        k->post = X_FD;
        break;
    case 41:
        k->nr = chance(&c->r, 50) ? SYS_dup2 : SYS_dup3;
        a[0] = fd_arg(c), a[1] = fd_arg(c), a[2] = chance(&c->r, 70) ? 0 : flags(c);
        k->post = X_FD;
        break;
    case 42: {
        static const long NRS[] = {SYS_getpid, SYS_getppid, SYS_gettid,  SYS_getuid,  SYS_geteuid,
                                   SYS_getgid, SYS_getegid, SYS_getpgrp, SYS_sched_yield,
                                   SYS_getpgid, SYS_getsid};
        k->nr = PICK(&c->r, NRS);
        a[0] = self_pid(c);
        break;
    }
    case 43:
        k->nr = SYS_getcwd;
        a[0] = (long)buf_ptr(c), a[1] = length(c);
        break;
    case 44:
        k->nr = SYS_getdents64;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        break;
    case 45:
        k->nr = SYS_ftruncate;
        a[0] = fd_arg(c), a[1] = chance(&c->r, 80) ? (long)below(&c->r, 1 << 22) : length(c);
        break;
    case 46:
        k->nr = SYS_truncate;
        a[0] = (long)priv_path(c);
        a[1] = chance(&c->r, 80) ? (long)below(&c->r, 1 << 22) : length(c);
        break;
    case 47: {
        static const long NRS[] = {SYS_getrusage, SYS_times, SYS_sysinfo, SYS_uname,
                                   SYS_gettimeofday, SYS_time, SYS_getcpu, SYS_getrlimit};
        k->nr = PICK(&c->r, NRS);
        a[0] = chance(&c->r, 50) ? small_int(c) : (long)buf_ptr(c);
        a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
        if (k->nr == SYS_uname || k->nr == SYS_times || k->nr == SYS_sysinfo ||
            k->nr == SYS_gettimeofday || k->nr == SYS_time)
            a[0] = (long)buf_ptr(c);
        break;
    }
    case 48:
        k->nr = chance(&c->r, 50) ? SYS_clock_gettime : SYS_clock_getres;
        a[0] = small_int(c), a[1] = (long)buf_ptr(c);
        break;
    case 49:
        k->nr = SYS_clock_nanosleep;
        /* Wall clocks; CPU-time clocks only with TIMER_ABSTIME (a relative CPU-time sleep
         * waits until the process has run that long, which may take seconds). */
        a[0] = PICK(&c->r, ((const long[]){0, 1, 7, 11, 5, 100, 2, 3}));
        a[1] = chance(&c->r, 80) ? 0 : 1 /* TIMER_ABSTIME: a short time is long past */;
        if (a[0] == 2 || a[0] == 3)
            a[1] = 1;
        a[2] = (long)timeout_ptr(c, 1), a[3] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        break;
    case 50:
        k->nr = SYS_nanosleep;
        a[0] = (long)timeout_ptr(c, 1), a[1] = chance(&c->r, 50) ? (long)buf_ptr(c) : 0;
        break;
    case 51: { /* prlimit64: queries, and our own current values written back */
        k->nr = SYS_prlimit64;
        a[0] = chance(&c->r, 70) ? 0 : self_pid(c);
        if (a[0] < 0)
            a[0] = 0;
        a[1] = chance(&c->r, 90) ? (long)below(&c->r, 17) : small_int(c);
        struct rlimit *rl = (void *)(c->priv + 400);
        if (chance(&c->r, 30) && raw_syscall4(SYS_prlimit64, 0, a[1], 0, rl) == 0)
            a[2] = (long)rl;
        else
            a[2] = chance(&c->r, 50) ? 0 : (long)unreadable(c);
        a[3] = chance(&c->r, 70) ? (long)buf_ptr(c) : 0;
        break;
    }
    case 52:
        k->nr = SYS_getrandom;
        a[0] = (long)buf_ptr(c), a[1] = length(c), a[2] = flags(c) & 0x7;
        break;
    case 53: { /* arch_prctl: queries, the GS base, and the FS base set and put back */
        static const long CODES[] = {0x1003 /* GET_FS */, 0x1004 /* GET_GS */, 0x1001 /* SET_GS */,
                                     0x1011 /* GET_CPUID */, 0x1021 /* GET_XCOMP_SUPP */,
                                     0x1022 /* GET_XCOMP_PERM */, 0x9999, 0x1002 /* SET_FS */};
        k->nr = SYS_arch_prctl;
        a[0] = PICK(&c->r, CODES);
        a[1] = a[0] == 0x1001 || a[0] == 0x1002 ? (long)next(&c->r) : (long)buf_ptr(c);
        if (a[0] == 0x1001 && chance(&c->r, 50))
            a[1] = (long)PICK(&c->r, BAD_PTRS);
        break;
    }
    case 54:
        k->nr = SYS_set_robust_list;
        a[0] = (long)buf_ptr(c), a[1] = chance(&c->r, 80) ? 24 : small_int(c);
        break;
    case 55:
        k->nr = SYS_get_robust_list;
        a[0] = chance(&c->r, 50) ? 0 : self_pid(c), a[1] = (long)buf_ptr(c),
        a[2] = (long)buf_ptr(c);
        if (a[0] < 0)
            a[0] = 0;
        break;
    case 56:
    case 57: { /* futex on scratch words, never without a timeout when it could wait */
        k->nr = SYS_futex;
        long op = (long)below(&c->r, 14) | (chance(&c->r, 50) ? 128 : 0) |
                  (chance(&c->r, 20) ? 256 : 0);
        if (chance(&c->r, 5))
            op = flags(c);
        a[0] = (long)buf_ptr(c) & ~3l;
        if (chance(&c->r, 10))
            a[0] = (long)buf_ptr(c);
        a[1] = op;
        a[2] = chance(&c->r, 50) ? (long)*(volatile int *)(scratch + 4096) : small_int(c);
        a[3] = (long)timeout_ptr(c, 2);
        a[4] = (long)buf_ptr(c) & ~3l;
        a[5] = small_int(c);
        break;
    }
    case 58:
        k->nr = chance(&c->r, 50) ? SYS_sched_getaffinity : SYS_sched_setaffinity;
        a[0] = chance(&c->r, 50) ? 0 : self_pid(c);
        if (a[0] < 0)
            a[0] = 0;
        a[1] = chance(&c->r, 70) ? 128 : length(c);
        a[2] = (long)buf_ptr(c);
        if (k->nr == SYS_sched_setaffinity && chance(&c->r, 90)) {
            uint64_t *mask = (uint64_t *)(c->priv + 2048);
            memset(mask, 0, 128);
            mask[0] = next(&c->r) | (chance(&c->r, 50) ? 1 : 0);
            a[2] = (long)mask;
        }
        break;
    case 59: {
        static const long NRS[] = {SYS_sched_getparam, SYS_sched_getscheduler,
                                   SYS_sched_get_priority_max, SYS_sched_get_priority_min,
                                   SYS_sched_rr_get_interval, 315 /* sched_getattr */,
                                   SYS_getpriority};
        k->nr = PICK(&c->r, NRS);
        a[0] = chance(&c->r, 50) ? 0 : self_pid(c);
        if (a[0] < 0 && k->nr != SYS_sched_get_priority_max && k->nr != SYS_sched_get_priority_min)
            a[0] = 0;
        a[1] = (long)buf_ptr(c), a[2] = length(c), a[3] = 0;
        if (k->nr == SYS_getpriority)
            a[1] = 0, a[0] = small_int(c) & 3;
        break;
    }
    case 60:
        k->nr = SYS_membarrier;
        a[0] = chance(&c->r, 80) ? 1l << below(&c->r, 9) : flags(c);
        a[1] = chance(&c->r, 80) ? 0 : flags(c), a[2] = small_int(c);
        break;
    case 61:
    case 62: { /* rseq: this thread's TLS area, or anything bad, any length, flags, signature */
        k->nr = 334;
        uintptr_t area = (uintptr_t)tls_area;
        switch (below(&c->r, 5)) {
        case 0:
        case 1:
            a[0] = (long)area;
            break;
        case 2:
            a[0] = (long)unreadable(c);
            break;
        case 3:
            a[0] = (long)(area + 32);
            break;
        default:
            a[0] = (long)PICK(&c->r, BAD_PTRS);
            break;
        }
        /* Only our TLS area or what cannot be registered: a live area in scratch or the arena
         * (garbage rseq_cs, pages unmapped by others) or on a read-only page (Linux 6.x takes
         * it and kills us at the next return) would cost the fuzz process a SIGSEGV. */
        if (a[0] != (long)area && a[0] != (long)(area + 32) &&
            (uintptr_t)a[0] < TASK_SIZE)
            a[0] = (long)unreadable(c);
        a[1] = PICK(&c->r,
                    ((const long[]){0, 20, 31, 32, 33, 64, 75, 76, 100, 128, 129, 4096, -1}));
        static const long FL[] = {0, 1, RSEQ_FLAG_KTLS, RSEQ_FLAG_KTLS | 1, 2, RSEQ_FLAG_KTLS | 2};
        a[2] = chance(&c->r, 90) ? PICK(&c->r, FL) : flags(c);
        a[3] = chance(&c->r, 85) ? (long)RSEQ_SIG : (long)(uint32_t)next(&c->r);
        break;
    }
    case 63:
    case 64:
        gen_clone3(c, k);
        break;
    case 65:
        gen_clone(c, k);
        break;
    case 66:
        k->nr = chance(&c->r, 50) ? SYS_fork : SYS_vfork;
        k->clone_family = 1;
        break;
    case 67:
    case 68: { /* waits never block */
        if (chance(&c->r, 50)) {
            k->nr = SYS_wait4;
            a[0] = chance(&c->r, 50) ? -1 : self_pid(c);
            a[1] = (long)buf_ptr(c), a[2] = (flags(c) & 0xe0000003) | WNOHANG;
            a[3] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        } else {
            k->nr = SYS_waitid;
            a[0] = (long)below(&c->r, 4), a[1] = self_pid(c), a[2] = (long)buf_ptr(c);
            a[3] = (flags(c) & 0xe100000e) | WNOHANG;
            a[4] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        }
        break;
    }
    case 69: { /* execve of what is not there */
        static const char *const MISSING[] = {"/nonexistent/prog", "nonexistent", "",
                                              "/proc/self/nonexistent"};
        k->nr = chance(&c->r, 70) ? SYS_execve : 322 /* execveat */;
        uintptr_t path = chance(&c->r, 70) ? (uintptr_t)PICK(&c->r, MISSING) : unreadable(c);
        if (path == (uintptr_t)ro_page + PAGE - 3)
            path = 0;
        if (k->nr == SYS_execve) {
            a[0] = (long)path, a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
        } else {
            a[0] = AT_FDCWD, a[1] = (long)path, a[2] = (long)buf_ptr(c), a[3] = (long)buf_ptr(c);
            a[4] = flags(c) & 0x100; /* AT_SYMLINK_NOFOLLOW; never AT_EMPTY_PATH */
        }
        break;
    }
    case 70:
    case 71: { /* the private directory tree */
        static const long NRS[] = {SYS_mkdir, SYS_rmdir, SYS_unlink, SYS_rename, SYS_link,
                                   SYS_symlink, SYS_chmod, SYS_chown, SYS_lchown, SYS_utimes,
                                   SYS_creat};
        k->nr = PICK(&c->r, NRS);
        a[0] = (long)priv_path(c), a[1] = (long)priv_path(c);
        if (k->nr == SYS_mkdir || k->nr == SYS_chmod || k->nr == SYS_creat)
            a[1] = (long)(next(&c->r) & 07777);
        if (k->nr == SYS_chown || k->nr == SYS_lchown)
            a[1] = small_int(c), a[2] = small_int(c);
        if (k->nr == SYS_utimes)
            a[1] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        if (k->nr == SYS_creat)
            k->post = X_FD;
        break;
    }
    case 72:
    case 73: {
        static const long NRS[] = {SYS_mkdirat, SYS_unlinkat, SYS_renameat, 316 /* renameat2 */,
                                   SYS_linkat, SYS_symlinkat, SYS_readlinkat, SYS_fchmodat,
                                   SYS_fchownat, SYS_utimensat, SYS_faccessat, 439, SYS_mknodat};
        k->nr = PICK(&c->r, NRS);
        a[0] = dirfd_arg(c), a[1] = (long)priv_path(c), a[2] = dirfd_arg(c);
        a[3] = (long)priv_path(c), a[4] = flags(c) & 0x1f07;
        switch (k->nr) {
        case SYS_mkdirat:
            a[2] = (long)(next(&c->r) & 07777);
            break;
        case SYS_unlinkat:
            a[2] = flags(c) & 0x200;
            break;
        case SYS_linkat:
            a[4] &= ~0x1000l; /* never AT_EMPTY_PATH: it links an open file in */
            break;
        case SYS_symlinkat:
            a[0] = (long)priv_path(c), a[1] = dirfd_arg(c), a[2] = (long)priv_path(c);
            break;
        case SYS_readlinkat:
            a[2] = (long)buf_ptr(c), a[3] = length(c);
            break;
        case SYS_fchmodat:
            a[2] = (long)(next(&c->r) & 07777), a[3] = 0;
            break;
        case SYS_fchownat:
            a[2] = small_int(c), a[3] = small_int(c), a[4] = flags(c) & 0x100;
            break;
        case SYS_utimensat:
            a[2] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[3] = flags(c) & 0x100;
            break;
        case SYS_faccessat:
        case 439:
            a[2] = small_int(c), a[3] = flags(c) & 0x1300;
            if (a[3] & 0x1000)
                a[3] &= ~0x1000l;
            break;
        case SYS_mknodat:
            /* Regular files and sockets only: no device nodes, no FIFOs (opening one blocks). */
            a[2] = (long)((next(&c->r) & 07777) | (chance(&c->r, 50) ? S_IFREG : S_IFSOCK));
            a[3] = small_int(c);
            break;
        default:
            break;
        }
        /* Everything stays relative to the private directory. */
        if (a[0] != AT_FDCWD && k->nr != SYS_symlinkat && chance(&c->r, 50))
            a[0] = AT_FDCWD;
        break;
    }
    case 74:
        /* The private directory, or a subdirectory, or nothing: a garbage path could be "/",
         * and every relative name after that would be the host's. */
        k->nr = SYS_chdir;
        a[0] = chance(&c->r, 60) ? (long)priv_dir : (long)unreadable(c);
        if (chance(&c->r, 20))
            a[0] = (long)PICK(&c->r, ((const char *const[]){"d0", "d0/d1", "f0", ".", ""}));
        break;
    case 75:
        k->nr = SYS_fchdir;
        a[0] = fd_arg(c);
        break;
    case 76:
        k->nr = SYS_umask;
        a[0] = (long)(next(&c->r) & 0777);
        break;
    case 77:
        k->nr = SYS_poll;
        a[0] = (long)buf_ptr(c), a[1] = chance(&c->r, 80) ? (long)below(&c->r, 64) : length(c);
        a[2] = (long)below(&c->r, 3);
        break;
    case 78:
        k->nr = 271; /* ppoll */
        a[0] = (long)buf_ptr(c), a[1] = chance(&c->r, 80) ? (long)below(&c->r, 64) : length(c);
        a[2] = (long)timeout_ptr(c, 3);
        a[3] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        a[4] = chance(&c->r, 80) ? 8 : small_int(c);
        break;
    case 79: {
        struct timeval *tv = (void *)(c->priv + 128);
        tv->tv_sec = 0, tv->tv_usec = (long)below(&c->r, 2000);
        k->nr = SYS_select;
        a[0] = chance(&c->r, 80) ? (long)below(&c->r, 1025) : small_int(c);
        a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c), a[3] = (long)buf_ptr(c);
        a[4] = chance(&c->r, 90) ? (long)tv : (long)unreadable(c);
        break;
    }
    case 80:
        k->nr = chance(&c->r, 50) ? 290 /* eventfd2 */ : 283 /* timerfd_create */;
        a[0] = small_int(c);
        a[1] = (flags(c) & 0x80000) | 0x800; /* O_NONBLOCK */
        if (k->nr == 283)
            a[0] = (long)below(&c->r, 12);
        k->post = X_FD;
        break;
    case 81: {
        k->nr = 286; /* timerfd_settime with short times */
        struct itimerspec *its = (void *)(c->priv + 160);
        its->it_value.tv_sec = 0, its->it_value.tv_nsec = (long)below(&c->r, 2000000);
        its->it_interval.tv_sec = 0;
        its->it_interval.tv_nsec = chance(&c->r, 50) ? 0 : 1000000 + (long)below(&c->r, 9000000);
        a[0] = fd_arg(c), a[1] = flags(c) & 3;
        a[2] = chance(&c->r, 90) ? (long)its : (long)unreadable(c);
        a[3] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        break;
    }
    case 82: {
        uint64_t *set = (uint64_t *)(c->priv + 336);
        *set = next(&c->r);
        k->nr = 289; /* signalfd4 */
        a[0] = chance(&c->r, 70) ? -1 : fd_arg(c), a[1] = (long)set, a[2] = 8;
        a[3] = (flags(c) & 0x80000) | 0x800;
        k->post = X_FD;
        break;
    }
    case 83:
        k->nr = chance(&c->r, 50) ? 291 /* epoll_create1 */ : 294 /* inotify_init1 */;
        a[0] = (flags(c) & 0x80000) | (k->nr == 294 ? 0x800 : 0);
        k->post = X_FD;
        break;
    case 84:
        k->nr = 233; /* epoll_ctl */
        a[0] = fd_arg(c), a[1] = small_int(c) & 3, a[2] = fd_arg(c), a[3] = (long)buf_ptr(c);
        break;
    case 85:
        k->nr = chance(&c->r, 50) ? 232 /* epoll_wait */ : 281 /* epoll_pwait */;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = small_int(c);
        a[3] = (long)below(&c->r, 3), a[4] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[5] = 8;
        break;
    case 86:
        k->nr = 254; /* inotify_add_watch */
        a[0] = fd_arg(c), a[1] = (long)priv_path(c), a[2] = flags(c);
        break;
    case 87: { /* AF_UNIX sockets only, non-blocking */
        k->nr = chance(&c->r, 50) ? SYS_socketpair : SYS_socket;
        a[0] = chance(&c->r, 90) ? 1 /* AF_UNIX */ : (long)below(&c->r, 46);
        if (a[0] != 1)
            a[0] = 1;
        a[1] = ((long)below(&c->r, 6) + 1) | 0x800 /* SOCK_NONBLOCK */ | (flags(c) & 0x80000);
        a[2] = 0;
        a[3] = (long)(c->priv + 456);
        k->post = k->nr == SYS_socket ? X_FD : X_FD_PAIR;
        k->pair_arg = 3;
        break;
    }
    case 88: { /* bind/connect/listen/accept4 on AF_UNIX names of our own */
        static const long NRS[] = {SYS_bind, SYS_connect, SYS_listen, 288 /* accept4 */,
                                   SYS_getsockname, SYS_getpeername, SYS_shutdown};
        k->nr = PICK(&c->r, NRS);
        struct {
            unsigned short family;
            char path[108];
        } *sun = (void *)(c->priv + 3072);
        sun->family = 1;
        memset(sun->path, 0, sizeof sun->path);
        if (chance(&c->r, 50))
            snprintf(sun->path, sizeof sun->path, "s%d", (int)below(&c->r, 3));
        else
            snprintf(sun->path + 1, sizeof sun->path - 1, "ktls-fuzz-%d-%d", (int)fuzz_pid,
                     (int)below(&c->r, 3));
        a[0] = fd_arg(c);
        a[1] = chance(&c->r, 85) ? (long)sun : (long)unreadable(c);
        a[2] = chance(&c->r, 85) ? (long)sizeof *sun : length(c);
        if (k->nr == SYS_listen || k->nr == SYS_shutdown)
            a[1] = small_int(c);
        if (k->nr == 288) {
            a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
            a[3] = (flags(c) & 0x80000) | 0x800;
            k->post = X_FD;
        }
        if (k->nr == SYS_getsockname || k->nr == SYS_getpeername)
            a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
        break;
    }
    case 89:
    case 90: { /* send/receive, never waiting */
        static const long NRS[] = {SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg};
        k->nr = PICK(&c->r, NRS);
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        a[3] = (flags(c) & ~0x100l /* MSG_WAITALL */) | 0x40 /* MSG_DONTWAIT */;
        /* A destination address is ours or unreadable: garbage could name a host socket. */
        a[4] = chance(&c->r, 70) ? 0 : (long)unreadable(c), a[5] = small_int(c);
        if (k->nr == SYS_recvfrom)
            a[4] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[5] = (long)buf_ptr(c);
        if (k->nr == SYS_sendmsg || k->nr == SYS_recvmsg) {
            struct {
                uintptr_t name;
                unsigned namelen;
                uintptr_t iov;
                size_t iovlen;
                uintptr_t control;
                size_t controllen;
                int flags;
            } *msg = (void *)(c->priv + 3328);
            struct {
                uintptr_t base;
                size_t len;
            } *iov = (void *)(c->priv + 3456);
            iov[0].base = buf_ptr(c), iov[0].len = below(&c->r, 8192);
            iov[1].base = buf_ptr(c), iov[1].len = below(&c->r, 64);
            msg->name = k->nr == SYS_recvmsg && chance(&c->r, 30) ? buf_ptr(c) : 0;
            msg->namelen = (unsigned)below(&c->r, 200);
            msg->iov = (uintptr_t)iov, msg->iovlen = below(&c->r, 3);
            msg->control = 0, msg->controllen = 0;
            if (chance(&c->r, 30)) {
                /* SCM_RIGHTS with fds of ours. */
                struct {
                    size_t len;
                    int level, type;
                    int fds[4];
                } *cm = (void *)(c->priv + 3520);
                cm->len = 16 + 4 * below(&c->r, 5);
                cm->level = 1 /* SOL_SOCKET */, cm->type = 1 /* SCM_RIGHTS */;
                for (int i = 0; i < 4; i++) {
                    cm->fds[i] = (int)fd_arg(c);
                    if (cm->fds[i] == SAVED_FD || cm->fds[i] == DIR_FD)
                        cm->fds[i] = 0;
                }
                msg->control = (uintptr_t)cm, msg->controllen = 32;
            } else if (chance(&c->r, 20)) {
                msg->control = buf_ptr(c), msg->controllen = below(&c->r, 512);
            }
            msg->flags = 0;
            a[1] = chance(&c->r, 90) ? (long)msg : (long)unreadable(c);
            a[2] = a[3];
        }
        break;
    }
    case 91:
        k->nr = SYS_getsockopt;
        a[0] = fd_arg(c), a[1] = chance(&c->r, 70) ? 1 : small_int(c), a[2] = small_int(c);
        a[3] = (long)buf_ptr(c), a[4] = (long)buf_ptr(c);
        break;
    case 92: { /* splice family, non-blocking */
        static const long NRS[] = {275 /* splice */, 276 /* tee */, 278 /* vmsplice */,
                                   SYS_sendfile, 326 /* copy_file_range */};
        k->nr = PICK(&c->r, NRS);
        a[0] = fd_arg(c), a[1] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[2] = fd_arg(c);
        a[3] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[4] = length(c);
        a[5] = (flags(c) & 0xf) | 2 /* SPLICE_F_NONBLOCK */;
        if (k->nr == 276)
            a[1] = a[2], a[2] = length(c), a[3] = 2;
        if (k->nr == 278) {
            struct {
                uintptr_t base;
                size_t len;
            } *iov = (void *)(c->priv + 3600);
            iov[0].base = buf_ptr(c), iov[0].len = below(&c->r, 8192);
            a[1] = (long)iov, a[2] = (long)below(&c->r, 2), a[3] = 2;
        }
        if (k->nr == SYS_sendfile)
            a[1] = fd_arg(c), a[2] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c), a[3] = length(c);
        break;
    }
    case 93: {
        k->nr = 319; /* memfd_create */
        static const char *const NAMES[] = {"fuzz", "", "a-rather-long-name-for-a-memfd"};
        a[0] = chance(&c->r, 80) ? (long)PICK(&c->r, NAMES) : (long)bad_ptr(c);
        a[1] = flags(c) & 0x1f;
        k->post = X_FD;
        break;
    }
    case 94:
        k->nr = 285; /* fallocate, bounded */
        a[0] = fd_arg(c), a[1] = flags(c) & 0x7f, a[2] = (long)below(&c->r, 1 << 22);
        a[3] = (long)below(&c->r, 1 << 22);
        break;
    case 95:
        k->nr = chance(&c->r, 50) ? SYS_fsync : SYS_fdatasync;
        if (chance(&c->r, 50))
            k->nr = 221 /* fadvise64 */, a[1] = length(c), a[2] = length(c), a[3] = small_int(c);
        a[0] = fd_arg(c);
        break;
    case 96: {
        static const long NRS[] = {SYS_getxattr, SYS_lgetxattr, SYS_listxattr, SYS_llistxattr,
                                   SYS_setxattr, SYS_removexattr};
        k->nr = PICK(&c->r, NRS);
        static const char *const NAMES[] = {"user.fuzz", "user.", "trusted.x", "bogus", ""};
        a[0] = k->nr == SYS_setxattr || k->nr == SYS_removexattr ? (long)priv_path(c)
                                                                  : (long)ro_path(c);
        a[1] = chance(&c->r, 80) ? (long)PICK(&c->r, NAMES) : (long)bad_ptr(c);
        a[2] = (long)buf_ptr(c), a[3] = chance(&c->r, 80) ? (long)below(&c->r, 512) : length(c);
        a[4] = flags(c) & 3;
        if (k->nr == SYS_listxattr || k->nr == SYS_llistxattr)
            a[1] = (long)buf_ptr(c), a[2] = length(c);
        break;
    }
    case 97: { /* POSIX timers with safe notifications */
        k->nr = 222; /* timer_create */
        struct {
            long value;
            int signo, notify;
            int tid;
            int pad[11];
        } *sev = (void *)(c->priv + 192);
        memset(sev, 0, sizeof *sev);
        sev->signo = (int)fuzz_sig(c);
        sev->notify = (int)PICK(&c->r, ((const long[]){0 /* SIGNAL */, 1 /* NONE */,
                                                       4 /* THREAD_ID */, 2, 99}));
        sev->tid = (int)raw_syscall0(SYS_gettid);
        a[0] = chance(&c->r, 80) ? (long)below(&c->r, 12) : small_int(c);
        a[1] = chance(&c->r, 80) ? (long)sev : chance(&c->r, 50) ? 0 : (long)unreadable(c);
        a[2] = chance(&c->r, 90) ? (long)(c->priv + 440) : (long)bad_ptr(c);
        if (c->ntimers >= 8) {
            /* Keep few: delete one instead. */
            k->nr = 226;
            a[0] = c->timers[--c->ntimers];
        }
        break;
    }
    case 98: {
        struct itimerspec *its = (void *)(c->priv + 224);
        its->it_value.tv_sec = 0, its->it_value.tv_nsec = (long)below(&c->r, 2000000);
        its->it_interval.tv_sec = 0;
        its->it_interval.tv_nsec = chance(&c->r, 50) ? 0 : 1000000 + (long)below(&c->r, 9000000);
        static const long NRS[] = {223 /* settime */, 224 /* gettime */, 225 /* getoverrun */,
                                   226 /* delete */};
        k->nr = PICK(&c->r, NRS);
        a[0] = c->ntimers && chance(&c->r, 80) ? c->timers[below(&c->r, c->ntimers)] : small_int(c);
        a[1] = k->nr == 223 ? flags(c) & 1 : (long)buf_ptr(c);
        a[2] = chance(&c->r, 90) ? (long)its : (long)unreadable(c);
        a[3] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        break;
    }
    case 99: {
        struct itimerval *itv = (void *)(c->priv + 288);
        itv->it_value.tv_sec = 0, itv->it_value.tv_usec = (long)below(&c->r, 2000);
        itv->it_interval.tv_sec = 0;
        itv->it_interval.tv_usec = chance(&c->r, 50) ? 0 : 1000 + (long)below(&c->r, 9000);
        k->nr = chance(&c->r, 50) ? SYS_setitimer : SYS_getitimer;
        a[0] = chance(&c->r, 90) ? (long)below(&c->r, 3) : small_int(c);
        a[1] = k->nr == SYS_setitimer ? (chance(&c->r, 90) ? (long)itv : (long)unreadable(c))
                                      : (long)buf_ptr(c);
        a[2] = chance(&c->r, 50) ? 0 : (long)buf_ptr(c);
        if (chance(&c->r, 20))
            k->nr = SYS_alarm, a[0] = (long)below(&c->r, 2);
        break;
    }
    case 100: { /* prctl, harmless options and unknown ones */
        static const long OPTS[] = {1 /* SET_PDEATHSIG */, 2 /* GET_PDEATHSIG */,
                                    3 /* GET_DUMPABLE */, 4 /* SET_DUMPABLE */,
                                    15 /* SET_NAME */, 16 /* GET_NAME */, 29 /* SET_TIMERSLACK */,
                                    30 /* GET_TIMERSLACK */, 38 /* SET_NO_NEW_PRIVS */,
                                    39 /* GET_NO_NEW_PRIVS */, 37 /* GET_CHILD_SUBREAPER */,
                                    23 /* CAPBSET_READ */, 0x12345678, -1};
        k->nr = SYS_prctl;
        a[0] = PICK(&c->r, OPTS);
        a[1] = small_int(c);
        if (a[0] == 1)
            a[1] = chance(&c->r, 50) ? 0 : fuzz_sig(c);
        if (a[0] == 4)
            a[1] = (long)below(&c->r, 3);
        if (a[0] == 15 || a[0] == 16 || a[0] == 2 || a[0] == 37)
            a[1] = (long)buf_ptr(c);
        if (a[0] == 29)
            a[1] = (long)below(&c->r, 100000);
        a[2] = a[3] = a[4] = 0;
        if (chance(&c->r, 10))
            a[2] = small_int(c);
        break;
    }
    case 101:
        k->nr = chance(&c->r, 50) ? 434 /* pidfd_open */ : 312 /* kcmp */;
        a[0] = k->nr == 434 ? (chance(&c->r, 80) ? fuzz_pid : self_pid(c)) : fuzz_pid;
        a[1] = k->nr == 434 ? flags(c) & 0x800 : fuzz_pid;
        a[2] = small_int(c), a[3] = fd_arg(c), a[4] = fd_arg(c);
        if (a[0] <= 0)
            a[0] = fuzz_pid;
        k->post = k->nr == 434 ? X_FD : X_NONE;
        break;
    case 102: { /* process_vm_readv/writev on ourselves, remote side in scratch or bad */
        struct {
            uintptr_t base;
            size_t len;
        } *iov = (void *)(c->priv + 3680);
        iov[0].base = buf_ptr(c), iov[0].len = below(&c->r, 4096);
        iov[1].base = buf_ptr(c), iov[1].len = below(&c->r, 4096);
        iov[2].base = buf_ptr(c), iov[2].len = below(&c->r, 4096);
        iov[3].base = bad_ptr(c), iov[3].len = below(&c->r, 4096);
        k->nr = chance(&c->r, 50) ? 310 : 311;
        a[0] = fuzz_pid, a[1] = (long)&iov[0], a[2] = (long)below(&c->r, 3);
        a[3] = (long)&iov[1], a[4] = (long)below(&c->r, 4), a[5] = chance(&c->r, 90) ? 0 : flags(c);
        if (chance(&c->r, 10))
            a[0] = 0x3fffffff;
        break;
    }
    case 103: /* close_range below our own descriptors */
        k->nr = 436;
        a[0] = (long)below(&c->r, 64), a[1] = a[0] + (long)below(&c->r, 64);
        a[2] = flags(c) & 6;
        break;
    case 104: { /* openat2 */
        uint64_t *how = (uint64_t *)(c->priv + 3776);
        k->nr = 437;
        a[0] = AT_FDCWD, a[1] = (long)priv_path(c);
        how[0] = (uint64_t)((flags(c) | O_NONBLOCK) & 0xffffffff), how[1] = next(&c->r) & 07777;
        how[2] = (uint64_t)flags(c) & 0x1f;
        how[3] = 0;
        a[2] = chance(&c->r, 90) ? (long)how : (long)unreadable(c);
        a[3] = PICK(&c->r, ((const long[]){24, 0, 8, 32, 4096, 4097}));
        k->post = X_FD;
        break;
    }
    case 105: /* futex_waitv with a short timeout */
        k->nr = 449;
        a[0] = (long)buf_ptr(c), a[1] = (long)below(&c->r, 130), a[2] = 0;
        a[3] = (long)timeout_ptr(c, 4), a[4] = (long)below(&c->r, 2);
        if (a[3] == 0)
            a[3] = (long)PICK(&c->r, BAD_PTRS) | 1;
        break;
    case 106: { /* numbers nothing implements, and number bits that must not confuse */
        static const long SAFE_LOW[] = {39, 186, 102, 104, 110};
        switch (below(&c->r, 4)) {
        case 0:
            /* 337..423: a hole in the table (Linux took 335 for uretprobe and 336 for uprobe,
             * which answer a call from anywhere but their trampoline with SIGILL). */
            k->nr = 337 + (long)below(&c->r, 87);
            break;
        case 1:
            k->nr = 548 + (long)below(&c->r, 476); /* 548..1023 */
            break;
        case 2:
            k->nr = 0x40000000l | PICK(&c->r, SAFE_LOW); /* the x32 bit */
            break;
        default:
            k->nr = (long)(next(&c->r) << 32) | PICK(&c->r, SAFE_LOW);
            if (chance(&c->r, 50))
                k->nr = -1 - (long)below(&c->r, 1000);
            break;
        }
        for (int i = 0; i < 6; i++)
            a[i] = (long)next(&c->r);
        break;
    }
    case 107:
        k->nr = SYS_restart_syscall;
        break;
    case 108:
        k->nr = SYS_modify_ldt;
        a[0] = PICK(&c->r, ((const long[]){0, 1, 2, 0x11, 99})), a[1] = (long)buf_ptr(c);
        a[2] = chance(&c->r, 70) ? 16 : length(c);
        break;
    case 109:
        k->nr = SYS_personality;
        a[0] = 0xffffffff; /* query only: a persona changes later mmap layouts */
        break;
    case 110:
        k->nr = SYS_capget;
        a[0] = (long)buf_ptr(c), a[1] = (long)buf_ptr(c);
        break;
    case 111:
        k->nr = SYS_getgroups;
        a[0] = small_int(c), a[1] = (long)buf_ptr(c);
        break;
    case 112:
        k->nr = SYS_getresuid + (chance(&c->r, 50) ? 0 : 2);
        a[0] = (long)buf_ptr(c), a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
        break;
    case 113:
        k->nr = SYS_readahead;
        a[0] = fd_arg(c), a[1] = length(c), a[2] = length(c);
        break;
    case 114:
        k->nr = 441; /* epoll_pwait2 */
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = small_int(c);
        a[3] = (long)timeout_ptr(c, 5), a[4] = 0, a[5] = 8;
        break;
    case 115:
        k->nr = SYS_statfs + (chance(&c->r, 50) ? 0 : 1);
        a[0] = k->nr == SYS_statfs ? (long)ro_path(c) : fd_arg(c), a[1] = (long)buf_ptr(c);
        break;
    case 116:
        k->nr = SYS_flistxattr;
        a[0] = fd_arg(c), a[1] = (long)buf_ptr(c), a[2] = length(c);
        break;
    default: {
        /* pselect6 with a short timeout */
        struct timespec *ts = (struct timespec *)timeout_ptr(c, 6);
        struct {
            uintptr_t set;
            size_t size;
        } *sm = (void *)(c->priv + 3840);
        sm->set = chance(&c->r, 50) ? 0 : buf_ptr(c), sm->size = 8;
        k->nr = 270;
        a[0] = (long)below(&c->r, 1025), a[1] = (long)buf_ptr(c), a[2] = (long)buf_ptr(c);
        a[3] = (long)buf_ptr(c), a[4] = (long)ts, a[5] = chance(&c->r, 80) ? (long)sm : 0;
        break;
    }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Making a call. */

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000l + ts.tv_nsec;
}

static long do_call(struct ctx *c, struct call *k)
{
    shield(k->a);
    struct slot *s = c->slot;
    s->nr = k->nr;
    for (int i = 0; i < 6; i++)
        s->args[i] = k->a[i];
    if (trace && !c->chaos)
        report("call %d: %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n", c->index, k->nr, k->a[0],
               k->a[1], k->a[2], k->a[3], k->a[4], k->a[5]);
    long t0 = c->chaos ? 0 : now_ns();
    long r;
    if (k->clone_family) {
        uint64_t old;
        raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, &all_signals, &old, 8);
        r = raw_clone_exit(k->nr, k->a[0], k->a[1], k->a[2], k->a[3], k->a[4]);
        raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
    } else if (k->nr == SYS_arch_prctl && k->a[0] == 0x1002) {
        /* The FS base: set, then put back at once. */
        uintptr_t fs;
        raw_syscall2(SYS_arch_prctl, 0x1003, &fs);
        r = raw_syscall2(SYS_arch_prctl, 0x1002, k->a[1]);
        raw_syscall2(SYS_arch_prctl, 0x1002, fs);
    } else {
        r = raw_syscall6(k->nr, k->a[0], k->a[1], k->a[2], k->a[3], k->a[4], k->a[5]);
        if (k->nr == SYS_brk && !c->chaos)
            raw_syscall1(SYS_brk, brk_floor);
    }
    if (k->nr == SYS_chdir || k->nr == SYS_fchdir) {
        /* A safety net for the host: the working directory must stay in the private tree
         * (relative names are what the mutating calls use). */
        char cwd[512];
        long n = raw_syscall2(SYS_getcwd, cwd, sizeof cwd);
        size_t plen = strlen(priv_dir);
        if (n < 0 || strncmp(cwd, priv_dir, plen) != 0 || (cwd[plen] != 0 && cwd[plen] != '/')) {
            if (raw_syscall1(SYS_chdir, priv_dir) != 0 || c->chaos)
                raw_syscall1(SYS_exit_group, 3);
            if (n >= 0) {
                report("FAIL fuzz thread %d: syscall %ld(%#lx) took the cwd to %s\n", c->index,
                       k->nr, k->a[0], cwd);
                fuzz_failed = 1;
            }
        }
    }
    s->calls++;
    if (!c->chaos) {
        long dt = now_ns() - t0;
        if (dt > 1000000000l) {
            /* Name any timespec of ours among the arguments (timeouts are at most 2 ms). */
            char tss[160] = "";
            for (int i = 0; i < 6; i++)
                if (k->a[i] >= (long)(c->priv + 64) && k->a[i] < (long)(c->priv + 176)) {
                    struct timespec *ts = (struct timespec *)k->a[i];
                    size_t l = strlen(tss);
                    snprintf(tss + l, sizeof tss - l, " arg %d -> {%ld, %ld}", i,
                             (long)ts->tv_sec, ts->tv_nsec);
                }
            report("info slow call in thread %d: %.1f s in syscall %ld(%#lx, %#lx, %#lx, %#lx, "
                   "%#lx, %#lx) = %ld;%s\n",
                   c->index, dt / 1e9, k->nr, k->a[0], k->a[1], k->a[2], k->a[3], k->a[4],
                   k->a[5], r, tss);
        }
        if (dt > s->slowest_ns) {
            s->slowest_ns = dt, s->slowest_nr = k->nr;
            for (int i = 0; i < 6; i++)
                s->slowest_args[i] = k->a[i];
        }
    }
    if (is_err(r)) {
        s->errors++;
        if (r == -EFAULT)
            s->efaults++;
        if (r == -ENOSYS)
            s->enosys++;
        return r;
    }
    switch (k->post) {
    case X_FD:
        remember_fd(c, r);
        break;
    case X_FD_PAIR: {
        int *p = (int *)k->a[k->pair_arg];
        if ((uintptr_t)p >= (uintptr_t)c->priv && (uintptr_t)p < (uintptr_t)c->priv + PAGE)
            remember_fd(c, p[0]), remember_fd(c, p[1]);
        break;
    }
    case X_MAP:
        ring_push(c, (uintptr_t)r, (size_t)(k->nr == SYS_mremap ? k->a[2] : k->a[1]));
        break;
    default:
        break;
    }
    if (k->nr == 222 && k->a[2] == (long)(c->priv + 440) && c->ntimers < 8)
        c->timers[c->ntimers++] = *(int *)(c->priv + 440);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Chaos children: the same calls plus what the threads may not do. */

/* FUZZ_EXTRA=a-b,... (environment): only these chaos extras (0-13), to bisect a finding. */
static unsigned char extra_allowed[14];
static int extra_filter;

static void chaos_extra(struct ctx *c)
{
    static int global_word;
    int local;
    unsigned pick = (unsigned)below(&c->r, 14);
    for (int tries = 0; extra_filter && !extra_allowed[pick] && tries < 1000; tries++)
        pick = (unsigned)below(&c->r, 14);
    if (extra_filter && !extra_allowed[pick])
        return;
    switch (pick) {
    case 0: /* unmap or protect some of our own memory */
        raw_syscall3(SYS_mprotect, ((uintptr_t)&local & ~0xffful) - below(&c->r, 8) * PAGE, PAGE,
            below(&c->r, 8));
        break;
    case 1:
        raw_syscall2(SYS_munmap, ((uintptr_t)&global_word & ~0xffful) + (below(&c->r, 16) - 8) * PAGE,
            PAGE * below(&c->r, 4));
        break;
    case 2: /* a garbage signal frame */
        for (int i = 0; i < 64; i++)
            ((uint64_t *)(scratch + 8192))[i] = chance(&c->r, 50) ? next(&c->r) : 0;
        __asm__ volatile("mov %0, %%rsp\n"
                         "mov $15, %%eax\n"
                         "syscall\n"
                         "ud2\n" ::"r"(scratch + 8192)
                         : "memory");
        break;
    case 3: /* rseq on garbage */
        for (int i = 0; i < 32; i++)
            scratch[12288 + i] = (uint8_t)next(&c->r);
        raw_syscall4(334, scratch + 12288, 32, 0, RSEQ_SIG);
        break;
    case 4: /* any signal to ourselves (not to our process group: that is the fuzz process's) */
        raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), below(&c->r, 66));
        break;
    case 5:
        raw_syscall3(SYS_setresuid, small_int(c), small_int(c), small_int(c));
        break;
    case 6: {
        struct rlimit rl = {below(&c->r, 1 << 20), below(&c->r, 1 << 21)};
        raw_syscall4(SYS_prlimit64, 0, below(&c->r, 16), &rl, 0);
        break;
    }
    case 7:
        raw_syscall1(SYS_set_tid_address, buf_ptr(c));
        break;
    case 8:
        raw_syscall2(SYS_arch_prctl, 0x1002, next(&c->r));
        break;
    case 9:
        raw_syscall1(SYS_brk, next(&c->r) & 0x7fffffffffff);
        break;
    case 10: { /* clone with a garbage stack */
        uint64_t old;
        raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, &all_signals, &old, 8);
        raw_clone_exit(SYS_clone, CLONE_VM | SIGCHLD, (long)next(&c->r), 0, 0, 0);
        raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
        break;
    }
    case 11:
        raw_syscall1(below(&c->r, 2) ? SYS_exit_group : SYS_exit, below(&c->r, 256));
        break;
    case 12: /* a real-looking but bad rseq_cs on a registered area of scratch */
        memset(scratch + 16384, 0, 32);
        *(uint64_t *)(scratch + 16384 + 8) = buf_ptr(c);
        raw_syscall4(334, scratch + 16384, 32, 0, RSEQ_SIG);
        break;
    default:
        raw_syscall3(SYS_mremap, ((uintptr_t)&local & ~0xffful), PAGE, PAGE * below(&c->r, 4));
        break;
    }
}

static void chaos_child(uint64_t seed, int index)
{
    /* The saved stdout and the private directory are not the children's to touch; "self" is
     * now this child (its pointers may name its own memory, which is also the fuzz process's:
     * process_vm_writev or prlimit64 on the fuzz process would reach it). */
    raw_syscall1(SYS_close, SAVED_FD);
    raw_syscall1(SYS_close, DIR_FD);
    fuzz_pid = (pid_t)raw_syscall0(SYS_getpid);
    for (int t = 0; t < MAX_THREADS; t++)
        thread_tids[t] = fuzz_pid;
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.r.s = seed ^ (0xc4a05ull << 20) ^ (uint64_t)index * 0x9e3779b97f4a7c15ull;
    c.chaos = 1;
    c.slot = &slots[MAX_THREADS];
    static uint8_t priv[PAGE] __attribute__((aligned(64)));
    static uint8_t stack[CLONE_STACK_SIZE] __attribute__((aligned(64)));
    static uint8_t alt[ALTSTACK_SIZE] __attribute__((aligned(64)));
    c.priv = priv, c.clone_stack = stack, c.altstack = alt;
    struct timespec t0;
    raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &t0);
    for (long i = 0;; i++) {
        if ((i & 63) == 0) {
            struct timespec t;
            raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
                CHAOS_LIFETIME_MS)
                break;
        }
        if (chance(&c.r, 3)) {
            chaos_extra(&c);
            continue;
        }
        struct call k;
        gen_call(&c, &k);
        /* Wilder than the threads: any address for the memory calls, any signal. */
        if ((k.nr == SYS_munmap || k.nr == SYS_mprotect || k.nr == SYS_madvise) &&
            chance(&c.r, 20))
            k.a[0] = (long)(buf_ptr(&c) & ~0xffful);
        do_call(&c, &k);
    }
    raw_syscall1(SYS_exit_group, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The fuzz process. */

static uint64_t g_seed;

static void *fuzz_thread(void *arg)
{
    struct ctx *c = arg;
    thread_tids[c->index] = (pid_t)raw_syscall0(SYS_gettid);
    while (!go)
        sched_yield();
    if (have_ktls)
        raw_syscall4(334, tls_area, 128, RSEQ_FLAG_KTLS, RSEQ_SIG); /* the process's offset is set */
    while (!stop && (max_calls < 0 || c->slot->calls < max_calls)) {
        struct call k;
        gen_call(c, &k);
        do_call(c, &k);
        if ((c->slot->calls & 4095) == 0 && c->index == 0)
            raw_syscall3(436, 3, 63, 0); /* close_range: keep the fd table from filling up for good */
    }
    ring_drain(c);
    c->slot->done = 1;
    return NULL;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    (void)!write(SAVED_FD, buf, n);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report_stuck(int t, double idle)
{
    struct slot *s = &slots[t];
    report("FAIL fuzz thread %d made no progress for %.1f s: stuck in syscall %ld(%#lx, %#lx, "
           "%#lx, %#lx, %#lx, %#lx)\n",
           t, idle, s->nr, s->args[0], s->args[1], s->args[2], s->args[3], s->args[4],
           s->args[5]);
}

/* A fault in the fuzz process is a finding (ours or the kernel's): say where, then die of it. */
static void on_crash(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    long tid = raw_syscall0(SYS_gettid);
    int me = -1;
    for (int t = 0; t < nthreads; t++)
        if (thread_tids[t] == tid)
            me = t;
    report("FAIL fuzz process: signal %d (code %d) at rip %#llx, address %p, in thread %d\n",
           sig, si->si_code, (unsigned long long)uc->uc_mcontext.gregs[REG_RIP], si->si_addr,
           me);
    for (int t = 0; t < nthreads; t++) {
        struct slot *sl = &slots[t];
        report("  thread %d: %ld calls, last syscall %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n",
               t, sl->calls, sl->nr, sl->args[0], sl->args[1], sl->args[2], sl->args[3],
               sl->args[4], sl->args[5]);
    }
    signal(sig, SIG_DFL);
    raw_syscall2(SYS_tkill, tid, sig);
}

static void *map_or_die(size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        report("FAIL mmap of %zu bytes: errno %d\n", len, errno);
        _exit(1);
    }
    return p;
}

static int fuzz_process(double seconds, uint64_t seed, int threads)
{
    fuzz_pid = getpid();
    g_seed = seed;
    nthreads = threads;
    if (chdir(priv_dir) != 0) {
        report("FAIL chdir %s: errno %d\n", priv_dir, errno);
        return 1;
    }
    /* Bounded files; ignored signals that would otherwise end us. */
    struct rlimit fsz = {4 << 20, 4 << 20};
    setrlimit(RLIMIT_FSIZE, &fsz);
    static const int IGNORED[] = {SIGPIPE, SIGXFSZ, SIGTTIN, SIGTTOU, SIGHUP, SIGTSTP, SIGXCPU};
    for (size_t i = 0; i < sizeof IGNORED / sizeof IGNORED[0]; i++)
        signal(IGNORED[i], SIG_IGN);
    for (size_t i = 0; i < sizeof FUZZ_SIGS / sizeof FUZZ_SIGS[0]; i++) {
        struct k_sigaction sa = {(uintptr_t)on_fuzz_signal, 0x04000000 | SA_RESTART,
                                 (uintptr_t)fuzz_restorer, 0};
        raw_syscall4(SYS_rt_sigaction, FUZZ_SIGS[i], &sa, 0, 8);
    }
    sigfillset(&all_signals);
    static const int CRASHES[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof CRASHES / sizeof CRASHES[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_crash;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigaction(CRASHES[i], &sa, NULL);
    }

    /* Memory: scratch between guards, a read-only and a PROT_NONE page, the arena. */
    uint8_t *s = map_or_die(SCRATCH_SIZE + 2 * PAGE, PROT_READ | PROT_WRITE);
    mprotect(s, PAGE, PROT_NONE);
    mprotect(s + PAGE + SCRATCH_SIZE, PAGE, PROT_NONE);
    scratch = s + PAGE;
    struct rng r0 = {seed};
    for (size_t i = 0; i < SCRATCH_SIZE; i += 8) {
        uint64_t v = next(&r0);
        memcpy(scratch + i, &v, 8);
    }
    ro_page = map_or_die(PAGE, PROT_READ | PROT_WRITE);
    memcpy(ro_page, "f1\0d0\0", 6);
    memcpy(ro_page + PAGE - 3, "abc", 3);
    mprotect(ro_page, PAGE, PROT_READ);
    none_page = map_or_die(PAGE, PROT_NONE);
    arena = map_or_die(ARENA_SIZE, PROT_NONE);
    have_ktls = getauxval(AT_KTLS_FEATURE_SIZE) != 0;
    /* The first KTLS registration fixes the offset for the whole process: do it while we are
     * still one thread, from our TLS block, so threads can register theirs. */
    if (have_ktls)
        raw_syscall4(334, tls_area, 128, RSEQ_FLAG_KTLS, RSEQ_SIG);

    /* Stdout and stdin away from the fuzzing (the real stdout stays at SAVED_FD). */
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    if (null > 2)
        close(null);

    static struct ctx ctxs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        struct ctx *c = &ctxs[t];
        c->r.s = seed * 1000003 + (uint64_t)t;
        c->index = t;
        c->slot = &slots[t];
        c->priv = map_or_die(PAGE, PROT_READ | PROT_WRITE);
        c->clone_stack = map_or_die(CLONE_STACK_SIZE, PROT_READ | PROT_WRITE);
        c->altstack = map_or_die(ALTSTACK_SIZE, PROT_READ | PROT_WRITE);
        thread_tids[t] = fuzz_pid;
    }
    for (int t = 0; t < threads; t++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int e = pthread_create(&tids[t], &attr, fuzz_thread, &ctxs[t]);
        if (e != 0) {
            report("FAIL pthread_create: %d\n", e);
            _exit(1);
        }
    }

    brk_floor = (uintptr_t)raw_syscall1(SYS_brk, 0);
    if (trace)
        report("arena %p scratch %p\n", (void *)arena, (void *)scratch);
    go = 1;

    /* Chaos children and the watchdog. */
    struct {
        pid_t pid;
        double born;
    } kids[CHAOS_ALIVE] = {{0, 0}};
    long spawned = 0, by_signal = 0, by_us = 0, exited = 0, sigcount[65] = {0};
    long last_calls[MAX_THREADS] = {0};
    double last_progress[MAX_THREADS];
    double start = mono(), end = start + seconds;
    for (int t = 0; t < threads; t++)
        last_progress[t] = start;
    int failed = 0;
    while (mono() < end) {
        double now = mono();
        /* Reap: chaos children (counted), and what the threads' clones and forks left. */
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG | __WALL)) > 0)
            for (int i = 0; i < CHAOS_ALIVE; i++)
                if (kids[i].pid == w) {
                    if (WIFSIGNALED(st)) {
                        by_signal++;
                        sigcount[WTERMSIG(st) & 63]++;
                    } else {
                        exited++;
                    }
                    kids[i].pid = 0;
                }
        for (int i = 0; i < CHAOS_ALIVE; i++) {
            if (kids[i].pid > 0 && now - kids[i].born > CHAOS_LIFETIME_MS / 1000.0 + 0.5) {
                /* Gone without a status (SIGCHLD ignored with SA_NOCLDWAIT, or reaped by a
                 * thread's wait): free the slot; else kill it, once. */
                if (kill(kids[i].pid, SIGKILL) != 0 && errno == ESRCH) {
                    kids[i].pid = 0;
                    exited++;
                } else if (kids[i].born < now) {
                    by_us++;
                    kids[i].born = now + 1; /* look again in a second */
                }
            }
            if (kids[i].pid == 0 && now < end - 0.5 && i < chaos_alive) {
                pid_t p = fork();
                if (p == 0)
                    chaos_child(seed, (int)spawned);
                if (p > 0) {
                    kids[i].pid = p;
                    kids[i].born = now;
                    spawned++;
                }
            }
        }
        for (int t = 0; t < threads; t++) {
            if (slots[t].calls != last_calls[t]) {
                last_calls[t] = slots[t].calls;
                last_progress[t] = now;
            } else if (!slots[t].done && now - last_progress[t] > STUCK_S) {
                report_stuck(t, now - last_progress[t]);
                failed = 1;
            }
        }
        if (failed)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    stop = 1;
    /* Threads finish their current (short) call; a thread that does not is stuck. */
    double until = mono() + STUCK_S;
    for (int t = 0; t < threads && !failed; t++) {
        while (!slots[t].done && mono() < until) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        if (!slots[t].done) {
            report_stuck(t, STUCK_S);
            failed = 1;
        }
    }
    for (int i = 0; i < CHAOS_ALIVE; i++)
        if (kids[i].pid > 0)
            kill(kids[i].pid, SIGKILL);
    if (failed)
        _exit(1); /* the supervisor kills and reaps the rest */
    for (int t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);

    long calls = 0, errors = 0, efaults = 0, enosys = 0;
    int slowest = 0;
    for (int t = 0; t < threads; t++)
        if (slots[t].slowest_ns > slots[slowest].slowest_ns)
            slowest = t;
    struct slot *sl = &slots[slowest];
    report("info slowest call: %.1f ms, syscall %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n",
           sl->slowest_ns / 1e6, sl->slowest_nr, sl->slowest_args[0], sl->slowest_args[1],
           sl->slowest_args[2], sl->slowest_args[3], sl->slowest_args[4], sl->slowest_args[5]);
    for (int t = 0; t < threads; t++) {
        calls += slots[t].calls;
        errors += slots[t].errors;
        efaults += slots[t].efaults;
        enosys += slots[t].enosys;
    }
    char sigs[256] = "";
    for (int s2 = 1; s2 < 65; s2++)
        if (sigcount[s2]) {
            size_t l = strlen(sigs);
            snprintf(sigs + l, sizeof sigs - l, "%s%d:%ld", l ? " " : "", s2, sigcount[s2]);
        }
    report("fuzz: %ld calls by %d threads in %.1f s (%ld errors: %ld EFAULT, %ld ENOSYS), "
           "%ld signals handled; %ld chaos children: %ld exited, %ld died of signals [%s], "
           "%ld killed at their deadline\n",
           calls, threads, mono() - start, errors, efaults, enosys, (long)signals_handled,
           spawned, exited, by_signal, sigs, by_us);
    return fuzz_failed ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The supervisor. */

/* Why remove_tree left something, for the failure report ("" if it did not). */
static char remove_problem[320];

static void remove_failed(const char *what, const char *name, long depth, int err)
{
    if (!remove_problem[0])
        snprintf(remove_problem, sizeof remove_problem, "%s %.200s at depth %ld: %s", what, name,
                 depth, strerror(err));
}

/*
 * Removes `dir` and everything in it. The threads may have made it deep (chdir, then mkdir,
 * again and again) and closed (chmod 000), so it works through directory fds, one level open
 * at a time (no path grows, no fd limit is reached): in each directory it removes what it
 * can, descends into a directory that is not empty yet, and climbs back through ".." once a
 * directory is empty.
 */
static void remove_tree(const char *dir)
{
    remove_problem[0] = 0;
    chmod(dir, 0700);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            remove_failed("open", dir, 0, errno);
        return;
    }
    long depth = 0;
    ino_t emptied = 0; /* the directory we just climbed out of, empty by then */
    for (long step = 0; step < 1000000 && fd >= 0 && !remove_problem[0]; step++) {
        DIR *d = fdopendir(dup(fd));
        if (!d) {
            remove_failed("opendir", ".", depth, errno);
            break;
        }
        char sub[256] = "";
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *n = e->d_name;
            if (!strcmp(n, ".") || !strcmp(n, "..") || unlinkat(fd, n, 0) == 0)
                continue;
            fchmodat(fd, n, 0700, 0);
            if (unlinkat(fd, n, AT_REMOVEDIR) == 0)
                continue;
            if ((errno != ENOTEMPTY && errno != EEXIST) || e->d_ino == emptied)
                remove_failed("rmdir", n, depth, errno);
            else if (!sub[0])
                snprintf(sub, sizeof sub, "%s", n);
        }
        closedir(d);
        int next;
        if (sub[0]) {
            emptied = 0;
            next = openat(fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (next < 0) {
                remove_failed("open", sub, depth, errno);
                break;
            }
            depth++;
        } else if (depth > 0) {
            struct stat st;
            emptied = fstat(fd, &st) == 0 ? st.st_ino : 0;
            next = openat(fd, "..", O_RDONLY | O_DIRECTORY);
            depth--;
        } else {
            break;
        }
        close(fd);
        fd = next;
    }
    if (fd >= 0)
        close(fd);
    if (rmdir(dir) != 0 && errno != ENOENT)
        remove_failed("rmdir", dir, 0, errno);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)time(NULL);
    int threads = argc > 3 ? atoi(argv[3]) : 4;
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("seed %llu\n", (unsigned long long)seed);
    parse_case_filter(getenv("FUZZ_CASES"));
    trace = getenv("FUZZ_TRACE") && atoi(getenv("FUZZ_TRACE")) > 0;
    if (getenv("FUZZ_EXTRA")) {
        extra_filter = 1;
        for (const char *p = getenv("FUZZ_EXTRA"); *p;) {
            char *end;
            long lo = strtol(p, &end, 10), hi = lo;
            if (*end == '-')
                hi = strtol(end + 1, &end, 10);
            for (long i = lo; i <= hi && i < 14; i++)
                if (i >= 0)
                    extra_allowed[i] = 1;
            if (end == p)
                break;
            p = *end == ',' ? end + 1 : end;
        }
    }
    if (getenv("FUZZ_CHAOS"))
        chaos_alive = atoi(getenv("FUZZ_CHAOS"));
    if (getenv("FUZZ_CALLS"))
        max_calls = atol(getenv("FUZZ_CALLS"));

    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* Signals the fuzz process's children could send us (it sends none on purpose). */
    for (size_t i = 0; i < sizeof FUZZ_SIGS / sizeof FUZZ_SIGS[0]; i++)
        if (FUZZ_SIGS[i] != SIGCHLD)
            signal(FUZZ_SIGS[i], SIG_IGN);
    signal(SIGPIPE, SIG_IGN);

    snprintf(priv_dir, sizeof priv_dir, "/tmp/ktls-fuzz-%d", (int)getpid());
    remove_tree(priv_dir);
    if (mkdir(priv_dir, 0700) != 0) {
        printf("FAIL mkdir %s: %s\n", priv_dir, strerror(errno));
        return 1;
    }
    /* Warm up what the measurement needs, then measure. */
    (void)meminfo("MemFree");
    pid_t w = fork();
    if (w == 0)
        _exit(0);
    waitpid(w, NULL, 0);
    long free0 = meminfo("MemFree"), heap0 = meminfo("KernelHeapUsed");

    pid_t fz = fork();
    if (fz == 0) {
        setpgid(0, 0);
        if (dup2(1, SAVED_FD) < 0 || open(priv_dir, O_RDONLY | O_DIRECTORY) < 0)
            _exit(2);
        dup2(3, DIR_FD);
        close(3);
        _exit(fuzz_process(seconds, seed, threads));
    }
    setpgid(fz, fz);
    int st = -1;
    double deadline = mono() + seconds + HANG_GRACE_S;
    int hung = 0;
    for (;;) {
        /* Reap orphans as they come (chaos grandchildren end up with us), and the fuzz
         * process when it ends. */
        int ost;
        pid_t r;
        int done = 0;
        while ((r = waitpid(-1, &ost, WNOHANG | __WALL)) > 0)
            if (r == fz) {
                st = ost;
                done = 1;
            }
        if (done)
            break;
        if (mono() > deadline) {
            hung = 1;
            kill(fz, SIGKILL);
            waitpid(fz, &st, 0);
            break;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    /* Everything left in the group, and orphans that came to us. */
    int stragglers = 0;
    double until = mono() + 20;
    for (;;) {
        kill(-fz, SIGKILL);
        pid_t r = waitpid(-1, NULL, WNOHANG | __WALL);
        if (r > 0)
            continue;
        if (r < 0 && errno == ECHILD)
            break;
        if (mono() > until) {
            stragglers = 1;
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    remove_tree(priv_dir);
    long free1 = meminfo("MemFree"), heap1 = meminfo("KernelHeapUsed");
    printf("info memfree before %ld\ninfo memfree after %ld\n", free0, free1);
    if (heap0 >= 0)
        printf("info heapused before %ld\ninfo heapused after %ld\n", heap0, heap1);

    int ok = 1;
    if (hung) {
        printf("FAIL the fuzz process did not finish within %d s of its deadline\n",
               HANG_GRACE_S);
        ok = 0;
    } else if (WIFSIGNALED(st)) {
        printf("FAIL the fuzz process was killed by signal %d\n", WTERMSIG(st));
        ok = 0;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL the fuzz process exited with status %d\n", WEXITSTATUS(st));
        ok = 0;
    }
    if (stragglers) {
        printf("FAIL processes of the fuzz process group would not die\n");
        ok = 0;
    }
    struct stat sb;
    if (stat(priv_dir, &sb) == 0) {
        printf("FAIL could not remove %s (%s)\n", priv_dir,
               remove_problem[0] ? remove_problem : "no error seen");
        ok = 0;
    }
    printf("fuzz summary: %s (seed %llu, %.0f s, %d threads)\n", ok ? "clean" : "FAILED",
           (unsigned long long)seed, seconds, threads);
    return ok ? 0 : 1;
}
