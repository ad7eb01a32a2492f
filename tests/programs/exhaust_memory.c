/*
 * Memory exhaustion.
 *
 * Without arguments (natively and on ktls): an mmap bomb in a child under RLIMIT_AS = 256 MiB
 * gets ENOMEM before its address space exceeds the limit (1 MiB mappings, one big mapping, brk,
 * mremap growth), can still use what it got, and the parent gets its free memory back.
 *
 * Also without arguments: a child cuts holes in one mapping, a page at a time, until munmap says
 * ENOMEM at the map-count cap (vm.max_map_count, 65530 areas); then a split by mprotect is
 * refused too, the memory is still usable, and once the mapping is gone splits work again.
 *
 * Also without arguments: 40 children each touch 1 MiB and die of a fault (SIGSEGV from a NULL
 * write or a write to a read-only page, SIGBUS from reading a file mapping past the end of the
 * file, SIGILL from ud2, SIGFPE from a division by zero), and 10 die of SIGKILL while blocked: their memory must come
 * back as it does after a plain exit (the harness compares the memfree lines on ktls).
 *
 * With the argument "oom" (ktls only: natively it would put the host's memory under pressure):
 * a child with no RLIMIT_AS touches more memory than the machine has, 16 MiB at a time; the
 * kernel must kill it with SIGKILL (Linux's OOM killer does) while the parent lives on, then
 * the parent can still allocate and fork, and its free memory comes back. Twice, to show that
 * the first time left the kernel sound.
 *
 * "info memfree ..." / "info heapused ..." lines: /proc/meminfo's MemFree and KernelHeapUsed
 * (ktls) at the start and after each part; the harness checks them on ktls.
 */
#include "ktls_test.h"
#include "meminfo.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ul << 20)
#define AS_LIMIT (256 * MIB)

/* The size of the address space the child has mapped, from /proc/self/maps (0 if absent). */
static unsigned long mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    unsigned long total = 0, a, b;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && !strstr(line, "[vsyscall]"))
            total += b - a;
    fclose(f);
    return total;
}

/* Exit status bits of the mmap bomb child. */
enum {
    NO_ENOMEM = 1,
    OVER_LIMIT = 2,
    BIG_MAP_OK = 4,
    BRK_GREW = 8,
    MREMAP_GREW = 16,
    UNUSABLE = 32,
    SETUP = 64,
};

static int mmap_bomb_child(int report)
{
    struct rlimit r = {AS_LIMIT, AS_LIMIT};
    if (setrlimit(RLIMIT_AS, &r) != 0)
        return SETUP;
    int bits = 0;
    unsigned long got = 0;
    void *first = NULL, *last = NULL;
    long err = 0;
    for (int i = 0; i < 4096; i++) {
        long m = raw_syscall6(SYS_mmap, 0, MIB, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m < 0 && m > -4096) {
            err = -m;
            break;
        }
        if (!first)
            first = (void *)m;
        last = (void *)m;
        got += MIB;
    }
    if (err != ENOMEM)
        bits |= NO_ENOMEM;
    unsigned long maps = mapped_bytes();
    /* The address space (code, data, stack and the bombs) stays within the limit. */
    if ((maps && maps > AS_LIMIT) || got > AS_LIMIT)
        bits |= OVER_LIMIT;
    /* What we got is usable: touch the first and last MiB. */
    if (first) {
        memset(first, 0x11, MIB);
        memset(last, 0x22, MIB);
        if (((uint8_t *)first)[MIB - 1] != 0x11 || ((uint8_t *)last)[0] != 0x22)
            bits |= UNUSABLE;
    }
    /* At the limit: one big mapping, brk growth and mremap growth all fail. */
    long m = raw_syscall6(SYS_mmap, 0, 512 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!(m < 0 && m > -4096))
        bits |= BIG_MAP_OK;
    unsigned long brk0 = raw_syscall1(SYS_brk, 0);
    unsigned long brk1 = raw_syscall1(SYS_brk, brk0 + 64 * MIB);
    if (brk1 != brk0)
        bits |= BRK_GREW;
    if (last) {
        long mr = raw_syscall6(SYS_mremap, (long)last, MIB, 128 * MIB, MREMAP_MAYMOVE, 0, 0);
        if (!(mr < 0 && mr > -4096))
            bits |= MREMAP_GREW;
    }
    char line[96];
    int n = snprintf(line, sizeof line, "%lu %lu %ld\n", got / MIB, maps / MIB, err);
    (void)!write(report, line, n);
    return bits;
}

/* Runs `child` in a child process, which exits with its result and may write one line to the
 * fd it is given; returns the wait status, the line in `line` ("" if none). */
static int run_reporting_child(int (*child)(int report), char line[96])
{
    int p[2];
    line[0] = 0;
    if (pipe(p) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(child(p[1]));
    }
    close(p[1]);
    ssize_t n = read(p[0], line, 95);
    line[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st = -1;
    waitpid(pid, &st, 0);
    return st;
}

static void mmap_bomb(void)
{
    char line[96];
    int st = run_reporting_child(mmap_bomb_child, line);
    unsigned long got = 0, maps = 0;
    long err = 0;
    sscanf(line, "%lu %lu %ld", &got, &maps, &err);
    printf("info mmap bomb: %lu MiB mapped in 1 MiB pieces, address space %lu MiB, then "
           "errno %ld\n",
           got, maps, err);
    int bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0xff;
    check(WIFEXITED(st) && !(bits & SETUP), "mmap bomb: the child set RLIMIT_AS to 256 MiB",
          "status %#x", st);
    check(!(bits & NO_ENOMEM), "mmap bomb: mmap fails with ENOMEM at RLIMIT_AS",
          "%lu MiB mapped, then errno %ld", got, err);
    check(!(bits & OVER_LIMIT), "mmap bomb: the address space never exceeds RLIMIT_AS",
          "%lu MiB mapped, address space %lu MiB", got, maps);
    check(got >= 128, "mmap bomb: most of the 256 MiB can be mapped", "only %lu MiB", got);
    check(!(bits & UNUSABLE), "mmap bomb: the mapped memory is usable", "bits %#x", bits);
    check(!(bits & BIG_MAP_OK), "mmap bomb: a 512 MiB mmap at the limit fails", "bits %#x",
          bits);
    check(!(bits & BRK_GREW), "mmap bomb: brk cannot grow past the limit", "bits %#x", bits);
    check(!(bits & MREMAP_GREW), "mmap bomb: mremap cannot grow past the limit", "bits %#x",
          bits);
}

#define PAGE 4096ul
/* More holes than the map-count cap allows. */
#define HOLE_TRIES 70000ul

/* Exit status bits of the map-count child. */
enum {
    HOLES_NO_ENOMEM = 1,
    FEW_HOLES = 2,
    SPLIT_OK = 4,
    LOST = 8,
    NO_UNMAP = 16,
    NO_SPLIT = 32,
    MAP_SETUP = 64,
};

static int map_count_child(int report)
{
    unsigned long pages = 2 * HOLE_TRIES + 16;
    uint8_t *m = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return MAP_SETUP;
    m[0] = 0x5a;
    m[(pages - 1) * PAGE] = 0xa5;
    /* Every odd page: each hole leaves one more area. */
    unsigned long holes = 0;
    long err = 0;
    for (unsigned long i = 1; i < 2 * HOLE_TRIES; i += 2) {
        long r = raw_syscall2(SYS_munmap, (long)(m + i * PAGE), PAGE);
        if (r != 0) {
            err = -r;
            break;
        }
        holes++;
    }
    int bits = 0;
    if (err != ENOMEM)
        bits |= HOLES_NO_ENOMEM;
    /* Natively the program's own areas count too: a dozen or so. */
    if (holes < 65000 || holes > 65530)
        bits |= FEW_HOLES;
    /* At the cap, reprotecting one page inside the untouched rest would split it twice. */
    uint8_t *rest = m + (2 * holes + 8) * PAGE;
    if (raw_syscall3(SYS_mprotect, (long)rest, PAGE, PROT_READ) != -ENOMEM)
        bits |= SPLIT_OK;
    if (m[0] != 0x5a || m[(pages - 1) * PAGE] != 0xa5)
        bits |= LOST;
    /* Unmapping everything never needs a new area. */
    if (raw_syscall2(SYS_munmap, (long)m, pages * PAGE) != 0)
        bits |= NO_UNMAP;
    uint8_t *n = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (n == MAP_FAILED || mprotect(n + PAGE, PAGE, PROT_READ) != 0)
        bits |= NO_SPLIT;
    char line[96];
    int len = snprintf(line, sizeof line, "%lu %ld\n", holes, err);
    (void)!write(report, line, len);
    return bits;
}

static void map_count_bomb(void)
{
    char line[96];
    int st = run_reporting_child(map_count_child, line);
    unsigned long holes = 0;
    long err = 0;
    sscanf(line, "%lu %ld", &holes, &err);
    printf("info map-count bomb: %lu holes, then errno %ld\n", holes, err);
    int bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0xff;
    check(WIFEXITED(st) && !(bits & MAP_SETUP), "map-count bomb: the child maps its area",
          "status %#x", st);
    check(!(bits & HOLES_NO_ENOMEM), "map-count bomb: munmap fails with ENOMEM at the cap",
          "%lu holes, then errno %ld", holes, err);
    check(!(bits & FEW_HOLES), "map-count bomb: the cap is vm.max_map_count (65530 areas)",
          "%lu holes", holes);
    check(!(bits & SPLIT_OK), "map-count bomb: a split by mprotect at the cap fails with ENOMEM",
          "bits %#x", bits);
    check(!(bits & LOST), "map-count bomb: the memory keeps its contents", "bits %#x", bits);
    check(!(bits & NO_UNMAP), "map-count bomb: unmapping the whole area at the cap works",
          "bits %#x", bits);
    check(!(bits & NO_SPLIT), "map-count bomb: after that, mmap and a split work again",
          "bits %#x", bits);
}

/* A child's way to die after touching 1 MiB. */
static void die_of_fault(int how)
{
    uint8_t *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(3);
    memset(m, 0x33, MIB);
    switch (how) {
    case 0:
        *(volatile int *)0 = 1;
        break;
    case 1:
        /* Write to what we made read-only. */
        mprotect(m, MIB, PROT_READ);
        *(volatile uint8_t *)m = 1;
        break;
    case 2: {
        FILE *f = tmpfile();
        if (!f)
            _exit(4);
        volatile uint8_t *p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        if (p == MAP_FAILED)
            _exit(5);
        (void)p[4096]; /* beyond the end of the (empty) file: SIGBUS */
        break;
    }
    case 3:
        __asm__ volatile("ud2");
        break;
    default: {
        int q = 1, d = 0;
        __asm__ volatile("cltd; idivl %1" : "+a"(q) : "r"(d) : "rdx");
        break;
    }
    }
    _exit(6);
}

static void fault_deaths(void)
{
    static const int SIGS[] = {SIGSEGV, SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    int wrong = 0;
    for (int i = 0; i < 40; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            die_of_fault(i % 5);
        int st = -1;
        waitpid(pid, &st, 0);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGS[i % 5])) {
            if (!wrong)
                printf("FAIL fault death %d: status %#x, want signal %d\n", i % 5, st,
                       SIGS[i % 5]);
            wrong++;
        }
    }
    check(wrong == 0, "40 children that touched 1 MiB each die of their faults", "%d wrong",
          wrong);
    int ready[2], never[2];
    CHECK(pipe(ready) == 0 && pipe(never) == 0, "pipes");
    int killed = 0;
    for (int i = 0; i < 10; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            uint8_t *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m != MAP_FAILED)
                memset(m, 0x44, MIB);
            char c;
            (void)!write(ready[1], "r", 1);
            (void)!read(never[0], &c, 1); /* nobody writes: blocks until killed */
            _exit(7);
        }
        char c;
        (void)!read(ready[0], &c, 1);
        kill(pid, SIGKILL);
        int st = -1;
        waitpid(pid, &st, 0);
        killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    }
    check(killed == 10, "10 children that touched 1 MiB each die of SIGKILL", "%d of 10",
          killed);
    close(ready[0]);
    close(ready[1]);
    close(never[0]);
    close(never[1]);
}

/* Touches 16 MiB chunks until killed; reports progress (MiB) on `report`. */
static int oom_child(int report, unsigned long stop_mib)
{
    unsigned long mib = 0;
    while (mib < stop_mib) {
        long m = raw_syscall6(SYS_mmap, 0, 16 * MIB, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m < 0 && m > -4096)
            return 10; /* mmap refused: the kernel did not overcommit */
        for (unsigned long off = 0; off < 16 * MIB; off += 4096)
            ((volatile uint8_t *)m)[off] = 1;
        mib += 16;
        char c = 'm';
        (void)!write(report, &c, 1);
    }
    return 11; /* touched more than the machine has and lived */
}

static void oom(int round)
{
    long total_kib = meminfo("MemTotal");
    CHECK(total_kib > 0, "oom: MemTotal in /proc/meminfo");
    unsigned long stop = total_kib > 0 ? 2 * (unsigned long)total_kib / 1024 : 1024;
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0, "oom: a report pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        fcntl(p[1], F_SETFL, 0);
        _exit(oom_child(p[1], stop));
    }
    close(p[1]);
    int st = -1;
    unsigned long touched = 0;
    for (;;) {
        char buf[64];
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n > 0)
            touched += 16 * n;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    char buf[256];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        touched += 16 * n;
    close(p[0]);
    printf("info oom round %d: the child touched %lu MiB of %ld MiB, then %s %d\n", round,
           touched, total_kib / 1024, WIFSIGNALED(st) ? "signal" : "exit",
           WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    char what[96];
    snprintf(what, sizeof what, "oom round %d: the child is killed with SIGKILL", round);
    check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, what,
          "status %#x after %lu MiB (exit 10: mmap refused, 11: lived through %lu MiB)", st,
          touched, stop);
    /* The parent lives on: it can allocate, touch and fork. */
    size_t sz = 8 * MIB;
    uint8_t *q = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok = q != MAP_FAILED;
    if (ok) {
        memset(q, 0x5a, sz);
        ok = q[sz - 1] == 0x5a;
        munmap(q, sz);
    }
    pid_t c = fork();
    if (c == 0)
        _exit(42);
    int cst = -1;
    if (c > 0)
        waitpid(c, &cst, 0);
    snprintf(what, sizeof what, "oom round %d: the parent then allocates 8 MiB and forks", round);
    check(ok && WIFEXITED(cst) && WEXITSTATUS(cst) == 42, what, "mmap %s, child status %#x",
          ok ? "ok" : "failed", cst);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Warm up stdio, /proc/meminfo, fork and pipes, then measure. */
    (void)meminfo("MemFree");
    pid_t w = fork();
    if (w == 0)
        _exit(0);
    waitpid(w, NULL, 0);
    report_memory("start");

    if (argc > 1 && strcmp(argv[1], "oom") == 0) {
        oom(1);
        report_memory("after-oom-1");
        oom(2);
        report_memory("after-oom-2");
    } else {
        mmap_bomb();
        report_memory("after-mmap-bomb");
        map_count_bomb();
        report_memory("after-map-count-bomb");
        fault_deaths();
        report_memory("after-fault-deaths");
    }
    return finish();
}
