/*
 * A per-CPU counter updated only inside rseq critical sections, as Linux's param_test does it
 * (rseq_cmpeqv_storev style): read cpu_id_start, then in the section compare cpu_id with it,
 * load that CPU's slot, add 1, wait a little (to widen the window a preemption or migration must
 * hit), and store it back, the commit. Without the kernel's aborts, a thread preempted between
 * its load and its store would overwrite the increments other threads made meanwhile. 8 threads, not pinned, add 50000 each; the sum
 * of the slots must be exactly 400000, however often the threads are preempted, migrated or
 * aborted. Run on ktls with several CPUs (--smp 4).
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

#include <pthread.h>

#define NTHREADS 8
#define ITERS 50000
#define MAX_CPUS 64
/* Iterations of the wait between the load and the store (a preemption inside the section is
 * then likely; without aborts, lost updates show within a few runs natively and on ktls). */
#define DELAY 100

struct slot {
    intptr_t count;
} __attribute__((aligned(64)));

static struct slot counts[MAX_CPUS];
static __thread struct rseq_area rs;
static pthread_barrier_t barrier;

struct result {
    long reg, unreg, bad_cpu;
    uint32_t mm_cid;
    long aborts;
};
static struct result results[NTHREADS];

/* Adds 1 to the current CPU's slot; returns 0, or -1 if the section was aborted (retry). */
static inline int percpu_inc(void)
{
    uint32_t cpu = rs.cpu_id_start;
    if (cpu >= MAX_CPUS)
        return -2;
    __asm__ goto(".pushsection __rseq_cs, \"aw\"\n\t"
                 ".balign 32\n\t"
                 "3:\n\t"
                 ".long 0, 0\n\t"
                 ".quad 1f, (2f - 1f), 4f\n\t"
                 ".popsection\n\t"
                 "leaq 3b(%%rip), %%rax\n\t"
                 "movq %%rax, %[rseq_cs]\n\t"
                 "1:\n\t"
                 "cmpl %[cpu], %[current_cpu]\n\t"
                 "jnz 4f\n\t"
                 "movq %[v], %%rax\n\t"
                 "addq $1, %%rax\n\t"
                 "movl $" RSEQ_STR(DELAY) ", %%ecx\n\t"
                 "5:\n\t"
                 "decl %%ecx\n\t"
                 "jnz 5b\n\t"
                 "movq %%rax, %[v]\n\t" /* the commit */
                 "2:\n\t"
                 ".pushsection __rseq_failure, \"ax\"\n\t"
                 ".byte 0x0f, 0xb9, 0x3d\n\t"
                 ".long " RSEQ_STR(0x53053053) "\n\t"
                 "4:\n\t"
                 "jmp %l[abort]\n\t"
                 ".popsection\n\t"
                 :
                 : [cpu] "r"(cpu), [current_cpu] "m"(rs.cpu_id), [rseq_cs] "m"(rs.rseq_cs),
                   [v] "m"(counts[cpu].count)
                 : "memory", "cc", "rax", "rcx"
                 : abort);
    return 0;
abort:
    return -1;
}

static void *worker(void *p)
{
    struct result *r = p;
    r->reg = sys_rseq(&rs, 32, 0, RSEQ_SIG);
    r->mm_cid = rs.mm_cid;
    pthread_barrier_wait(&barrier);
    if (r->reg != 0)
        return NULL;
    for (int i = 0; i < ITERS; i++) {
        int e;
        while ((e = percpu_inc()) == -1)
            r->aborts++;
        if (e == -2) {
            r->bad_cpu++;
            break;
        }
    }
    r->unreg = sys_rseq(&rs, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    return NULL;
}

int main(void)
{
    pthread_t th[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, &results[i]) == 0, "pthread_create");
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    int reg = 1, unreg = 1, cpus = 1, cids = 1;
    long aborts = 0;
    for (int i = 0; i < NTHREADS; i++) {
        reg &= results[i].reg == 0;
        unreg &= results[i].unreg == 0;
        cpus &= results[i].bad_cpu == 0;
        cids &= results[i].mm_cid < NTHREADS;
        aborts += results[i].aborts;
    }
    CHECK(reg, "8 threads register their TLS areas");
    CHECK(cpus, "cpu_id_start is always a CPU number below 64");
    CHECK(cids, "mm_cid is below the number of threads");
    intptr_t total = 0;
    for (int i = 0; i < MAX_CPUS; i++)
        total += counts[i].count;
    check(total == (intptr_t)NTHREADS * ITERS, "per-CPU counter total is exactly 8 x 50000",
          "total %ld (%ld aborts)", (long)total, aborts);
    CHECK(unreg, "8 threads unregister");
    return finish();
}
