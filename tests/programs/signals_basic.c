/*
 * Signal delivery and return: a handler on an alternate stack (SA_ONSTACK), SA_RESTART (and
 * its absence: EINTR) on a pipe read that a signal interrupts while another thread writes the
 * data later, a SIGSEGV handler that siglongjmps out (twice, so the mask was restored), tgkill
 * between threads (each handler runs in its target thread), and every general-purpose register
 * (callee-saved and the syscall's preserved ones), xmm0/xmm8 and the FS base intact after a
 * handler that clobbers them all returns through rt_sigreturn.
 */
#include "ktls_test.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_GET_FS 0x1003

static long gettid_raw(void)
{
    return raw_syscall0(SYS_gettid);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- alternate stack ---- */

static char altstack[64 * 1024] __attribute__((aligned(16)));
static volatile uintptr_t handler_sp;
static volatile int handler_onstack;

static void on_alt(int sig)
{
    (void)sig;
    volatile char local;
    handler_sp = (uintptr_t)&local;
    stack_t cur;
    sigaltstack(NULL, &cur);
    handler_onstack = (cur.ss_flags & SS_ONSTACK) != 0;
}

static void test_altstack(void)
{
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    struct sigaction sa = {0};
    sa.sa_handler = on_alt;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    CHECK(raise(SIGUSR1) == 0, "raise(SIGUSR1) (tkill or tgkill to ourselves)");
    CHECK(handler_sp >= (uintptr_t)altstack && handler_sp < (uintptr_t)altstack + sizeof altstack,
          "SA_ONSTACK handler runs on the alternate stack");
    CHECK(handler_onstack, "sigaltstack in the handler says SS_ONSTACK");
    stack_t after;
    sigaltstack(NULL, &after);
    CHECK(after.ss_flags == 0 && after.ss_sp == altstack, "back on the normal stack afterwards");
    /* Without SA_ONSTACK the handler stays on the normal stack. */
    sa.sa_flags = 0;
    sigaction(SIGUSR1, &sa, NULL);
    handler_sp = 0;
    raise(SIGUSR1);
    CHECK(handler_sp && (handler_sp < (uintptr_t)altstack ||
                         handler_sp >= (uintptr_t)altstack + sizeof altstack),
          "a handler without SA_ONSTACK runs on the normal stack");
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    signal(SIGUSR1, SIG_DFL);
}

/* ---- SA_RESTART ---- */

static volatile int usr2_count;
static void on_usr2(int sig)
{
    (void)sig;
    usr2_count++;
}

struct restart_args {
    long target_tid;
    int fd;
};

static void *signal_then_write(void *p)
{
    struct restart_args *a = p;
    sleep_ms(50); /* the main thread is blocked in read by now */
    raw_syscall3(SYS_tgkill, getpid(), a->target_tid, SIGUSR2);
    sleep_ms(50);
    write(a->fd, "data", 4);
    return NULL;
}

static void test_restart(int flags, const char *what_read, const char *what_handler)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sa.sa_flags = flags;
    sigaction(SIGUSR2, &sa, NULL);
    int p[2];
    pipe(p);
    usr2_count = 0;
    struct restart_args a = {gettid_raw(), p[1]};
    pthread_t th;
    pthread_create(&th, NULL, signal_then_write, &a);
    char buf[8] = {0};
    errno = 0;
    ssize_t n = read(p[0], buf, sizeof buf);
    int e = errno;
    if (flags & SA_RESTART)
        check(n == 4 && memcmp(buf, "data", 4) == 0, what_read, "read %zd, errno %d", n, e);
    else
        check(n == -1 && e == EINTR, what_read, "read %zd, errno %d", n, e);
    pthread_join(th, NULL);
    CHECK(usr2_count == 1, what_handler);
    close(p[0]);
    close(p[1]);
    signal(SIGUSR2, SIG_DFL);
}

/* ---- SIGSEGV and siglongjmp ---- */

static sigjmp_buf jb;
static volatile void *fault_addr;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    fault_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void test_segv_longjmp(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    for (int round = 1; round <= 2; round++) {
        volatile int jumped = 0;
        fault_addr = NULL;
        if (sigsetjmp(jb, 1) == 0) {
            volatile int *bad = (volatile int *)16;
            __asm__ volatile("" : "+r"(bad)); /* hide the constant from the compiler */
            *bad = 1;
        } else {
            jumped = 1;
        }
        char what[80];
        snprintf(what, sizeof what, "SIGSEGV handler siglongjmps out (round %d)", round);
        CHECK(jumped, what);
        snprintf(what, sizeof what, "si_addr is the faulting address (round %d)", round);
        CHECK(fault_addr == (void *)16, what);
        sigset_t cur;
        sigprocmask(SIG_BLOCK, NULL, &cur);
        snprintf(what, sizeof what, "SIGSEGV unblocked again after siglongjmp (round %d)", round);
        CHECK(!sigismember(&cur, SIGSEGV), what);
    }
    signal(SIGSEGV, SIG_DFL);
}

/* ---- tgkill between threads ---- */

static volatile long handled_in[2];

static void on_usr1_tid(int sig)
{
    (void)sig;
    long t = gettid_raw();
    if (!handled_in[0])
        handled_in[0] = t;
    else
        handled_in[1] = t;
}

static volatile long peer_tid, main_tid;
static volatile int peer_go, peer_done;

static void *peer(void *unused)
{
    (void)unused;
    peer_tid = gettid_raw();
    while (!peer_go)
        sched_yield();
    /* Signal the main thread, then wait for its signal to us. */
    raw_syscall3(SYS_tgkill, getpid(), main_tid, SIGUSR1);
    while (!handled_in[1])
        sched_yield();
    peer_done = 1;
    return NULL;
}

static void test_tgkill(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1_tid;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t th;
    main_tid = gettid_raw();
    pthread_create(&th, NULL, peer, NULL);
    while (!peer_tid)
        sched_yield();
    peer_go = 1;
    while (!handled_in[0])
        sched_yield();
    CHECK(handled_in[0] == gettid_raw(), "tgkill from a thread: the handler ran in the main thread");
    raw_syscall3(SYS_tgkill, getpid(), peer_tid, SIGUSR1);
    pthread_join(th, NULL);
    CHECK(handled_in[1] == peer_tid, "tgkill to a thread: the handler ran in that thread");
    CHECK_ERR(raw_syscall3(SYS_tgkill, getpid() + 100000, peer_tid, SIGUSR1), ESRCH,
              "tgkill with another tgid: ESRCH");
    signal(SIGUSR1, SIG_DFL);
}

/* ---- registers across a handler ---- */

volatile int clobbered __attribute__((visibility("hidden")));

/* A handler that overwrites every general-purpose register, xmm0-xmm15 and the flags, then
 * returns (into the libc's restorer, which only calls rt_sigreturn). */
void clobber_handler(int sig) __attribute__((visibility("hidden")));
__asm__(".text\n"
        ".globl clobber_handler\n"
        ".hidden clobber_handler\n"
        ".type clobber_handler, @function\n"
        "clobber_handler:\n"
        "    lock incl clobbered(%rip)\n"
        "    movabs $0xbad0bad0bad0bad0, %rax\n"
        "    mov %rax, %rbx\n"
        "    mov %rax, %rbp\n"
        "    mov %rax, %rdi\n"
        "    mov %rax, %rsi\n"
        "    mov %rax, %rdx\n"
        "    mov %rax, %rcx\n"
        "    mov %rax, %r8\n"
        "    mov %rax, %r9\n"
        "    mov %rax, %r10\n"
        "    mov %rax, %r11\n"
        "    mov %rax, %r12\n"
        "    mov %rax, %r13\n"
        "    mov %rax, %r14\n"
        "    mov %rax, %r15\n"
        "    movq %rax, %xmm0\n"
        "    movq %rax, %xmm1\n"
        "    movq %rax, %xmm7\n"
        "    movq %rax, %xmm8\n"
        "    movq %rax, %xmm15\n"
        "    cmp $0, %rax\n"
        "    ret\n"
        ".size clobber_handler, . - clobber_handler\n");

/*
 * regs_across_signal(pid, tid, sig): loads a distinct pattern into every register the syscall
 * instruction preserves (all but rax, rcx, r11) and into xmm0 and xmm8, sends itself `sig` with
 * tgkill, and returns a mask of the registers that changed (bit 0 rbx, 1 rbp, 2 r8, 3 r9, 4 r10,
 * 5 r12, 6 r13, 7 r14, 8 r15, 9 rdi, 10 rsi, 11 rdx, 12 xmm0, 13 xmm8, 14 rsp).
 */
long regs_across_signal(long pid, long tid, long sig) __attribute__((visibility("hidden")));
#define CMPREG(reg, pat, bit)                                                                  \
    "    movabs $" pat ", %r11\n"                                                              \
    "    cmp %r11, %" reg "\n"                                                                 \
    "    je 1f\n"                                                                              \
    "    or $" bit ", %ecx\n"                                                                  \
    "1:\n"
__asm__(".text\n"
        ".globl regs_across_signal\n"
        ".hidden regs_across_signal\n"
        ".type regs_across_signal, @function\n"
        "regs_across_signal:\n"
        "    push %rbx\n"
        "    push %rbp\n"
        "    push %r12\n"
        "    push %r13\n"
        "    push %r14\n"
        "    push %r15\n"
        "    push %rdi\n" /* 16(%rsp): pid */
        "    push %rsi\n" /* 8(%rsp): tid */
        "    push %rdx\n" /* 0(%rsp): sig */
        "    mov %rsp, %rax\n"
        "    movq %rax, %xmm9\n" /* not checked: just a spare copy of rsp */
        "    movabs $0x1111111111111111, %rbx\n"
        "    movabs $0x2222222222222222, %rbp\n"
        "    movabs $0x3333333333333333, %r8\n"
        "    movabs $0x4444444444444444, %r9\n"
        "    movabs $0x5555555555555555, %r10\n"
        "    movabs $0x6666666666666666, %r12\n"
        "    movabs $0x7777777777777777, %r13\n"
        "    movabs $0x8888888888888888, %r14\n"
        "    movabs $0x9999999999999999, %r15\n"
        "    movabs $0xaaaaaaaaaaaaaaaa, %rax\n"
        "    movq %rax, %xmm0\n"
        "    movabs $0xbbbbbbbbbbbbbbbb, %rax\n"
        "    movq %rax, %xmm8\n"
        "    mov 16(%rsp), %rdi\n"
        "    mov 8(%rsp), %rsi\n"
        "    mov 0(%rsp), %rdx\n"
        "    mov $234, %eax\n" /* tgkill */
        "    syscall\n"
        "    xor %ecx, %ecx\n"
        CMPREG("rbx", "0x1111111111111111", "0x1")
        CMPREG("rbp", "0x2222222222222222", "0x2")
        CMPREG("r8", "0x3333333333333333", "0x4")
        CMPREG("r9", "0x4444444444444444", "0x8")
        CMPREG("r10", "0x5555555555555555", "0x10")
        CMPREG("r12", "0x6666666666666666", "0x20")
        CMPREG("r13", "0x7777777777777777", "0x40")
        CMPREG("r14", "0x8888888888888888", "0x80")
        CMPREG("r15", "0x9999999999999999", "0x100")
        "    cmp 16(%rsp), %rdi\n"
        "    je 1f\n"
        "    or $0x200, %ecx\n"
        "1:\n"
        "    cmp 8(%rsp), %rsi\n"
        "    je 1f\n"
        "    or $0x400, %ecx\n"
        "1:\n"
        "    cmp 0(%rsp), %rdx\n"
        "    je 1f\n"
        "    or $0x800, %ecx\n"
        "1:\n"
        "    movq %xmm0, %rax\n"
        "    movabs $0xaaaaaaaaaaaaaaaa, %r11\n"
        "    cmp %r11, %rax\n"
        "    je 1f\n"
        "    or $0x1000, %ecx\n"
        "1:\n"
        "    movq %xmm8, %rax\n"
        "    movabs $0xbbbbbbbbbbbbbbbb, %r11\n"
        "    cmp %r11, %rax\n"
        "    je 1f\n"
        "    or $0x2000, %ecx\n"
        "1:\n"
        "    movq %xmm9, %rax\n"
        "    cmp %rsp, %rax\n"
        "    je 1f\n"
        "    or $0x4000, %ecx\n"
        "1:\n"
        "    mov %rcx, %rax\n"
        "    add $24, %rsp\n"
        "    pop %r15\n"
        "    pop %r14\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    pop %rbp\n"
        "    pop %rbx\n"
        "    ret\n"
        ".size regs_across_signal, . - regs_across_signal\n");

static void test_registers(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = clobber_handler;
    sigaction(SIGUSR1, &sa, NULL);
    unsigned long fs_before = 0, fs_after = 0;
    raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs_before);
    clobbered = 0;
    long changed = regs_across_signal(getpid(), gettid_raw(), SIGUSR1);
    raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs_after);
    CHECK(clobbered == 1, "the clobbering handler ran");
    check(changed == 0, "rbx, rbp, r8-r10, r12-r15, rdi, rsi, rdx, xmm0, xmm8, rsp survive it",
          "changed mask %#lx", changed);
    CHECK(fs_before == fs_after && fs_after != 0, "FS base survives it");
    void *self;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    CHECK(self == (void *)fs_after, "TLS works after it (%fs:0 is the FS base)");
    signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
    test_altstack();
    test_restart(SA_RESTART, "SA_RESTART: the interrupted read restarts and gets the data",
                 "SA_RESTART: the handler ran once");
    test_restart(0, "without SA_RESTART: the interrupted read fails with EINTR",
                 "without SA_RESTART: the handler ran once");
    test_segv_longjmp();
    test_tgkill();
    test_registers();
    return finish();
}
