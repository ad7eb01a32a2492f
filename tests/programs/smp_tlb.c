/*
 * SMP: a mapping removed or restricted by one thread must be gone for the other threads of
 * the process on the other CPUs as soon as the syscall returns (TLB shootdown). A reader
 * thread pinned to another CPU than the main thread touches a page in a loop (so its TLB
 * holds the translation); the main thread then revokes the page and raises a flag. Any
 * access the reader makes after it saw the flag must fault (munmap; mprotect read-only, for
 * writes) or read zeros (madvise MADV_DONTNEED).
 */
#include "ktls_test.h"
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

/* A word in the middle of the page: a freed frame has its first word overwritten (by the
 * free list of some kernels), which would make a stale read of word 0 look like zeros. */
#define IDX 512

enum how { UNMAP, READONLY_WRITE, DONTNEED };

static volatile int *page;
static enum how how;
static atomic_int revoked, started;
static atomic_long accesses;
static long stale;
static int faulted;
static sigjmp_buf reader_jmp;
static int cpu_main = -1, cpu_reader = -1;

static void on_segv(int sig)
{
    (void)sig;
    faulted = 1;
    siglongjmp(reader_jmp, 1);
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void *reader(void *arg)
{
    (void)arg;
    pin(cpu_reader);
    if (sigsetjmp(reader_jmp, 1))
        return NULL;
    for (;;) {
        int r = atomic_load(&revoked);
        int v;
        if (how == READONLY_WRITE) {
            page[IDX + 1] = 1;
            v = 42;
        } else {
            v = page[IDX];
        }
        if (r && (how != DONTNEED || v != 0)) {
            /* Accessed the old page after the revocation was complete. */
            if (++stale > 100000)
                return NULL;
        }
        if (how == DONTNEED && r && v == 0)
            return NULL;
        if (atomic_fetch_add(&accesses, 1) == 1000)
            atomic_store(&started, 1);
    }
}

static void one(enum how h, const char *what)
{
    how = h;
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        check(0, what, "mmap failed");
        return;
    }
    page[IDX] = 42;
    atomic_store(&revoked, 0);
    atomic_store(&started, 0);
    atomic_store(&accesses, 0);
    stale = 0;
    faulted = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL) != 0) {
        check(0, what, "pthread_create failed");
        return;
    }
    while (!atomic_load(&started))
        sched_yield();
    int rc = 0;
    switch (h) {
    case UNMAP:
        rc = munmap((void *)page, 4096);
        break;
    case READONLY_WRITE:
        rc = mprotect((void *)page, 4096, PROT_READ);
        break;
    case DONTNEED:
        rc = madvise((void *)page, 4096, MADV_DONTNEED);
        break;
    }
    atomic_store(&revoked, 1);
    pthread_join(t, NULL);
    int want_fault = h != DONTNEED;
    check(rc == 0 && stale == 0 && faulted == want_fault, what,
          "rc %d, %ld stale accesses, faulted %d", rc, stale, faulted);
    if (h != UNMAP)
        munmap((void *)page, 4096);
}

int main(void)
{
    cpu_set_t all;
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &all))
            continue;
        if (cpu_main < 0)
            cpu_main = c;
        else if (cpu_reader < 0)
            cpu_reader = c;
    }
    fprintf(stderr, "smp_tlb: main on CPU %d, reader on CPU %d\n", cpu_main, cpu_reader);
    pin(cpu_main);
    struct sigaction sa = {0};
    sa.sa_handler = on_segv;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction SIGSEGV");
    for (int round = 0; round < 20; round++) {
        char what[64];
        snprintf(what, sizeof what, "munmap seen by the other CPU (round %d)", round);
        one(UNMAP, what);
        snprintf(what, sizeof what, "mprotect PROT_READ seen by the other CPU (round %d)", round);
        one(READONLY_WRITE, what);
        snprintf(what, sizeof what, "MADV_DONTNEED seen by the other CPU (round %d)", round);
        one(DONTNEED, what);
    }
    return finish();
}
