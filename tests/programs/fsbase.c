/*
 * User FS and GS bases survive syscalls, page faults and timer interrupts.
 *
 * For FS and for GS, and for each way of setting the base (the arch_prctl syscall, and the
 * user-mode WRFSBASE/WRGSBASE instructions when AT_HWCAP2 has HWCAP2_FSGSBASE), the program
 * sets the base to 0, to a garbage canonical address and to a mapped page holding a magic
 * value; then, with no libc call while the base is bogus (libc uses %fs), it makes raw
 * syscalls, touches fresh .bss pages and spins long enough for timer interrupts, reads the
 * base back (ARCH_GET_* and RDFSBASE/RDGSBASE) at each step, and loads through the segment.
 * The raw write goes to stdout (stdio's buffer is flushed after every check line), so the
 * harness sees it in place when it compares the output with the native run.
 * The kernel uses GS itself (swapgs), so user GS must survive as well as FS.
 */
#include "ktls_test.h"

#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#define HWCAP2_FSGSBASE (1UL << 1)

#define PAGE 4096
#define PAGES_PER_VARIANT 64
#define MAX_VARIANTS 12
#define SPIN_NS 25000000L /* 25 ms of user-mode spinning per variant */
#define MAGIC 0x6b746c73f5ba5e00UL

/* Fresh zero pages for the page faults: PAGES_PER_VARIANT per variant, each touched once. */
static char fresh[MAX_VARIANTS * PAGES_PER_VARIANT][PAGE] __attribute__((aligned(PAGE)));

enum seg { FS, GS };
enum how { BY_SYSCALL, BY_INSN };

struct result {
    long set_ret;
    long pid;
    long write_ret;
    long get_ret[3];
    unsigned long by_syscall[3]; /* ARCH_GET_* after the syscalls, faults and spin */
    unsigned long by_insn[3];    /* RDFSBASE/RDGSBASE at the same points (when available) */
    unsigned long loaded;        /* %fs:0 / %gs:0 when the base is the magic page */
    long spins;
    long restore_ret;
};

static inline __attribute__((always_inline)) unsigned long rd_base(enum seg s)
{
    unsigned long v;
    if (s == FS)
        __asm__ volatile("rdfsbase %0" : "=r"(v));
    else
        __asm__ volatile("rdgsbase %0" : "=r"(v));
    return v;
}

static inline __attribute__((always_inline)) void wr_base(enum seg s, unsigned long v)
{
    if (s == FS)
        __asm__ volatile("wrfsbase %0" ::"r"(v) : "memory");
    else
        __asm__ volatile("wrgsbase %0" ::"r"(v) : "memory");
}

static inline __attribute__((always_inline)) long mono_ns(void)
{
    struct timespec ts;
    raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/*
 * Runs with the base bogus from the set to the restore: only raw syscalls and plain memory
 * accesses in here (no libc, no stack protector, nothing that reads %fs).
 */
static __attribute__((noinline, no_stack_protector)) void
exercise(enum seg s, enum how how, int insn_ok, unsigned long value, unsigned long restore,
         int magic_page, char (*pages)[PAGE], const char *msg, long msg_len, struct result *r)
{
    long get_code = s == FS ? ARCH_GET_FS : ARCH_GET_GS;
    long set_code = s == FS ? ARCH_SET_FS : ARCH_SET_GS;
    unsigned long got;

    if (how == BY_SYSCALL) {
        r->set_ret = raw_syscall2(SYS_arch_prctl, set_code, value);
    } else {
        wr_base(s, value);
        r->set_ret = 0;
    }

    /* 1: syscalls. */
    r->pid = raw_syscall0(SYS_getpid);
    r->write_ret = raw_syscall3(SYS_write, 1, msg, msg_len);
    got = 0;
    r->get_ret[0] = raw_syscall2(SYS_arch_prctl, get_code, &got);
    r->by_syscall[0] = got;
    if (insn_ok)
        r->by_insn[0] = rd_base(s);

    /* 2: page faults on fresh .bss pages. */
    for (int i = 0; i < PAGES_PER_VARIANT; i++)
        ((volatile char *)pages[i])[i % PAGE] = 1;
    got = 0;
    r->get_ret[1] = raw_syscall2(SYS_arch_prctl, get_code, &got);
    r->by_syscall[1] = got;
    if (insn_ok)
        r->by_insn[1] = rd_base(s);

    /* 3: spin in user mode long enough for timer interrupts. */
    long start = mono_ns();
    long spins = 0;
    do {
        for (volatile int k = 0; k < 20000; k++)
            ;
        spins++;
    } while (mono_ns() - start < SPIN_NS);
    r->spins = spins;
    if (insn_ok)
        r->by_insn[2] = rd_base(s);
    if (magic_page) {
        unsigned long v;
        if (s == FS)
            __asm__ volatile("mov %%fs:0, %0" : "=r"(v));
        else
            __asm__ volatile("mov %%gs:0, %0" : "=r"(v));
        r->loaded = v;
    }
    got = 0;
    r->get_ret[2] = raw_syscall2(SYS_arch_prctl, get_code, &got);
    r->by_syscall[2] = got;

    r->restore_ret = raw_syscall2(SYS_arch_prctl, set_code, restore);
}

static const char *const stage[3] = {"syscalls", "page faults", "timer interrupts"};

int main(void)
{
    unsigned long hwcap2 = getauxval(AT_HWCAP2);
    int insn_ok = (hwcap2 & HWCAP2_FSGSBASE) != 0;
    long pid = getpid();

    unsigned long fs0 = 0, gs0 = 1;
    CHECK_RET(raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs0), 0, "arch_prctl(ARCH_GET_FS)");
    unsigned long self;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    CHECK(fs0 == self && fs0 != 0, "the FS base is the thread pointer (%fs:0 self pointer)");
    CHECK_RET(raw_syscall2(SYS_arch_prctl, ARCH_GET_GS, &gs0), 0, "arch_prctl(ARCH_GET_GS)");
    CHECK(gs0 == 0, "the initial GS base is 0");
    if (insn_ok) {
        CHECK(rd_base(FS) == fs0, "rdfsbase agrees with ARCH_GET_FS");
        CHECK(rd_base(GS) == gs0, "rdgsbase agrees with ARCH_GET_GS");
    } else {
        printf("skip rdfsbase/wrfsbase: AT_HWCAP2 lacks HWCAP2_FSGSBASE\n");
    }

    unsigned long *magic = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(magic != MAP_FAILED, "mmap the magic page");
    magic[0] = MAGIC;

    const struct {
        unsigned long value;
        const char *name;
        int magic;
    } values[] = {
        {0, "0", 0},
        {0x1234567000UL, "0x1234567000", 0},
        {(unsigned long)magic, "a page holding a magic value", 1},
    };
    int variant = 0;
    for (int s = FS; s <= GS; s++) {
        const char *sn = s == FS ? "FS" : "GS";
        unsigned long restore = s == FS ? fs0 : gs0;
        for (int how = BY_SYSCALL; how <= BY_INSN; how++) {
            const char *hn = how == BY_SYSCALL ? "arch_prctl" : (s == FS ? "wrfsbase" : "wrgsbase");
            if (how == BY_INSN && !insn_ok)
                continue;
            for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
                struct result r;
                memset(&r, 0, sizeof(r));
                char msg[200];
                int msg_len = snprintf(msg, sizeof(msg), "raw write with %s=%s by %s\n", sn,
                                       values[v].name, hn);
                fflush(stdout);
                exercise(s, how, insn_ok, values[v].value, restore, values[v].magic,
                         fresh + variant * PAGES_PER_VARIANT, msg, msg_len, &r);
                variant++;
                char what[200];
#define SAY(...) (snprintf(what, sizeof(what), __VA_ARGS__), what)
                CHECK_RET(r.restore_ret, 0, SAY("%s restored after %s to %s", sn, hn, values[v].name));
                CHECK_RET(r.set_ret, 0, SAY("%s set to %s by %s", sn, values[v].name, hn));
                CHECK_RET(r.pid, pid, SAY("getpid with %s=%s by %s", sn, values[v].name, hn));
                CHECK_RET(r.write_ret, msg_len, SAY("write with %s=%s by %s", sn, values[v].name, hn));
                for (int k = 0; k < 3; k++) {
                    check(r.get_ret[k] == 0 && r.by_syscall[k] == values[v].value,
                          SAY("%s=%s by %s intact after %s (ARCH_GET_%s)", sn, values[v].name,
                              hn, stage[k], sn),
                          "ret %ld, base %#lx, want %#lx", r.get_ret[k], r.by_syscall[k],
                          values[v].value);
                    if (insn_ok)
                        check(r.by_insn[k] == values[v].value,
                              SAY("%s=%s by %s intact after %s (rd%sbase)", sn,
                                  values[v].name, hn, stage[k], s == FS ? "fs" : "gs"),
                              "base %#lx, want %#lx", r.by_insn[k], values[v].value);
                }
                if (values[v].magic)
                    check(r.loaded == MAGIC,
                          SAY("load through %s with its base set by %s", sn, hn),
                          "loaded %#lx, want %#lx", r.loaded, MAGIC);
                check(r.spins > 0, SAY("spun with %s=%s by %s", sn, values[v].name, hn),
                      "spins %ld", r.spins);
            }
        }
    }
    unsigned long fs1 = 0, gs1 = 1;
    raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs1);
    raw_syscall2(SYS_arch_prctl, ARCH_GET_GS, &gs1);
    CHECK(fs1 == fs0, "FS base restored at the end");
    CHECK(gs1 == gs0, "GS base restored at the end");
    int touched = 1;
    for (int i = 0; i < variant * PAGES_PER_VARIANT; i++)
        if (fresh[i][i % PAGES_PER_VARIANT % PAGE] != 1)
            touched = 0;
    CHECK(touched, "every fresh page kept the byte written while the base was bogus");
    return finish();
}
