/*
 * KTLS compatibility between field sets and kernel levels (spec/ktls.md sections 5, 9, 12).
 *
 * Usage: ktls_compat SET EXPECTED
 *   SET       1: a program built for level 1 registers 76 bytes; 2: for level 2, 100 bytes
 *   EXPECTED  the AT_KTLS_FEATURE_SIZE the kernel must advertise (76 with ktls_level=1, else
 *             100)
 *
 * The whole 128-byte area (the main thread's, and a clone3(CLONE_RSEQ_KTLS) thread's) is filled
 * with a canary before registering; afterwards exactly the fields within min(len, advertised)
 * that the kernel owns are written, everything else still holds the canary. A sig_defer the
 * kernel does not fill (beyond that size) must be ignored: a signal is delivered at once. With
 * level 2 filled, sig_defer holds a signal back (sig_pending 1) until it is cleared.
 *
 * On a kernel without KTLS (Linux) it checks the fallback: registration is EINVAL and the area
 * keeps its canary. The first line says which: "mode ktls" or "mode fallback".
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#define CANARY 0xa5

static __thread struct ktls_area my_area;
static ptrdiff_t offset;
static uint32_t len, filled;

/* What the kernel owns and writes at registration, by offset range. */
struct field {
    const char *name;
    uint32_t offset, size;
};
static const struct field fields[] = {
    {"cpu_id_start", 0, 4}, {"cpu_id", 4, 4},     {"rseq_cs", 8, 8},    {"flags", 16, 4},
    {"node_id", 20, 4},     {"mm_cid", 24, 4},    {"slice_ctrl", 28, 4}, {"ktls_live", 64, 4},
    {"tid", 68, 4},         {"pid", 72, 4},       {"uid", 76, 4},       {"euid", 80, 4},
    {"gid", 84, 4},         {"egid", 88, 4},      {"sig_defer", 92, 4}, {"sig_pending", 96, 4},
};

/* Fills the area with the canary; rseq_cs must be 0 or a descriptor (rseq's rule), and a
 * sig_defer the kernel will read must be 0. */
static void fill_canary(struct ktls_area *a)
{
    memset(a, CANARY, sizeof *a);
    a->rseq_cs = 0;
    if (filled >= 96)
        a->sig_defer = 0;
}

/* Checks an area registered for thread `tid` (cpu: its CPU or -1 to skip). */
static void check_area(const char *who, struct ktls_area *a, uint32_t tid, long cpu)
{
    char what[200];
    uint8_t *b = (uint8_t *)a;
    /* Bytes nobody may write: rseq's tail (33..63) and everything from the filled size on. */
    int untouched = 1;
    for (uint32_t i = 0; i < sizeof *a; i++) {
        if ((i >= 33 && i < 64) || i >= filled)
            if (b[i] != CANARY) {
                if (untouched)
                    printf("  %s: byte %u is %#x, not the canary\n", who, i, b[i]);
                untouched = 0;
            }
    }
    snprintf(what, sizeof what, "%s: rseq's tail and the bytes from %u on hold the canary", who,
             filled);
    CHECK(untouched, what);
    /* Every kernel field within the filled size was written. */
    int written = 1;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        const struct field *d = &fields[f];
        if (d->offset + d->size > filled || !strcmp(d->name, "sig_defer"))
            continue;
        int all_canary = 1;
        for (uint32_t i = 0; i < d->size; i++)
            all_canary &= b[d->offset + i] == CANARY;
        if (all_canary && strcmp(d->name, "rseq_cs") != 0) {
            printf("  %s: %s was not written\n", who, d->name);
            written = 0;
        }
    }
    snprintf(what, sizeof what, "%s: every kernel field below %u was written", who, filled);
    CHECK(written, what);
    snprintf(what, sizeof what, "%s: live, tid, pid", who);
    check(a->ktls_live == KTLS_LIVE && a->tid == tid && a->pid == (uint32_t)getpid(), what,
          "live %u tid %u pid %u", a->ktls_live, a->tid, a->pid);
    snprintf(what, sizeof what, "%s: rseq head: rseq_cs 0, flags, node_id 0, slice_ctrl 0", who);
    check(a->rseq_cs == 0 && (a->flags & ~0x30u) == 0 && a->node_id == 0 && a->slice_ctrl == 0,
          what, "rseq_cs %#lx flags %#x node_id %u slice_ctrl %#x", (unsigned long)a->rseq_cs,
          a->flags, a->node_id, a->slice_ctrl);
    if (cpu >= 0) {
        snprintf(what, sizeof what, "%s: cpu_id and cpu_id_start", who);
        check(a->cpu_id == (uint32_t)cpu && a->cpu_id_start == (uint32_t)cpu, what,
              "cpu_id %u cpu_id_start %u, CPU %ld", a->cpu_id, a->cpu_id_start, cpu);
    }
    if (filled >= KTLS_FEATURE_SIZE_LEVEL_2) {
        snprintf(what, sizeof what, "%s: level 2: uid, euid, gid, egid, sig_pending 0", who);
        check(a->uid == getuid() && a->euid == geteuid() && a->gid == getgid() &&
                  a->egid == getegid() && a->sig_pending == 0,
              what, "uid %u euid %u gid %u egid %u sig_pending %u", a->uid, a->euid, a->gid,
              a->egid, a->sig_pending);
    }
}

static volatile int usr1;
static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

static void test_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    long tid = sys_gettid(), pid = getpid();
    if (filled < KTLS_FEATURE_SIZE_LEVEL_2) {
        /* sig_defer is not ours to honour: it holds the canary (nonzero) or is not there. */
        usr1 = 0;
        raw_syscall3(SYS_tgkill, pid, tid, SIGUSR1);
        CHECK(usr1 == 1, "sig_defer beyond the filled size is ignored: the signal came at once");
        return;
    }
    volatile struct ktls_area *a = &my_area;
    usr1 = 0;
    a->sig_defer = 1;
    raw_syscall3(SYS_tgkill, pid, tid, SIGUSR1);
    CHECK(usr1 == 0, "sig_defer 1 holds the signal back");
    CHECK(a->sig_pending == 1, "and sets sig_pending");
    a->sig_defer = 0;
    if (a->sig_pending)
        raw_syscall0(SYS_sched_yield);
    CHECK(usr1 == 1, "after clearing sig_defer, a syscall delivers it");
    CHECK(a->sig_pending == 0, "and sig_pending is 0 again");
}

static int thread_fn(void *unused)
{
    (void)unused;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "1") && strcmp(argv[1], "2"))) {
        printf("FAIL usage: ktls_compat 1|2 EXPECTED_FEATURE_SIZE\n");
        return 2;
    }
    int set = atoi(argv[1]);
    unsigned long expected = strtoul(argv[2], NULL, 10);
    len = set == 1 ? KTLS_FEATURE_SIZE_LEVEL_1 : KTLS_FEATURE_SIZE_LEVEL_2;
    offset = (char *)&my_area - thread_pointer();
    pin_to_cpu(0, 0);
    unsigned long fsz = getauxval(AT_KTLS_FEATURE_SIZE);
    if (fsz == 0 || getauxval(AT_KTLS_ALIGN) == 0) {
        printf("mode fallback\n");
        filled = 0;
        fill_canary(&my_area);
        CHECK_ERR(sys_rseq(&my_area, len, RSEQ_FLAG_KTLS, RSEQ_SIG), EINVAL,
                  "fallback: KTLS registration is EINVAL");
        int untouched = 1;
        for (size_t i = 16; i < sizeof my_area; i++)
            untouched &= ((uint8_t *)&my_area)[i] == CANARY;
        CHECK(untouched, "fallback: the area keeps its canary");
        return finish();
    }
    printf("mode ktls\n");
    printf("program level %d registers %u bytes\n", set, len);
    check(fsz == expected, "AT_KTLS_FEATURE_SIZE is as expected", "%lu, expected %lu", fsz,
          expected);
    filled = len < fsz ? len : (uint32_t)fsz;
    fill_canary(&my_area);
    CHECK_RET(sys_rseq(&my_area, len, RSEQ_FLAG_KTLS, RSEQ_SIG), 0, "register");
    check_area("main thread", &my_area, (uint32_t)sys_gettid(), sys_getcpu());

    struct raw_thread t;
    CHECK(raw_thread_init(&t, offset) == 0, "thread memory");
    fill_canary(raw_thread_area(&t, offset));
    long tid = raw_thread_start(&t, CLONE_RSEQ_KTLS, thread_fn, NULL);
    CHECK(tid > 0, "clone3(CLONE_RSEQ_KTLS)");
    raw_thread_join(&t);
    check_area("clone3 thread", raw_thread_area(&t, offset), (uint32_t)tid, -1);
    raw_thread_free(&t);

    test_signals();
    return finish();
}
