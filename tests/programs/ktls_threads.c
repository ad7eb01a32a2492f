/*
 * KTLS areas of threads and processes: the main thread registers its area (in its static TLS
 * block), 16 threads made with clone3(CLONE_RSEQ_KTLS | the usual thread flags) read tid, pid and
 * the credentials from their areas at their first instructions, before any system call, and
 * find what the system calls say; a thread made without the flag has no live area until it
 * registers it itself (the libc fallback); fork and vfork children see their own ids.
 *
 * On a kernel without KTLS (Linux) it checks the fallback: the flag is refused (EINVAL), threads
 * are made without it, their areas never become live. The first line says which: "mode ktls"
 * or "mode fallback".
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#define LEN KTLS_AREA_SIZE
#define NTHREADS 16

static __thread struct ktls_area my_area;
static int ktls;
static unsigned long fsz;
static ptrdiff_t offset;

/* What a thread saw: first its area (before any syscall), then the syscalls. */
struct report {
    uint32_t live, tid, pid, uid, euid, gid, egid, cpu_id, mm_cid, sig_pending;
    char *tp;
    long reg, live_after, tid_after;
    long sys_tid, sys_pid, sys_uid, sys_euid, sys_gid, sys_egid, sys_cpu;
};

static struct raw_thread threads[NTHREADS + 1];
static struct report reports[NTHREADS + 1];
static long tids[NTHREADS + 1]; /* what clone3 returned */
static volatile int alive, go;

static int thread_main(void *p)
{
    struct report *r = p;
    /* First instructions: read the area through the thread pointer. */
    char *tp = thread_pointer();
    volatile struct ktls_area *a = (volatile struct ktls_area *)(tp + offset);
    r->live = a->ktls_live;
    r->tid = a->tid;
    r->pid = a->pid;
    r->cpu_id = a->cpu_id;
    r->mm_cid = a->mm_cid;
    r->uid = a->uid;
    r->euid = a->euid;
    r->gid = a->gid;
    r->egid = a->egid;
    r->sig_pending = a->sig_pending;
    r->tp = tp;
    /* Then the system calls. */
    r->sys_tid = sys_gettid();
    r->sys_pid = raw_syscall0(SYS_getpid);
    r->sys_uid = raw_syscall0(SYS_getuid);
    r->sys_euid = raw_syscall0(SYS_geteuid);
    r->sys_gid = raw_syscall0(SYS_getgid);
    r->sys_egid = raw_syscall0(SYS_getegid);
    r->sys_cpu = sys_getcpu();
    /* Stay alive until every thread is up, so the areas are checked while all are live. */
    __atomic_add_fetch(&alive, 1, __ATOMIC_SEQ_CST);
    futex_wake_all(&alive);
    futex_wait_while(&go, 0);
    return 0;
}

/* The fallback path: a thread made without CLONE_RSEQ_KTLS registers its area itself. */
static int self_registering_thread(void *p)
{
    struct report *r = p;
    char *tp = thread_pointer();
    volatile struct ktls_area *a = (volatile struct ktls_area *)(tp + offset);
    r->live = a->ktls_live;
    r->tp = tp;
    r->reg = sys_rseq((void *)a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
    r->live_after = a->ktls_live;
    r->tid_after = a->tid;
    r->sys_tid = sys_gettid();
    r->sys_pid = raw_syscall0(SYS_getpid);
    r->pid = a->pid;
    return 0;
}

static void check_thread_reports(void)
{
    int live = 1, ids = 1, creds = 1, tps = 1, cpus = 1, cids = 1, pending = 1;
    for (int i = 0; i < NTHREADS; i++) {
        struct report *r = &reports[i];
        live &= r->live == KTLS_LIVE;
        ids &= r->tid == (uint32_t)r->sys_tid && r->sys_tid == tids[i] &&
               r->pid == (uint32_t)r->sys_pid && r->sys_pid == getpid();
        if (fsz >= KTLS_FEATURE_SIZE_LEVEL_2) {
            creds &= r->uid == (uint32_t)r->sys_uid && r->euid == (uint32_t)r->sys_euid &&
                     r->gid == (uint32_t)r->sys_gid && r->egid == (uint32_t)r->sys_egid;
            pending &= r->sig_pending == 0;
        }
        tps &= r->tp == threads[i].tp;
        cpus &= r->cpu_id < 64;
        cids &= r->mm_cid <= NTHREADS;
        if (!(r->live == KTLS_LIVE && r->tid == (uint32_t)r->sys_tid))
            printf("  thread %d: area live %u tid %u pid %u; gettid %ld getpid %ld\n", i, r->live,
                   r->tid, r->pid, r->sys_tid, r->sys_pid);
    }
    CHECK(tps, "each thread's FS base is the tls it was given");
    CHECK(live, "each thread's area is live at its first instruction");
    CHECK(ids, "each thread's area has its tid and pid (gettid, getpid, CLONE_PARENT_SETTID)");
    if (fsz >= KTLS_FEATURE_SIZE_LEVEL_2) {
        CHECK(creds, "each thread's area has uid, euid, gid, egid as the syscalls say");
        CHECK(pending, "each thread's sig_pending is 0");
    }
    CHECK(cpus, "each thread's cpu_id is a CPU number");
    CHECK(cids, "each thread's mm_cid is below the number of threads");
}

static void test_ktls_threads(void)
{
    alive = 0;
    go = 0;
    int started = 1;
    for (int i = 0; i < NTHREADS; i++) {
        struct raw_thread *t = &threads[i];
        if (raw_thread_init(t, offset) != 0) {
            started = 0;
            break;
        }
        /* The libc's part: zero the area (mmap did). The kernel must fill it. */
        long tid = raw_thread_start(t, CLONE_RSEQ_KTLS, thread_main, &reports[i]);
        started &= tid > 0;
        tids[i] = tid;
    }
    CHECK(started, "16 threads with clone3(CLONE_RSEQ_KTLS | thread flags)");
    int n;
    while ((n = alive) < NTHREADS)
        futex_wait_while(&alive, n);
    /* All alive: their areas, seen from here. */
    int areas = 1;
    for (int i = 0; i < NTHREADS; i++) {
        struct ktls_area *a = raw_thread_area(&threads[i], offset);
        areas &= a->ktls_live == KTLS_LIVE && (long)a->tid == threads[i].tid &&
                 a->pid == (uint32_t)getpid();
    }
    CHECK(areas, "the main thread sees every live area with its thread's tid");
    go = 1;
    futex_wake_all(&go);
    for (int i = 0; i < NTHREADS; i++)
        raw_thread_join(&threads[i]);
    check_thread_reports();
    for (int i = 0; i < NTHREADS; i++)
        raw_thread_free(&threads[i]);
}

static void test_self_registering_thread(void)
{
    struct raw_thread *t = &threads[NTHREADS];
    struct report *r = &reports[NTHREADS];
    CHECK(raw_thread_init(t, offset) == 0, "thread memory");
    long tid = raw_thread_start(t, 0, self_registering_thread, r);
    CHECK(tid > 0, "a thread made without CLONE_RSEQ_KTLS");
    raw_thread_join(t);
    CHECK(r->live == 0, "its area is not live (ktls_live 0)");
    CHECK(r->tp == t->tp, "its FS base is its tls");
    CHECK_RET(r->reg, 0, "registering its area itself (multi-threaded, at FS base + offset) works");
    CHECK(r->live_after == KTLS_LIVE, "then its area is live");
    CHECK(r->tid_after == r->sys_tid && r->sys_tid == tid && r->pid == (uint32_t)getpid(),
          "with its tid and pid");
    raw_thread_free(t);
}

/* A fork child (raw clone, no libc code in between) reads its copy of the area first. */
static int fork_child(void *unused)
{
    (void)unused;
    volatile struct ktls_area *a = &my_area;
    uint32_t live = a->ktls_live, tid = a->tid, pid = a->pid, cpu = a->cpu_id;
    int ok = live == KTLS_LIVE && tid == (uint32_t)sys_gettid() &&
             pid == (uint32_t)raw_syscall0(SYS_getpid) && tid == pid;
    ok &= cpu == (uint32_t)sys_getcpu();
    return ok ? 0 : 1;
}

static void test_fork(void)
{
    fflush(stdout);
    pin_to_cpu(0, 0); /* the child's CPU holds still */
    long pid = raw_clone_fn(SIGCHLD, NULL, NULL, NULL, 0, fork_child, NULL);
    int st = 0;
    waitpid(pid, &st, 0);
    set_affinity(0, ~0ull);
    CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "fork child: its copy of the area has its tid, pid and CPU at its first instruction");
    CHECK(my_area.tid == (uint32_t)sys_gettid() && my_area.pid == (uint32_t)getpid(),
          "parent's area unchanged by the fork");
}

static int vfork_child(void *p)
{
    uint32_t *seen = p;
    volatile struct ktls_area *a = &my_area; /* the parent's area: shared memory */
    seen[0] = a->ktls_live;
    seen[1] = a->tid;
    seen[2] = a->pid;
    seen[3] = sys_gettid();
    return 0;
}

static void test_vfork(void)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    static uint32_t seen[4];
    /* A vfork child shares our memory and our FS base (no CLONE_SETTLS): it runs on our area. */
    long pid = raw_clone_fn(CLONE_VM | CLONE_VFORK | SIGCHLD, stack + sizeof stack, NULL, NULL, 0,
                            vfork_child, seen);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(pid > 0 && WIFEXITED(st), "vfork child ran");
    check(seen[0] == KTLS_LIVE && seen[1] == seen[3] && seen[2] == seen[3] && seen[3] == pid,
          "vfork child: the shared area had the child's tid and pid while it ran",
          "live %u tid %u pid %u, child %ld", seen[0], seen[1], seen[2], pid);
    check(my_area.tid == (uint32_t)sys_gettid() && my_area.pid == (uint32_t)getpid(),
          "vfork parent: its area says who it is again when vfork returns", "tid %u pid %u",
          my_area.tid, my_area.pid);
}

static int fallback_thread(void *p)
{
    struct report *r = p;
    char *tp = thread_pointer();
    volatile struct ktls_area *a = (volatile struct ktls_area *)(tp + offset);
    r->live = a->ktls_live;
    r->tp = tp;
    r->reg = sys_rseq((void *)a, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
    r->live_after = a->ktls_live;
    r->sys_tid = sys_gettid();
    return 0;
}

static void fallback(void)
{
    CHECK_ERR(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
              "fallback: registering the main thread's area is EINVAL");
    CHECK(my_area.ktls_live == 0, "fallback: the main thread's area is not live");
    struct raw_thread *t = &threads[0];
    CHECK(raw_thread_init(t, offset) == 0, "fallback: thread memory");
    CHECK_ERR(raw_thread_start(t, CLONE_RSEQ_KTLS, fallback_thread, &reports[0]), EINVAL,
              "fallback: clone3(CLONE_RSEQ_KTLS) is EINVAL");
    raw_thread_free(t);
    int started = 1, live = 0, reg = 1, tids = 1, tps = 1;
    for (int i = 0; i < NTHREADS; i++) {
        t = &threads[i];
        started &= raw_thread_init(t, offset) == 0;
        long tid = raw_thread_start(t, 0, fallback_thread, &reports[i]);
        started &= tid > 0;
        raw_thread_join(t);
        live |= reports[i].live | reports[i].live_after;
        reg &= reports[i].reg == -EINVAL;
        tids &= reports[i].sys_tid == tid;
        tps &= reports[i].tp == t->tp;
        raw_thread_free(t);
    }
    CHECK(started, "fallback: 16 threads without the flag");
    CHECK(tps, "fallback: each thread's FS base is its tls");
    CHECK(!live, "fallback: no thread's area is live");
    CHECK(reg, "fallback: each thread's own registration is EINVAL");
    CHECK(tids, "fallback: gettid agrees with CLONE_PARENT_SETTID");
}

int main(void)
{
    fsz = getauxval(AT_KTLS_FEATURE_SIZE);
    ktls = fsz != 0 && getauxval(AT_KTLS_ALIGN) != 0;
    offset = (char *)&my_area - thread_pointer();
    if (!ktls) {
        printf("mode fallback\n");
        fallback();
        return finish();
    }
    printf("mode ktls\n");
    CHECK_RET(sys_rseq(&my_area, LEN, RSEQ_FLAG_KTLS, RSEQ_SIG), 0,
              "register the main thread's area");
    CHECK(my_area.ktls_live == KTLS_LIVE && my_area.tid == (uint32_t)sys_gettid() &&
              my_area.pid == (uint32_t)getpid(),
          "main thread: live, tid, pid");
    test_ktls_threads();
    test_self_registering_thread();
    test_fork();
    test_vfork();
    return finish();
}
