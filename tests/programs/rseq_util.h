/*
 * Shared helpers for the rseq_*, ktls_*, threads_* and signals_* conformance programs: the rseq
 * and KTLS ABI (numbers from abi/src/{rseq,ktls,clone,auxv}.rs and spec/ktls.md), raw rseq and
 * clone/clone3 calls, threads made with our own stack and TLS block, and an x86_64 critical
 * section in the style of Linux's tools/testing/selftests/rseq/rseq-x86.h.
 *
 * Everything here uses raw `syscall` instructions (ktls_test.h's raw_syscall6), so it also works
 * in threads that libc does not know about (their TLS is not a libc TCB).
 *
 * The harness rebuilds a program when this header changes (tests/src/lib.rs: c_case_including).
 */
#ifndef RSEQ_UTIL_H
#define RSEQ_UTIL_H

#include "ktls_test.h"

#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYS_RSEQ 334
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define SYS_CLONE3 435

#define RSEQ_SIG 0x53053053u
#define RSEQ_FLAG_UNREGISTER 0x1u
#define RSEQ_CPU_ID_UNINITIALIZED 0xffffffffu
#define ORIG_RSEQ_SIZE 32u
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN 28
#endif
/* x86_64 TASK_SIZE_MAX with 4-level paging: the first address user pointers may not reach. */
#define TASK_SIZE 0x7ffffffff000ul
/* An address in the kernel half. */
#define KERNEL_ADDR 0xffffffff80000000ul

/* KTLS (spec/ktls.md section 2). */
#define AT_KTLS_FEATURE_SIZE 0x4b544c01
#define AT_KTLS_ALIGN 0x4b544c02
#define RSEQ_FLAG_KTLS 0x10000u
#define CLONE_RSEQ_KTLS 0x10000000000ull
#define KTLS_ALIGN 64
#define KTLS_BASE 64
#define KTLS_FEATURE_SIZE_LEVEL_1 76u
#define KTLS_FEATURE_SIZE_LEVEL_2 100u
#define KTLS_AREA_SIZE 128u
#define KTLS_LIVE 1u

/* struct rseq as Linux 7.0 has it (a 6.18 kernel fills only the first 28 bytes). */
struct rseq_area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
    uint32_t node_id;
    uint32_t mm_cid;
    uint32_t slice_ctrl;
    uint8_t reserved[32];
} __attribute__((aligned(32)));
_Static_assert(sizeof(struct rseq_area) == 64, "struct rseq layout");
_Static_assert(offsetof(struct rseq_area, mm_cid) == 24, "struct rseq layout");

/* The KTLS area of ABI version 1 (spec/ktls.md section 14). */
struct ktls_area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
    uint32_t node_id;
    uint32_t mm_cid;
    uint32_t slice_ctrl;
    uint8_t rseq_reserved[32];
    uint32_t ktls_live;
    uint32_t tid;
    uint32_t pid;
    uint32_t uid;
    uint32_t euid;
    uint32_t gid;
    uint32_t egid;
    uint32_t sig_defer;
    uint32_t sig_pending;
    uint8_t pad[28];
} __attribute__((aligned(KTLS_ALIGN)));
_Static_assert(offsetof(struct ktls_area, ktls_live) == 64, "KTLS layout");
_Static_assert(offsetof(struct ktls_area, uid) == 76, "KTLS layout");
_Static_assert(offsetof(struct ktls_area, sig_defer) == 92, "KTLS layout");
_Static_assert(offsetof(struct ktls_area, sig_pending) == 96, "KTLS layout");
_Static_assert(sizeof(struct ktls_area) == 128, "KTLS layout");

/* struct rseq_cs: a critical-section descriptor. */
struct rseq_cs_desc {
    uint32_t version;
    uint32_t flags;
    uint64_t start_ip;
    uint64_t post_commit_offset;
    uint64_t abort_ip;
} __attribute__((aligned(32)));

static inline long sys_rseq(const void *area, uint32_t len, uint32_t flags, uint32_t sig)
{
    return raw_syscall4(SYS_RSEQ, area, len, flags, sig);
}

static inline long sys_gettid(void)
{
    return raw_syscall0(SYS_gettid);
}

/* getcpu(2): the CPU number, or -errno. */
static inline long sys_getcpu(void)
{
    unsigned int cpu = 0xdeadu;
    long r = raw_syscall3(SYS_getcpu, &cpu, 0, 0);
    return r < 0 ? r : (long)cpu;
}

/* Restricts thread `tid` (0: the caller) to one CPU; 0 or -errno. */
static inline long pin_to_cpu(long tid, int cpu)
{
    uint64_t mask[16] = {0};
    mask[cpu / 64] = 1ull << (cpu % 64);
    return raw_syscall3(SYS_sched_setaffinity, tid, sizeof mask, mask);
}

/* Lets thread `tid` run on every CPU of `allowed`. */
static inline long set_affinity(long tid, uint64_t allowed)
{
    uint64_t mask[16] = {allowed};
    return raw_syscall3(SYS_sched_setaffinity, tid, sizeof mask, mask);
}

/* How many CPUs the caller may run on (from sched_getaffinity), or -errno. */
static inline long allowed_cpus(void)
{
    uint64_t mask[16] = {0};
    long r = raw_syscall3(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (r < 0)
        return r;
    long n = 0;
    for (int i = 0; i < 16; i++)
        n += __builtin_popcountll(mask[i]);
    return n;
}

/* The thread pointer: the TCB self-pointer at %fs:0 (x86_64 TLS variant II, both libcs). */
static inline char *thread_pointer(void)
{
    char *tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline long mono_ns(void)
{
    struct timespec t;
    raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* TSC ticks per millisecond, measured against CLOCK_MONOTONIC over about 20 ms. */
static inline uint64_t tsc_per_ms(void)
{
    long t0 = mono_ns();
    uint64_t c0 = rdtsc();
    while (mono_ns() - t0 < 20000000L) {
    }
    long t1 = mono_ns();
    uint64_t c1 = rdtsc();
    uint64_t per_ms = (c1 - c0) * 1000000ull / (uint64_t)(t1 - t0);
    return per_ms ? per_ms : 1;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    raw_syscall2(SYS_nanosleep, &ts, 0);
}

/* Waits until the kernel cleared *ctid (CLONE_CHILD_CLEARTID at the thread's exit). */
static inline void wait_cleared(volatile int *ctid)
{
    int v;
    while ((v = *ctid) != 0)
        raw_syscall6(SYS_futex, (long)ctid, FUTEX_WAIT, v, 0, 0, 0);
}

static inline void futex_wake_all(volatile int *word)
{
    raw_syscall6(SYS_futex, (long)word, FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

/* Waits (with futex) until *word != v. */
static inline void futex_wait_while(volatile int *word, int v)
{
    while (*word == v)
        raw_syscall6(SYS_futex, (long)word, FUTEX_WAIT, v, 0, 0, 0);
}

/* struct clone_args, CLONE_ARGS_SIZE_VER2. */
struct clone_args_v2 {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

/*
 * raw_clone3_fn(args, size, fn, arg): clone3; the child calls fn(arg) on its new stack
 * (args->stack + args->stack_size, which must be 16-byte aligned; 0 keeps the parent's stack,
 * for fork-like children) and exits with fn's return value. Returns the child's tid or -errno
 * in the parent.
 *
 * raw_clone_fn(flags, stack_top, parent_tid, child_tid, tls, fn, arg): the same with clone(2).
 */
long raw_clone3_fn(struct clone_args_v2 *args, size_t size, int (*fn)(void *), void *arg)
    __attribute__((visibility("hidden")));
long raw_clone_fn(unsigned long flags, void *stack_top, int *parent_tid, int *child_tid,
                  unsigned long tls, int (*fn)(void *), void *arg)
    __attribute__((visibility("hidden")));
__asm__(".text\n"
        ".globl raw_clone3_fn\n"
        ".hidden raw_clone3_fn\n"
        ".type raw_clone3_fn, @function\n"
        "raw_clone3_fn:\n"
        "    push %r12\n"
        "    push %r13\n"
        "    mov %rdx, %r12\n"
        "    mov %rcx, %r13\n"
        "    mov $435, %eax\n"
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    ret\n"
        "1:  xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r13, %rdi\n"
        "    call *%r12\n"
        "    mov %eax, %edi\n"
        "    mov $60, %eax\n"
        "    syscall\n"
        "    ud2\n"
        ".size raw_clone3_fn, . - raw_clone3_fn\n"
        ".globl raw_clone_fn\n"
        ".hidden raw_clone_fn\n"
        ".type raw_clone_fn, @function\n"
        "raw_clone_fn:\n"
        "    push %r12\n"
        "    push %r13\n"
        "    mov %r9, %r12\n"
        "    mov 24(%rsp), %r13\n"
        "    mov %rcx, %r10\n"
        "    mov $56, %eax\n"
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    ret\n"
        "1:  xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r13, %rdi\n"
        "    call *%r12\n"
        "    mov %eax, %edi\n"
        "    mov $60, %eax\n"
        "    syscall\n"
        "    ud2\n"
        ".size raw_clone_fn, . - raw_clone_fn\n");

/* The flags of a thread as libcs make them. */
#define THREAD_FLAGS                                                                           \
    (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |          \
     CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

/*
 * A thread of our own: one mapping holding a TLS block (the thread pointer `tp`, whose first word
 * points to itself, with the KTLS area at tp + offset, 64-byte aligned) and a stack above it.
 */
#define RAW_THREAD_MAP (256 * 1024)
#define RAW_THREAD_TP_AT (64 * 1024)
struct raw_thread {
    char *map;
    char *tp;
    char *stack;
    size_t stack_size;
    volatile int tid; /* CLONE_PARENT_SETTID, cleared by CLONE_CHILD_CLEARTID */
};

/* Maps the thread's memory (zeroed) and lays out tp so that tp + offset is 64-byte aligned.
 * Returns 0, or -1 if the offset does not fit the layout. */
static inline int raw_thread_init(struct raw_thread *t, ptrdiff_t offset)
{
    memset(t, 0, sizeof *t);
    t->map = mmap(NULL, RAW_THREAD_MAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                  0);
    if (t->map == MAP_FAILED)
        return -1;
    char *tp = t->map + RAW_THREAD_TP_AT;
    tp -= (uintptr_t)(tp + offset) & (KTLS_ALIGN - 1);
    t->tp = tp;
    *(char **)tp = tp;
    t->stack = t->map + 2 * RAW_THREAD_TP_AT;
    t->stack_size = RAW_THREAD_MAP - 2 * RAW_THREAD_TP_AT;
    char *area = tp + offset;
    if (area < t->map + 4096 || area + KTLS_AREA_SIZE > t->stack)
        return -1;
    return 0;
}

static inline struct ktls_area *raw_thread_area(struct raw_thread *t, ptrdiff_t offset)
{
    return (struct ktls_area *)(t->tp + offset);
}

/* Starts fn(arg) in the thread with clone3(THREAD_FLAGS | extra_flags). Returns the tid or
 * -errno. */
static inline long raw_thread_start(struct raw_thread *t, uint64_t extra_flags, int (*fn)(void *),
                                    void *arg)
{
    struct clone_args_v2 args = {
        .flags = THREAD_FLAGS | extra_flags,
        .child_tid = (uintptr_t)&t->tid,
        .parent_tid = (uintptr_t)&t->tid,
        .stack = (uintptr_t)t->stack,
        .stack_size = t->stack_size,
        .tls = (uintptr_t)t->tp,
    };
    return raw_clone3_fn(&args, sizeof args, fn, arg);
}

static inline void raw_thread_join(struct raw_thread *t)
{
    wait_cleared(&t->tid);
}

static inline void raw_thread_free(struct raw_thread *t)
{
    munmap(t->map, RAW_THREAD_MAP);
}

/*
 * Critical sections, as rseq-x86.h writes them: the descriptor goes to section __rseq_cs, the
 * abort handler to __rseq_failure, preceded by the signature (behind a `ud1` opcode prefix, so
 * a disassembler does not run the signature into the next instruction).
 */
#define RSEQ_STR_(x) #x
#define RSEQ_STR(x) RSEQ_STR_(x)

/*
 * rseq_spin: stores `desc` to rs->rseq_cs, then, inside the critical section [1, 2) that the
 * descriptor rseq_spin_cs describes, stores 1 to *flag and spins until the TSC reaches
 * `deadline`. Returns 1 if the kernel aborted the section (the thread resumed at the abort
 * handler), 0 if the section ran to its end. `desc` is normally &rseq_spin_cs; tests pass
 * damaged copies.
 */
extern const struct rseq_cs_desc rseq_spin_cs __attribute__((visibility("hidden")));

static __attribute__((noinline, noclone, unused)) int
rseq_spin(volatile void *rs, const struct rseq_cs_desc *desc, volatile uint32_t *flag,
          uint64_t deadline)
{
    __asm__ goto(".pushsection __rseq_cs, \"aw\"\n\t"
                 ".balign 32\n\t"
                 ".globl rseq_spin_cs\n\t"
                 ".hidden rseq_spin_cs\n\t"
                 "rseq_spin_cs:\n\t"
                 ".long 0, 0\n\t"
                 ".quad 1f, (2f - 1f), 4f\n\t"
                 ".popsection\n\t"
                 "movq %[desc], 8(%[rs])\n\t"
                 "1:\n\t"
                 "movl $1, (%[flag])\n\t"
                 "rdtsc\n\t"
                 "shlq $32, %%rdx\n\t"
                 "orq %%rdx, %%rax\n\t"
                 "cmpq %[deadline], %%rax\n\t"
                 "jb 1b\n\t"
                 "2:\n\t"
                 ".pushsection __rseq_failure, \"ax\"\n\t"
                 ".byte 0x0f, 0xb9, 0x3d\n\t"
                 ".long " RSEQ_STR(0x53053053) "\n\t"
                 "4:\n\t"
                 "jmp %l[aborted]\n\t"
                 ".popsection\n\t"
                 :
                 : [rs] "r"(rs), [desc] "r"(desc), [flag] "r"(flag), [deadline] "r"(deadline)
                 : "memory", "cc", "rax", "rdx"
                 : aborted);
    return 0;
aborted:
    return 1;
}

#endif
