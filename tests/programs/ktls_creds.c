/*
 * Credentials in KTLS areas (level 2): ktls applies set*id to the whole process and writes the
 * new ids into every live area before the call returns. The main thread and 4 threads made with
 * clone3(CLONE_RSEQ_KTLS) are live; one thread calls setresgid(2000, 2000, 2000), another
 * setresuid(1000, 1000, 1000), a third setresuid(0, 0, 0) (EPERM now); after each, every thread
 * reads uid, euid, gid, egid from its area and getresuid/getresgid, and they must agree.
 *
 * On a kernel without KTLS (Linux, where raw set*id calls are per thread anyway) it checks the
 * fallback only: registration and clone3(CLONE_RSEQ_KTLS) are EINVAL. The first line says
 * which: "mode ktls" or "mode fallback". Needs to start as root (uid 0), like the harness runs.
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#define LEN KTLS_AREA_SIZE
#define NTHREADS 4

static __thread struct ktls_area my_area;
static ptrdiff_t offset;

enum command { REPORT, SETRESGID_2000, SETRESUID_1000, SETRESUID_0, EXIT };

static volatile int phase, acks;
static enum command cmds[16];
static int targets[16];
static long results[16];

struct ids {
    uint32_t live, uid, euid, gid, egid;
    unsigned int ruid, suid_euid, suid, rgid, egid_sys, sgid;
    long r1, r2;
};
static struct ids reports[NTHREADS + 1];

static void report(int i)
{
    volatile struct ktls_area *a = (volatile struct ktls_area *)(thread_pointer() + offset);
    struct ids *r = &reports[i];
    r->live = a->ktls_live;
    r->uid = a->uid;
    r->euid = a->euid;
    r->gid = a->gid;
    r->egid = a->egid;
    r->r1 = raw_syscall3(SYS_getresuid, &r->ruid, &r->suid_euid, &r->suid);
    r->r2 = raw_syscall3(SYS_getresgid, &r->rgid, &r->egid_sys, &r->sgid);
}

static int worker(void *p)
{
    int i = (int)(intptr_t)p;
    int seen = 0;
    for (;;) {
        futex_wait_while(&phase, seen);
        seen = phase;
        enum command c = cmds[seen];
        if (c == EXIT)
            return 0;
        if (c == REPORT)
            report(i);
        else if (targets[seen] == i && c == SETRESGID_2000)
            results[seen] = raw_syscall3(SYS_setresgid, 2000, 2000, 2000);
        else if (targets[seen] == i && c == SETRESUID_1000)
            results[seen] = raw_syscall3(SYS_setresuid, 1000, 1000, 1000);
        else if (targets[seen] == i && c == SETRESUID_0)
            results[seen] = raw_syscall3(SYS_setresuid, 0, 0, 0);
        __atomic_add_fetch(&acks, 1, __ATOMIC_SEQ_CST);
        futex_wake_all(&acks);
    }
}

/* Runs one command in every worker (the target acts, the others only acknowledge). */
static long run_phase(enum command c, int target)
{
    int p = phase + 1;
    cmds[p] = c;
    targets[p] = target;
    acks = 0;
    phase = p;
    futex_wake_all(&phase);
    if (c == EXIT)
        return 0; /* the workers exit without acknowledging */
    int n;
    while ((n = acks) < NTHREADS)
        futex_wait_while(&acks, n);
    return results[p];
}

/* Every thread (and the main thread, index NTHREADS) reports; all must show these ids. */
static void check_everyone(const char *when, unsigned int uid, unsigned int gid)
{
    run_phase(REPORT, -1);
    report(NTHREADS);
    int areas = 1, sys = 1, live = 1;
    for (int i = 0; i <= NTHREADS; i++) {
        struct ids *r = &reports[i];
        live &= r->live == KTLS_LIVE;
        areas &= r->uid == uid && r->euid == uid && r->gid == gid && r->egid == gid;
        sys &= r->r1 == 0 && r->r2 == 0 && r->ruid == uid && r->suid_euid == uid &&
               r->suid == uid && r->rgid == gid && r->egid_sys == gid && r->sgid == gid;
        if (r->uid != uid || r->euid != uid || r->gid != gid || r->egid != gid)
            printf("  %s: thread %d's area: uid %u euid %u gid %u egid %u\n", when, i, r->uid,
                   r->euid, r->gid, r->egid);
    }
    char what[160];
    snprintf(what, sizeof what, "%s: every area is live", when);
    CHECK(live, what);
    snprintf(what, sizeof what, "%s: every area has uid = euid = %u, gid = egid = %u", when, uid,
             gid);
    CHECK(areas, what);
    snprintf(what, sizeof what, "%s: getresuid/getresgid agree in every thread", when);
    CHECK(sys, what);
}

static void fallback(void)
{
    CHECK_ERR(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "fallback: KTLS registration is EINVAL");
    struct raw_thread t;
    CHECK(raw_thread_init(&t, offset) == 0, "fallback: thread memory");
    CHECK_ERR(raw_thread_start(&t, CLONE_RSEQ_KTLS, worker, NULL), EINVAL,
              "fallback: clone3(CLONE_RSEQ_KTLS) is EINVAL");
    raw_thread_free(&t);
    CHECK(my_area.ktls_live == 0 && my_area.uid == 0, "fallback: the area stays zero");
}

int main(void)
{
    offset = (char *)&my_area - thread_pointer();
    unsigned long fsz = getauxval(AT_KTLS_FEATURE_SIZE);
    CHECK(getuid() == 0 && geteuid() == 0 && getgid() == 0, "starts as root");
    if (fsz == 0 || getauxval(AT_KTLS_ALIGN) == 0) {
        printf("mode fallback\n");
        fallback();
        return finish();
    }
    printf("mode ktls\n");
    check(fsz >= KTLS_FEATURE_SIZE_LEVEL_2, "the kernel fills level 2 (credentials)",
          "AT_KTLS_FEATURE_SIZE %lu", fsz);
    CHECK_RET(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), 0,
              "register the main thread's area");
    static struct raw_thread th[NTHREADS];
    int started = 1;
    for (int i = 0; i < NTHREADS; i++) {
        started &= raw_thread_init(&th[i], offset) == 0;
        started &= raw_thread_start(&th[i], CLONE_RSEQ_KTLS, worker, (void *)(intptr_t)i) > 0;
    }
    CHECK(started, "4 threads with clone3(CLONE_RSEQ_KTLS)");
    if (!started)
        return finish();

    check_everyone("at the start", 0, 0);
    CHECK_RET(run_phase(SETRESGID_2000, 1), 0, "thread 1: setresgid(2000, 2000, 2000)");
    check_everyone("after setresgid", 0, 2000);
    CHECK_RET(run_phase(SETRESUID_1000, 2), 0, "thread 2: setresuid(1000, 1000, 1000)");
    check_everyone("after setresuid", 1000, 2000);
    CHECK_ERR(run_phase(SETRESUID_0, 3), EPERM, "thread 3: setresuid(0, 0, 0) is now EPERM");
    check_everyone("after the refused setresuid", 1000, 2000);

    run_phase(EXIT, -1);
    for (int i = 0; i < NTHREADS; i++)
        raw_thread_join(&th[i]);
    return finish();
}
