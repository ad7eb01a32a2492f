/*
 * rseq critical sections are aborted (the thread resumes at the abort handler, rseq_cs is 0) when
 * the thread is preempted, when a signal is delivered to it, and when it migrates to another
 * CPU, like Linux's tools/testing/selftests/rseq do. Needs two CPUs (ktls: --smp 2).
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#include <pthread.h>
#include <ucontext.h>

static __thread struct rseq_area rs;
static uint64_t per_ms;
static volatile uint32_t in_cs;  /* set by rseq_spin inside the section */
static volatile int armed, sent; /* round handshakes with the helper thread */
static volatile int stop;
static volatile long main_tid;

static uint64_t deadline_ms(long ms)
{
    return rdtsc() + per_ms * (uint64_t)ms;
}

/* ---- preemption ---- */

static volatile long spins;
static volatile int spinner_up;

static void *spinner(void *unused)
{
    (void)unused;
    pin_to_cpu(0, 0);
    spinner_up = 1;
    while (!stop)
        spins++;
    return NULL;
}

static void test_preemption(void)
{
    pthread_t th;
    stop = 0;
    pthread_create(&th, NULL, spinner, NULL);
    while (!spinner_up)
        sched_yield();
    int aborted = 1, cleared = 1;
    for (int round = 0; round < 3; round++) {
        int r = rseq_spin(&rs, &rseq_spin_cs, &in_cs, deadline_ms(3000));
        aborted &= r == 1;
        cleared &= rs.rseq_cs == 0;
    }
    stop = 1;
    pthread_join(th, NULL);
    CHECK(aborted, "a section spinning on a CPU shared with another thread is aborted (3 rounds)");
    CHECK(spins > 0, "the other thread ran");
    CHECK(cleared, "the abort leaves rseq_cs 0");
    CHECK(rs.cpu_id == 0 && sys_getcpu() == 0, "still on CPU 0");
}

/* ---- signal delivery ---- */

static volatile uint64_t handler_rip;
static volatile int handled;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    handler_rip = ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
    handled++;
}

static void *signaller(void *unused)
{
    (void)unused;
    pin_to_cpu(0, 1);
    for (int k = 1; !stop; k++) {
        while (!stop && !(armed == k && in_cs))
            ;
        if (stop)
            break;
        raw_syscall3(SYS_tgkill, getpid(), main_tid, SIGUSR1);
        sent = k;
    }
    return NULL;
}

static void test_signal(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t th;
    stop = 0;
    sent = 0;
    armed = 0;
    in_cs = 0;
    pthread_create(&th, NULL, signaller, NULL);
    int good = 0, bad = 0;
    uint64_t start = rseq_spin_cs.start_ip, end = start + rseq_spin_cs.post_commit_offset;
    for (int k = 1; k <= 100 && !good && !bad; k++) {
        in_cs = 0;
        handled = 0;
        handler_rip = 0;
        armed = k;
        int r = rseq_spin(&rs, &rseq_spin_cs, &in_cs, deadline_ms(3000));
        while (sent != k)
            ;
        uint64_t give_up = deadline_ms(3000);
        while (!handled && rdtsc() < give_up)
            ;
        if (!handled) {
            printf("FAIL signal round %d: the handler never ran\n", k);
            bad = 1;
        } else if (r == 1 && handler_rip == rseq_spin_cs.abort_ip) {
            good = 1;
        } else if (r == 0 || (handler_rip >= start && handler_rip < end)) {
            printf("FAIL signal round %d: aborted %d, handler saw rip at section%+ld "
                   "(abort handler at section%+ld)\n",
                   k, r, (long)(handler_rip - start), (long)(rseq_spin_cs.abort_ip - start));
            bad = 1;
        }
        /* else: preempted before the signal came (only natively, on a busy host): again */
    }
    stop = 1;
    pthread_join(th, NULL);
    CHECK(good && !bad, "a signal aborts the section: the handler's context has rip = abort_ip");
    CHECK(rs.rseq_cs == 0, "rseq_cs is 0 after the signal abort");
    signal(SIGUSR1, SIG_DFL);
}

/* ---- migration ---- */

static void *migrator(void *unused)
{
    (void)unused;
    pin_to_cpu(0, 1);
    for (int k = 1; !stop; k++) {
        while (!stop && !(armed == k && in_cs))
            ;
        if (stop)
            break;
        pin_to_cpu(main_tid, 1);
        sent = k;
    }
    return NULL;
}

static void test_migration(void)
{
    pthread_t th;
    stop = 0;
    sent = 0;
    armed = 0; /* not the signal test's last round */
    in_cs = 0;
    pthread_create(&th, NULL, migrator, NULL);
    int ok_abort = 1, ok_ids = 1, ok_back = 1;
    for (int k = 1; k <= 3; k++) {
        pin_to_cpu(0, 0);
        ok_back &= sys_getcpu() == 0 && rs.cpu_id == 0 && rs.cpu_id_start == 0;
        in_cs = 0;
        armed = k;
        int r = rseq_spin(&rs, &rseq_spin_cs, &in_cs, deadline_ms(3000));
        while (sent != k)
            ;
        long cpu = sys_getcpu();
        uint32_t id = rs.cpu_id, id_start = rs.cpu_id_start;
        ok_abort &= r == 1;
        ok_ids &= cpu == 1 && id == 1 && id_start == 1;
        if (r != 1 || cpu != 1 || id != 1 || id_start != 1)
            printf("  migration round %d: aborted %d, getcpu %ld, cpu_id %u, cpu_id_start %u\n",
                   k, r, cpu, id, id_start);
    }
    stop = 1;
    pthread_join(th, NULL);
    pin_to_cpu(0, 0);
    CHECK(ok_back, "pinned back to CPU 0, cpu_id and cpu_id_start say 0");
    CHECK(ok_abort, "moving the thread to CPU 1 (sched_setaffinity from another thread) aborts the "
                    "section");
    CHECK(ok_ids, "after the migration getcpu, cpu_id and cpu_id_start say 1");
}

int main(void)
{
    long ncpu = allowed_cpus();
    CHECK_RET(pin_to_cpu(0, 0), 0, "pin to CPU 0");
    check(ncpu >= 2, "at least 2 CPUs", "%ld CPU(s): run with --smp 2 or more", ncpu);
    main_tid = sys_gettid();
    per_ms = tsc_per_ms();
    CHECK_RET(sys_rseq(&rs, 32, 0, RSEQ_SIG), 0, "register the main thread's TLS area");
    CHECK(rs.cpu_id == 0, "cpu_id 0");
    test_preemption();
    if (ncpu >= 2) {
        test_signal();
        test_migration();
    }
    CHECK_RET(sys_rseq(&rs, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "unregister");
    return finish();
}
