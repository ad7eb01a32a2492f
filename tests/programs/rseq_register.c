/*
 * rseq(2) registration and unregistration: every error case in Linux's order, the values the
 * kernel writes at registration and unregistration, and mm_cid with several threads.
 *
 * Adapts to the kernel's rseq generation through AT_RSEQ_FEATURE_SIZE and AT_RSEQ_ALIGN (Linux
 * 6.3-6.19: 28 and 32; Linux 7.0 and ktls: 33 and 64), so it passes on both and prints the same.
 * The program registers rseq itself: with glibc, run it with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#include <pthread.h>

/* glibc exports the size of the area it registered (0 when it did not); musl has no rseq. */
extern const unsigned int __rseq_size __attribute__((weak));

static unsigned long fsz, align;

/* A 2-page area to register in, plus pages with other protections. */
static char *page;

static void test_auxv(void)
{
    fsz = getauxval(AT_RSEQ_FEATURE_SIZE);
    align = getauxval(AT_RSEQ_ALIGN);
    CHECK(fsz >= 28 && fsz <= 64, "AT_RSEQ_FEATURE_SIZE covers node_id and mm_cid");
    CHECK(align >= 32 && (align & (align - 1)) == 0 && align >= fsz,
          "AT_RSEQ_ALIGN is a power of two that holds the feature size");
    CHECK(!&__rseq_size || __rseq_size == 0,
          "libc did not register rseq (glibc: GLIBC_TUNABLES=glibc.pthread.rseq=0)");
}

/* The expected result of registering `len` bytes at `addr` on a thread without registration:
 * Linux's rseq_length_valid (a 32-byte area needs 32-byte alignment; any other length the
 * feature size and AT_RSEQ_ALIGN). */
static long expect_register(uintptr_t addr, uint32_t len)
{
    if (len < ORIG_RSEQ_SIZE)
        return -EINVAL;
    if (len == ORIG_RSEQ_SIZE)
        return addr % ORIG_RSEQ_SIZE ? -EINVAL : 0;
    if (len < fsz || addr % align)
        return -EINVAL;
    return 0;
}

static void test_unregistered_errors(void)
{
    struct rseq_area *a = (struct rseq_area *)page;

    /* 1. unknown flags, before anything else looks at the arguments */
    CHECK_ERR(sys_rseq(a, 32, 1u << 2, RSEQ_SIG), EINVAL, "unknown flag bit 2: EINVAL");
    CHECK_ERR(sys_rseq(a, 32, 1u << 31, RSEQ_SIG), EINVAL, "unknown flag bit 31: EINVAL");
    CHECK_ERR(sys_rseq(a, 32, 1u << 16, RSEQ_SIG), EINVAL,
              "flag bit 16 (RSEQ_FLAG_KTLS) alone is no Linux flag: EINVAL");
    CHECK_ERR(sys_rseq((void *)KERNEL_ADDR, 32, 1u << 2, RSEQ_SIG), EINVAL,
              "unknown flag with a kernel address: EINVAL before the access check");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER | (1u << 2), RSEQ_SIG), EINVAL,
              "unregister with an extra flag: EINVAL");

    /* 2. misaligned 32-byte areas */
    CHECK_ERR(sys_rseq(page + 8, 32, 0, RSEQ_SIG), EINVAL, "32 bytes at +8: EINVAL");
    CHECK_ERR(sys_rseq(page + 16, 32, 0, RSEQ_SIG), EINVAL, "32 bytes at +16: EINVAL");
    CHECK_ERR(sys_rseq((void *)(KERNEL_ADDR + 8), 32, 0, RSEQ_SIG), EINVAL,
              "misaligned kernel address: EINVAL before the access check");

    /* 3. len below 32 */
    CHECK_ERR(sys_rseq(a, 0, 0, RSEQ_SIG), EINVAL, "len 0: EINVAL");
    CHECK_ERR(sys_rseq(a, 20, 0, RSEQ_SIG), EINVAL, "len 20 (the pre-6.3 active size): EINVAL");
    CHECK_ERR(sys_rseq(a, 31, 0, RSEQ_SIG), EINVAL, "len 31: EINVAL");
    CHECK_ERR(sys_rseq(a, 28, 0, RSEQ_SIG), EINVAL, "len 28 (below 32): EINVAL");

    /* 4. other lengths: at least the feature size, aligned to AT_RSEQ_ALIGN */
    int as_auxv = 1;
    for (uint32_t len = 33; len <= 256; len++) {
        for (uintptr_t off = 0; off < 128; off += 16) {
            long want = expect_register((uintptr_t)page + off, len);
            if (want == 0)
                continue; /* the successful ones are checked below */
            long got = sys_rseq(page + off, len, 0, RSEQ_SIG);
            if (got != want) {
                printf("FAIL length rule: len %u at +%lu: got %ld, want %ld\n", len,
                       (unsigned long)off, got, want);
                as_auxv = 0;
                ktls_failures++;
                if (got == 0)
                    sys_rseq(page + off, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
            }
        }
    }
    check(as_auxv, "lengths 33..256 at 16-byte steps: EINVAL unless AT_RSEQ_ALIGN-aligned",
          "see above");
    CHECK_ERR(sys_rseq(page + align / 2, (uint32_t)fsz < 33 ? 64 : (uint32_t)fsz, 0, RSEQ_SIG),
              EINVAL, "feature-size area at half AT_RSEQ_ALIGN: EINVAL");
    /* A 64-byte area at a 32-byte boundary: valid iff AT_RSEQ_ALIGN is 32. */
    long r = sys_rseq(page + 32, 64, 0, RSEQ_SIG);
    long u = r == 0 ? sys_rseq(page + 32, 64, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) : 0;
    CHECK_RET(r, align == 32 ? 0 : -EINVAL, "64 bytes at a 32-byte boundary: as AT_RSEQ_ALIGN says");
    CHECK_RET(u, 0, "and if that registered, it unregisters");

    /* 5. addresses user space cannot write: EFAULT */
    CHECK_ERR(sys_rseq((void *)KERNEL_ADDR, 32, 0, RSEQ_SIG), EFAULT, "kernel address: EFAULT");
    CHECK_ERR(sys_rseq((void *)(TASK_SIZE - 64), 128, 0, RSEQ_SIG), EFAULT,
              "area crossing TASK_SIZE: EFAULT");
    CHECK_ERR(sys_rseq(NULL, 32, 0, RSEQ_SIG), EFAULT, "NULL with len 32: EFAULT");
    char *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERR(sys_rseq(hole, 32, 0, RSEQ_SIG), EFAULT, "PROT_NONE page: EFAULT");
    munmap(hole, 4096);
    CHECK_ERR(sys_rseq(hole, 32, 0, RSEQ_SIG), EFAULT, "unmapped page: EFAULT");

    /* 6. rseq(NULL, 0, 0, 0) */
    CHECK_ERR(sys_rseq(NULL, 0, 0, 0), EINVAL, "rseq(NULL, 0, 0, 0): EINVAL");

    /* Unregistering without a registration. */
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "unregister without a registration: EINVAL");
    CHECK_ERR(sys_rseq(NULL, 0, RSEQ_FLAG_UNREGISTER, 0), EINVAL,
              "unregister NULL without a registration: EINVAL");
}

/*
 * A PROT_READ area: Linux 7.0 (and ktls) writes the area during rseq(2) and fails with EFAULT;
 * Linux 6.3 to 6.18 only read it there and kill the thread with SIGSEGV when the first id
 * update faults on the way out. Run in a child; a feature size of 33 or more demands EFAULT.
 */
static void test_readonly_area(void)
{
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long r = sys_rseq(ro, 32, 0, RSEQ_SIG);
        _exit(r == -EFAULT ? 42 : r == 0 ? 43 : 44);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int efault = WIFEXITED(st) && WEXITSTATUS(st) == 42;
    int segv = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
    check(efault || (fsz < 33 && segv), "read-only area: EFAULT (Linux 6.x: SIGSEGV on return)",
          "child status %#x", st);
    munmap(ro, 4096);
}

static void test_register_fields(void)
{
    struct rseq_area *a = (struct rseq_area *)page;
    memset(a, 0x55, 64);
    a->flags = 0; /* Linux 6.x reads the deprecated flag bits from here */
    a->rseq_cs = 0x1234; /* garbage: registration must clear it */
    CHECK_RET(sys_rseq(a, 32, 0, RSEQ_SIG), 0, "register 32 bytes");
    uint64_t cs = a->rseq_cs;
    a->rseq_cs = 0;
    check(cs == 0, "registration clears rseq_cs", "rseq_cs %#lx", (unsigned long)cs);
    long cpu = sys_getcpu();
    CHECK(cpu == 0, "pinned to CPU 0");
    CHECK(sched_getcpu() == cpu, "libc's sched_getcpu agrees with getcpu(2)");
    CHECK(a->cpu_id == (uint32_t)cpu, "cpu_id is the current CPU");
    CHECK(a->cpu_id_start == (uint32_t)cpu, "cpu_id_start is the current CPU");
    CHECK(a->node_id == 0, "node_id 0 (a single node)");
    check(a->mm_cid == 0, "mm_cid 0 with one thread", "mm_cid %u", a->mm_cid);
    int tail = 1;
    for (int i = 33; i < 64; i++)
        tail &= ((uint8_t *)a)[i] == 0x55;
    CHECK(tail, "bytes 33..63 untouched");

    /* Registered: re-registration checks in Linux's order. */
    CHECK_ERR(sys_rseq(a, 32, 0, RSEQ_SIG), EBUSY, "the same registration again: EBUSY");
    CHECK_ERR(sys_rseq(a, 32, 0, RSEQ_SIG + 1), EPERM, "another signature: EPERM");
    CHECK_ERR(sys_rseq(page + 64, 32, 0, RSEQ_SIG), EINVAL, "another area: EINVAL");
    CHECK_ERR(sys_rseq(a, 64, 0, RSEQ_SIG), EINVAL, "another length: EINVAL");
    CHECK_ERR(sys_rseq(page + 64, 32, 0, RSEQ_SIG + 1), EINVAL,
              "another area and signature: EINVAL before EPERM");
    CHECK_ERR(sys_rseq(a, 32, 1u << 2, RSEQ_SIG), EINVAL,
              "registered, unknown flag: EINVAL before EBUSY");
    CHECK_ERR(sys_rseq(NULL, 0, 0, 0), EINVAL, "registered, rseq(NULL, 0, 0, 0): EINVAL");
    CHECK_ERR(sys_rseq((void *)KERNEL_ADDR, 32, 0, RSEQ_SIG), EINVAL,
              "registered, kernel address: EINVAL (another area)");
    CHECK(a->cpu_id == (uint32_t)cpu, "failed calls leave cpu_id alone");

    /* Unregistration checks: pointer, then length, then signature. */
    CHECK_ERR(sys_rseq(page + 64, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "unregister another area: EINVAL");
    CHECK_ERR(sys_rseq(a, 64, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "unregister another length: EINVAL");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1), EPERM,
              "unregister with another signature: EPERM");
    CHECK_ERR(sys_rseq(a, 64, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1), EINVAL,
              "unregister another length and signature: EINVAL before EPERM");
    CHECK_ERR(sys_rseq(page + 64, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1), EINVAL,
              "unregister another area and signature: EINVAL before EPERM");
    CHECK_RET(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "unregister");
    CHECK(a->cpu_id == RSEQ_CPU_ID_UNINITIALIZED, "cpu_id is RSEQ_CPU_ID_UNINITIALIZED after it");
    CHECK(a->cpu_id_start == 0, "cpu_id_start is 0 after it");
    CHECK(a->node_id == 0, "node_id is 0 after it");
    CHECK(a->mm_cid == 0, "mm_cid is 0 after it");
    CHECK_ERR(sys_rseq(a, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "unregister twice: EINVAL");
    sched_yield(); /* a return to user space that must not touch the area any more */
    CHECK(a->cpu_id == RSEQ_CPU_ID_UNINITIALIZED, "the area stays unregistered");

    /* Register again, elsewhere, with other parameters. */
    CHECK_RET(sys_rseq(page + 32, 32, 0, RSEQ_SIG + 7), 0,
              "register again at another 32-byte slot with another signature");
    CHECK_ERR(sys_rseq(page + 32, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EPERM,
              "unregister with the first signature: EPERM");
    CHECK_RET(sys_rseq(page + 32, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 7), 0,
              "unregister it");

    /* The feature size at AT_RSEQ_ALIGN alignment, and a larger area. */
    uint32_t flen = fsz < 33 ? 33 : (uint32_t)fsz;
    char *b = page + 4 * align;
    memset(b, 0x55, 256);
    ((struct rseq_area *)b)->flags = 0;
    ((struct rseq_area *)b)->rseq_cs = 0;
    CHECK_RET(sys_rseq(b, flen, 0, RSEQ_SIG), 0, "register the feature size (at least 33)");
    struct rseq_area *ba = (struct rseq_area *)b;
    CHECK(ba->cpu_id == (uint32_t)cpu && ba->cpu_id_start == (uint32_t)cpu,
          "feature-size area: cpu ids");
    check(ba->node_id == 0 && ba->mm_cid == 0, "feature-size area: node_id and mm_cid",
          "node_id %u mm_cid %u", ba->node_id, ba->mm_cid);
    CHECK((ba->flags & ~0x30u) == 0, "feature-size area: flags has only feature bits");
    int untouched = 1;
    for (int i = 33; i < 256; i++)
        untouched &= (uint8_t)b[i] == 0x55;
    CHECK(untouched, "feature-size area: bytes from 33 on untouched");
    CHECK_RET(sys_rseq(b, flen, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "unregister it");

    memset(b, 0, 256);
    CHECK_RET(sys_rseq(b, 256, 0, RSEQ_SIG), 0, "register 256 bytes");
    CHECK_ERR(sys_rseq(b, 128, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), EINVAL,
              "unregister 256 bytes as 128: EINVAL");
    CHECK_RET(sys_rseq(b, 256, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "unregister 256 bytes");
}

/* mm_cid: below the number of threads using the mm. Each thread registers its TLS area. */
#define NTHREADS 4
static __thread struct rseq_area tls_area;
static pthread_barrier_t barrier;
static struct {
    long reg, cpu;
    uint32_t cpu_id, node_id, mm_cid;
} seen[NTHREADS];

static void *mm_cid_thread(void *p)
{
    long i = (long)p;
    seen[i].reg = sys_rseq(&tls_area, 32, 0, RSEQ_SIG);
    pthread_barrier_wait(&barrier); /* every thread registered and alive */
    sched_yield();
    seen[i].cpu = sys_getcpu();
    seen[i].cpu_id = tls_area.cpu_id;
    seen[i].node_id = tls_area.node_id;
    seen[i].mm_cid = tls_area.mm_cid;
    pthread_barrier_wait(&barrier);
    if (seen[i].reg == 0)
        sys_rseq(&tls_area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    return NULL;
}

static void test_mm_cid(void)
{
    pthread_t th[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (long i = 1; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, mm_cid_thread, (void *)i);
    mm_cid_thread((void *)0);
    for (long i = 1; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    int reg = 1, ids = 1, cid = 1;
    for (int i = 0; i < NTHREADS; i++) {
        reg &= seen[i].reg == 0;
        ids &= seen[i].cpu_id == (uint32_t)seen[i].cpu && seen[i].node_id == 0;
        cid &= seen[i].mm_cid < NTHREADS;
    }
    CHECK(reg, "4 threads each register their TLS area");
    CHECK(ids, "each thread's cpu_id is its CPU (all pinned to CPU 0), node_id 0");
    check(cid, "each thread's mm_cid is below the number of threads", "mm_cids %u %u %u %u",
          seen[0].mm_cid, seen[1].mm_cid, seen[2].mm_cid, seen[3].mm_cid);
}

int main(void)
{
    /* One CPU for the whole test, so "the current CPU" holds still. */
    CHECK_RET(pin_to_cpu(0, 0), 0, "pin to CPU 0");
    page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    test_auxv();
    test_unregistered_errors();
    test_readonly_area();
    test_register_fields();
    test_mm_cid();
    return finish();
}
