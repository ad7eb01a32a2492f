/*
 * KTLS registration (rseq(2) with RSEQ_FLAG_KTLS) and clone3(CLONE_RSEQ_KTLS): every error case
 * of spec/ktls.md's tables (sections 6 and 7), in their order, and what a successful
 * registration and unregistration write.
 *
 * On a kernel without KTLS (no AT_KTLS_* in the auxiliary vector: Linux) it checks the fallback
 * instead: every KTLS call is EINVAL, nothing is written, and plain rseq works. The first line
 * says which: "mode ktls" or "mode fallback".
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0 (KTLS is the thread's rseq
 * registration, so glibc's own would be in the way).
 */
#include "rseq_util.h"

#include <ucontext.h>

#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

#define LEN KTLS_AREA_SIZE

static __thread struct ktls_area my_area;
static unsigned long fsz;
static ptrdiff_t offset;
static char *tp;

static volatile int spawned;
static int mark_spawned(void *unused)
{
    (void)unused;
    spawned = 1;
    return 0;
}

/* clone3 for a thread of ours at `tls` with `flags`; a child that is created anyway only sets
 * `spawned` and exits. */
static long try_clone3(uint64_t flags, uint64_t tls, struct raw_thread *t)
{
    struct clone_args_v2 args = {
        .flags = flags,
        .child_tid = (uintptr_t)&t->tid,
        .parent_tid = (uintptr_t)&t->tid,
        .stack = (uintptr_t)t->stack,
        .stack_size = t->stack_size,
        .tls = tls,
        .exit_signal = (flags & CLONE_THREAD) ? 0 : SIGCHLD,
    };
    long r = raw_clone3_fn(&args, sizeof args, mark_spawned, NULL);
    if (r > 0) {
        if (flags & CLONE_THREAD)
            raw_thread_join(t);
        else
            waitpid(r, NULL, 0);
    }
    return r;
}

/* rseq(2) with the FS base set to 0 for the duration of the call (nothing in between may use
 * TLS, so `area` is computed before). */
static __attribute__((noinline)) long rseq_without_fs(void *area, uint32_t len, uint32_t flags,
                                                      uint32_t sig)
{
    unsigned long fs;
    __asm__ volatile("" : "+r"(area));
    raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs);
    raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, 0);
    long r = sys_rseq(area, len, flags, sig);
    raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, fs);
    return r;
}

static void fallback(void)
{
    memset(&my_area, 0x5a, sizeof my_area);
    CHECK_ERR(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "fallback: KTLS registration is EINVAL");
    CHECK_ERR(sys_rseq(&my_area, KTLS_FEATURE_SIZE_LEVEL_1, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "fallback: KTLS registration of level 1's size is EINVAL");
    CHECK_ERR(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "fallback: KTLS unregistration is EINVAL");
    int untouched = 1;
    for (size_t i = 0; i < sizeof my_area; i++)
        untouched &= ((uint8_t *)&my_area)[i] == 0x5a;
    CHECK(untouched, "fallback: the area is untouched");
    memset(&my_area, 0, sizeof my_area);

    struct raw_thread t;
    CHECK(raw_thread_init(&t, offset) == 0, "fallback: thread memory");
    spawned = 0;
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, (uintptr_t)t.tp, &t), EINVAL,
              "fallback: clone3 with CLONE_RSEQ_KTLS is EINVAL");
    CHECK(!spawned, "fallback: no thread was created");
    raw_thread_free(&t);

    CHECK_RET(sys_rseq(&my_area, 32, 0, RSEQ_SIG), 0, "fallback: plain rseq on the area works");
    CHECK(my_area.cpu_id == (uint32_t)sys_getcpu(), "fallback: its cpu_id is the CPU");
    CHECK(my_area.ktls_live == 0, "fallback: ktls_live stays 0");
    CHECK_RET(sys_rseq(&my_area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0,
              "fallback: plain rseq unregisters");
}

/* ---- ktls: before the process's parameters are fixed ---- */

static volatile int release;
static int parked_thread(void *unused)
{
    (void)unused;
    futex_wait_while(&release, 0);
    return 0;
}

static void before_fixing(void)
{
    char *a = (char *)&my_area;

    /* 1: unknown flags */
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | (1u << 3), RSEQ_SIG), EINVAL,
              "1: KTLS with unknown flag bit 3: EINVAL");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | (1u << 17), RSEQ_SIG), EINVAL,
              "1: KTLS with unknown flag bit 17: EINVAL");
    CHECK_ERR(sys_rseq((void *)KERNEL_ADDR, 8, RSEQ_FLAG_KTLS | (1u << 31), RSEQ_SIG), EINVAL,
              "1: unknown flag before any other check");
    /* 2, 3: unregistration */
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER | 2u, RSEQ_SIG), EINVAL,
              "2: unregister with RSEQ_FLAG_SLICE_EXT_DEFAULT_ON too: EINVAL");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "3: unregister without a KTLS registration: EINVAL");
    /* 10: len below level 1 */
    CHECK_ERR(sys_rseq(a, 75, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL, "10: len 75: EINVAL");
    CHECK_ERR(sys_rseq(a, 64, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL, "10: len 64: EINVAL");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL, "10: len 32: EINVAL");
    CHECK_ERR(sys_rseq((void *)(KERNEL_ADDR + 32), 75, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "10: short len before alignment and access checks");
    /* 11: alignment */
    CHECK_ERR(sys_rseq(a + 32, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "11: area at 32 mod 64: EINVAL");
    CHECK_ERR(sys_rseq((void *)(KERNEL_ADDR + 32), LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "11: misaligned kernel address: EINVAL before the access check");
    /* 12: FS base 0 */
    CHECK_ERR(rseq_without_fs(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "12: FS base 0: EINVAL");
    CHECK(thread_pointer() == tp, "FS base restored");

    /* clone3(CLONE_RSEQ_KTLS) before the parameters are fixed */
    struct raw_thread t;
    CHECK(raw_thread_init(&t, offset) == 0, "thread memory");
    spawned = 0;
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, (uintptr_t)t.tp, &t), EINVAL,
              "clone3(CLONE_RSEQ_KTLS) before any KTLS registration: EINVAL");
    CHECK(!spawned, "no thread was created");

    /* 16: more than one thread at the first registration */
    release = 0;
    long tid = raw_thread_start(&t, 0, parked_thread, NULL);
    CHECK(tid > 0, "start a second thread (without CLONE_RSEQ_KTLS)");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EBUSY,
              "16: first registration while multi-threaded: EBUSY");
    release = 1;
    futex_wake_all(&release);
    raw_thread_join(&t);
    raw_thread_free(&t);

    /* 17: not below TASK_SIZE */
    CHECK_ERR(sys_rseq((void *)(TASK_SIZE - 64), LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EFAULT,
              "17: area crossing TASK_SIZE: EFAULT");
    CHECK_ERR(sys_rseq((void *)KERNEL_ADDR, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EFAULT,
              "17: kernel address: EFAULT");
    /* 18: the writes fault */
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERR(sys_rseq(ro, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EFAULT, "18: read-only area: EFAULT");
    munmap(ro, 4096);
    CHECK_ERR(sys_rseq(ro, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EFAULT, "18: unmapped area: EFAULT");
    CHECK_ERR(sys_rseq(NULL, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EFAULT, "18: NULL: EFAULT");

    /* 7, 9: an existing plain rseq registration */
    CHECK_RET(sys_rseq(a, 32, 0, RSEQ_SIG), 0, "plain rseq registration of the area's head");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "7: KTLS registration over plain rseq with another length: EINVAL");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_KTLS, RSEQ_SIG + 1), EPERM,
              "8: same area and length, another signature: EPERM");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_KTLS, RSEQ_SIG), EBUSY,
              "9: exactly the plain registration again, as KTLS: EBUSY");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "3: KTLS unregistration of a plain registration: EINVAL");
    CHECK_RET(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "plain unregistration");

    /* None of the failures fixed the parameters. */
    CHECK(raw_thread_init(&t, offset) == 0, "thread memory");
    spawned = 0;
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, (uintptr_t)t.tp, &t), EINVAL,
              "failed registrations fixed nothing: clone3(CLONE_RSEQ_KTLS) still EINVAL");
    CHECK(!spawned, "no thread was created");
    raw_thread_free(&t);
}

/* ---- the first successful registration ---- */

static void check_fields(volatile struct ktls_area *a, const char *what)
{
    char buf[160];
    long cpu = sys_getcpu();
    snprintf(buf, sizeof buf, "%s: ktls_live 1, tid, pid", what);
    check(a->ktls_live == KTLS_LIVE && a->tid == (uint32_t)sys_gettid() &&
              a->pid == (uint32_t)getpid(),
          buf, "live %u tid %u pid %u", a->ktls_live, a->tid, a->pid);
    snprintf(buf, sizeof buf, "%s: rseq head (cpu ids, node 0, rseq_cs 0)", what);
    check(a->cpu_id == (uint32_t)cpu && a->cpu_id_start == (uint32_t)cpu && a->node_id == 0 &&
              a->rseq_cs == 0 && a->mm_cid == 0,
          buf, "cpu_id %u cpu_id_start %u node %u rseq_cs %#lx mm_cid %u (cpu %ld)", a->cpu_id,
          a->cpu_id_start, a->node_id, (unsigned long)a->rseq_cs, a->mm_cid, cpu);
    if (fsz >= KTLS_FEATURE_SIZE_LEVEL_2) {
        snprintf(buf, sizeof buf, "%s: uid, euid, gid, egid, sig_pending 0", what);
        check(a->uid == getuid() && a->euid == geteuid() && a->gid == getgid() &&
                  a->egid == getegid() && a->sig_pending == 0,
              buf, "uid %u euid %u gid %u egid %u sig_pending %u", a->uid, a->euid, a->gid,
              a->egid, a->sig_pending);
    }
}

static void first_registration(void)
{
    memset(&my_area, 0, sizeof my_area);
    my_area.rseq_cs = 0x1234; /* garbage the registration must clear */
    CHECK_RET(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), 0,
              "first registration at FS base + offset");
    uint64_t cs = my_area.rseq_cs;
    my_area.rseq_cs = 0;
    check(cs == 0, "registration clears rseq_cs", "rseq_cs %#lx", (unsigned long)cs);
    check_fields(&my_area, "registered area");
}

/* ---- after: the process's parameters are fixed ---- */

static volatile long segv_rax;
static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    long rax = ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX];
    raw_syscall1(SYS_exit_group, rax == -EFAULT ? 42 : 43);
}

static void after_fixing(void)
{
    char *a = (char *)&my_area;
    static char other[256] __attribute__((aligned(64)));

    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EBUSY, "9: the same again: EBUSY");
    CHECK_ERR(sys_rseq(other, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL, "7: another area: EINVAL");
    CHECK_ERR(sys_rseq(a, 100, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL, "7: another length: EINVAL");
    CHECK_ERR(sys_rseq(other, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG + 1), EINVAL,
              "7: another area and signature: EINVAL before EPERM");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG + 1), EPERM,
              "8: another signature: EPERM");
    CHECK_ERR(sys_rseq(a, LEN, 0, RSEQ_SIG), EBUSY,
              "plain rseq call for the same registration: EBUSY");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "RSEQ_FLAG_UNREGISTER alone does not drop a KTLS registration: EINVAL");
    CHECK(my_area.ktls_live == KTLS_LIVE, "still live");

    /* Unregistration checks 3 to 5. */
    CHECK_ERR(sys_rseq(other, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "3: unregister another area: EINVAL");
    CHECK_ERR(sys_rseq(a, 100, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "4: unregister another length: EINVAL");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1), EPERM,
              "5: unregister with another signature: EPERM");
    CHECK_ERR(sys_rseq(a, 100, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1), EINVAL,
              "4 before 5: another length and signature: EINVAL");
    CHECK(my_area.ktls_live == KTLS_LIVE, "still live after the failed unregistrations");

    /* 6: the kernel cannot write the area: EFAULT and SIGSEGV (in a fork child, which
     * inherits the registration). The SIGSEGV handler reports the syscall's result. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa = {0};
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        uintptr_t pg = (uintptr_t)a & ~4095ul;
        raw_syscall3(SYS_mprotect, pg, 4096, PROT_READ);
        long r = sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
        raw_syscall1(SYS_exit_group, r == -EFAULT ? 44 : 45);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 42,
          "6: unregistering an area the kernel cannot write: EFAULT, and SIGSEGV",
          "child status %#x (exit 44: EFAULT without SIGSEGV; 43: SIGSEGV, not EFAULT)", st);

    /* Unregister for real. */
    CHECK_RET(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0,
              "unregister");
    CHECK(my_area.ktls_live == 0, "unregistration: ktls_live 0");
    check(my_area.cpu_id == RSEQ_CPU_ID_UNINITIALIZED && my_area.cpu_id_start == 0 &&
              my_area.node_id == 0 && my_area.mm_cid == 0,
          "unregistration: rseq ids reset", "cpu_id %#x cpu_id_start %u node %u mm_cid %u",
          my_area.cpu_id, my_area.cpu_id_start, my_area.node_id, my_area.mm_cid);
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS | RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "3: unregister twice: EINVAL");

    /* The parameters stay: 12 to 15. */
    CHECK_ERR(rseq_without_fs(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "12: FS base 0: EINVAL");
    CHECK_ERR(sys_rseq(other, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "13: not at FS base + the process's offset: EINVAL");
    CHECK_ERR(sys_rseq(a, 100, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "14: not the process's length: EINVAL");
    CHECK_ERR(sys_rseq(other, 100, RSEQ_FLAG_KTLS, RSEQ_SIG + 1), EINVAL,
              "13 before 14 and 15: EINVAL");
    CHECK_ERR(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG + 1), EPERM,
              "15: not the process's signature: EPERM");
    CHECK_RET(sys_rseq(a, 32, 0, RSEQ_SIG), 0, "plain rseq while KTLS-unregistered works");
    CHECK_RET(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "and unregisters");
    CHECK_RET(sys_rseq(a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), 0, "register again");
    check_fields(&my_area, "registered again");

    /* clone3(CLONE_RSEQ_KTLS) checks (section 7), after Linux's. */
    struct raw_thread t;
    CHECK(raw_thread_init(&t, offset) == 0, "thread memory");
    spawned = 0;
    uint64_t tls = (uintptr_t)t.tp;
    CHECK_ERR(try_clone3(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SETTLS | CLONE_RSEQ_KTLS, tls,
                         &t),
              EINVAL, "clone3: CLONE_RSEQ_KTLS without CLONE_THREAD: EINVAL");
    CHECK_ERR(try_clone3((THREAD_FLAGS & ~(uint64_t)CLONE_SETTLS) | CLONE_RSEQ_KTLS, tls, &t),
              EINVAL, "clone3: CLONE_RSEQ_KTLS without CLONE_SETTLS: EINVAL");
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, 0, &t), EINVAL, "clone3: tls 0: EINVAL");
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, tls + 16, &t), EINVAL,
              "clone3: tls + offset not 64-byte aligned: EINVAL");
    /* An area crossing TASK_SIZE: with the usual negative offset the tls itself is then at or
     * above TASK_SIZE, which Linux's own CLONE_SETTLS check refuses first (EPERM). */
    uint64_t high_tls = TASK_SIZE - 64 - offset;
    CHECK_RET(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, high_tls, &t),
              high_tls >= TASK_SIZE ? -EPERM : -EFAULT,
              "clone3: area crossing TASK_SIZE: EFAULT (EPERM if the tls is beyond it too)");
    char *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS, (uintptr_t)ro + 4096 - offset, &t),
              EFAULT, "clone3: area in a read-only page: EFAULT");
    munmap(ro, 8192);
    CHECK_ERR(try_clone3(THREAD_FLAGS | CLONE_RSEQ_KTLS | (1ull << 39), tls, &t), EINVAL,
              "clone3: an unknown flag next to CLONE_RSEQ_KTLS: EINVAL");
    sleep_ms(20);
    CHECK(!spawned, "clone3: no failed call created a thread");
    CHECK(raw_thread_start(&t, CLONE_RSEQ_KTLS, mark_spawned, NULL) > 0,
          "clone3: the right call works");
    raw_thread_join(&t);
    CHECK(spawned, "clone3: and its thread ran");
    raw_thread_free(&t);
}

int main(void)
{
    pin_to_cpu(0, 0); /* so "the current CPU" holds still */
    fsz = getauxval(AT_KTLS_FEATURE_SIZE);
    unsigned long al = getauxval(AT_KTLS_ALIGN);
    tp = thread_pointer();
    offset = (char *)&my_area - tp;
    if (fsz == 0 || al == 0) {
        printf("mode fallback\n");
        fallback();
        return finish();
    }
    printf("mode ktls\n");
    CHECK(al == KTLS_ALIGN, "AT_KTLS_ALIGN is 64");
    CHECK(fsz == KTLS_FEATURE_SIZE_LEVEL_1 || fsz == KTLS_FEATURE_SIZE_LEVEL_2,
          "AT_KTLS_FEATURE_SIZE is a level's feature size");
    CHECK(((uintptr_t)&my_area & 63) == 0, "the TLS area is 64-byte aligned");
    before_fixing();
    first_registration();
    after_fixing();
    return finish();
}
