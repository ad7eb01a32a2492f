/* ktls.h: the ktls libc shim's C interface (libc-shim/README.md has the build command).
 *
 * A minimal libc for static x86_64 programs that reserves and registers a KTLS area for every
 * thread (spec/ktls.md), plus inline readers of the area's fields. Self-contained: it needs
 * only the compiler's freestanding headers. Every number here comes from the ktls-abi crate;
 * libc-shim's host tests check that they agree.
 *
 * KTLS_LEVEL_BUILT_WITH (default 2) is the highest KTLS level the program knows. With 1, the
 * level-2 fields (uid, euid, gid, egid, sig_defer, sig_pending) are not declared and their
 * readers always make the system call. Build the library with the same level (the cargo
 * feature `level1`; `KTLS_LEVEL_BUILT_WITH=1 libc-shim/ktls-cc ...` does both). */
#ifndef KTLS_H
#define KTLS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KTLS_LEVEL_BUILT_WITH
#define KTLS_LEVEL_BUILT_WITH 2
#endif
#if KTLS_LEVEL_BUILT_WITH < 1 || KTLS_LEVEL_BUILT_WITH > 2
#error "KTLS_LEVEL_BUILT_WITH must be 1 or 2"
#endif

/* ---- Numbers (spec/ktls.md section 2) ---------------------------------------------------- */

#define KTLS_ABI_VERSION 1
#define AT_KTLS_FEATURE_SIZE 0x4b544c01
#define AT_KTLS_ALIGN 0x4b544c02
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN 28
#endif
#ifndef AT_SYSINFO_EHDR
#define AT_SYSINFO_EHDR 33
#endif
#define RSEQ_FLAG_KTLS 0x10000
#define CLONE_RSEQ_KTLS 0x10000000000ULL
#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053
#endif
#define KTLS_ALIGN 64
#define KTLS_BASE 64
#define KTLS_MAX_LEVEL 2
#define KTLS_FEATURE_SIZE_LEVEL_1 76
#define KTLS_FEATURE_SIZE_LEVEL_2 100
#define KTLS_AREA_SIZE 128
#define KTLS_LIVE 1

/* System call numbers the inline readers use (x86_64). */
#define KTLS_SYS_getpid 39
#define KTLS_SYS_getuid 102
#define KTLS_SYS_getgid 104
#define KTLS_SYS_geteuid 107
#define KTLS_SYS_getegid 108
#define KTLS_SYS_gettid 186
#define KTLS_SYS_sched_yield 24
#define KTLS_SYS_getcpu 309

/* ---- The area (spec/ktls.md section 4) ---------------------------------------------------- */

#ifdef __cplusplus
#define KTLS_STATIC_ASSERT static_assert
#else
#define KTLS_STATIC_ASSERT _Static_assert
#endif

struct ktls_area {
	/* struct rseq, Linux 7.0 */
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
	uint32_t node_id;
	uint32_t mm_cid;
	uint32_t slice_ctrl;
	uint8_t rseq_reserved[32];
	/* level 1 */
	uint32_t ktls_live;
	uint32_t tid;
	uint32_t pid;
#if KTLS_LEVEL_BUILT_WITH >= 2
	/* level 2 */
	uint32_t uid;
	uint32_t euid;
	uint32_t gid;
	uint32_t egid;
	uint32_t sig_defer;
	uint32_t sig_pending;
#endif
} __attribute__((aligned(KTLS_ALIGN)));

KTLS_STATIC_ASSERT(offsetof(struct ktls_area, cpu_id) == 4, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, slice_ctrl) == 28, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, ktls_live) == KTLS_BASE, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, tid) == 68, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, pid) == 72, "ktls_area layout");
#if KTLS_LEVEL_BUILT_WITH >= 2
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, uid) == 76, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, egid) == 88, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, sig_defer) == 92, "ktls_area layout");
KTLS_STATIC_ASSERT(offsetof(struct ktls_area, sig_pending) == 96, "ktls_area layout");
#endif
KTLS_STATIC_ASSERT(sizeof(struct ktls_area) == KTLS_AREA_SIZE, "ktls_area layout");

/* ---- What the shim exports, like glibc's __rseq_offset/__rseq_size/__rseq_flags ----------- */

/* Offset of the calling thread's KTLS area from the thread pointer (the same in every thread:
 * the area sits right after the shim's 128-byte TCB, so this is 128). */
extern const ptrdiff_t __ktls_offset;
/* Bytes of every area the kernel fills: min(reserved, AT_KTLS_FEATURE_SIZE); 0 without KTLS.
 * A field is present iff __ktls_size reaches its end. */
extern const unsigned int __ktls_size;
/* 0 (reserved). */
extern const unsigned int __ktls_flags;
/* The rseq area: the KTLS area's head (or a plain rseq area without KTLS). __rseq_size is the
 * rseq feature size, 0 when rseq is not registered. */
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;
extern const unsigned int __rseq_flags;

/* ---- Raw system calls --------------------------------------------------------------------- */

static inline long ktls_syscall0(long nr)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr) : "rcx", "r11", "memory");
	return r;
}

static inline long ktls_syscall3(long nr, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

/* ---- Reading the area: raw %fs-relative loads ---------------------------------------------- */

/* A 32-bit load from %fs:off, never cached by the compiler (the kernel writes the area). */
static inline uint32_t ktls_fs_load32(ptrdiff_t off)
{
	uint32_t v;
	__asm__ volatile("movl %%fs:(%1), %0" : "=r"(v) : "r"(off));
	return v;
}

static inline void ktls_fs_store32(ptrdiff_t off, uint32_t v)
{
	__asm__ volatile("movl %1, %%fs:(%0)" : : "r"(off), "r"(v) : "memory");
}

/* The calling thread's area (for reading with volatile loads). */
static inline volatile struct ktls_area *ktls_self(void)
{
	return (volatile struct ktls_area *)((char *)__builtin_thread_pointer() + __ktls_offset);
}

#define KTLS_FIELD_END(field) \
	(offsetof(struct ktls_area, field) + sizeof(((struct ktls_area *)0)->field))

/* Whether the kernel fills `field` in every area of this process (spec section 5). */
#define KTLS_HAS(field) (__ktls_size >= KTLS_FIELD_END(field))

/* Whether the calling thread's area is live (registered and kept current by the kernel). */
static inline int ktls_live(void)
{
	return KTLS_HAS(ktls_live) &&
	       ktls_fs_load32(__ktls_offset + offsetof(struct ktls_area, ktls_live)) != 0;
}

/* The raw KTLS load of a 32-bit field at `off`: 1 and *out when the field is present and the
 * thread's area is live; 0 otherwise (use the vDSO or the system call). */
static inline int ktls_try_read(size_t off, uint32_t *out)
{
	if (__ktls_size < off + 4 || !ktls_live())
		return 0;
	*out = ktls_fs_load32(__ktls_offset + (ptrdiff_t)off);
	return 1;
}

#define KTLS_TRY(field, out) ktls_try_read(offsetof(struct ktls_area, field), (out))

/* ---- Inline readers: the raw load when present, else the system call ---------------------- */

static inline int ktls_gettid(void)
{
	uint32_t v;
	return KTLS_TRY(tid, &v) ? (int)v : (int)ktls_syscall0(KTLS_SYS_gettid);
}

static inline int ktls_getpid(void)
{
	uint32_t v;
	return KTLS_TRY(pid, &v) ? (int)v : (int)ktls_syscall0(KTLS_SYS_getpid);
}

#if KTLS_LEVEL_BUILT_WITH >= 2
#define KTLS_READ_L2(field, nr)                                  \
	do {                                                     \
		uint32_t v_;                                     \
		if (KTLS_TRY(field, &v_))                        \
			return v_;                               \
		return (unsigned int)ktls_syscall0(nr);          \
	} while (0)
#else
#define KTLS_READ_L2(field, nr) return (unsigned int)ktls_syscall0(nr)
#endif

static inline unsigned int ktls_getuid(void) { KTLS_READ_L2(uid, KTLS_SYS_getuid); }
static inline unsigned int ktls_geteuid(void) { KTLS_READ_L2(euid, KTLS_SYS_geteuid); }
static inline unsigned int ktls_getgid(void) { KTLS_READ_L2(gid, KTLS_SYS_getgid); }
static inline unsigned int ktls_getegid(void) { KTLS_READ_L2(egid, KTLS_SYS_getegid); }

int sched_getcpu(void);

/* The CPU: the area's rseq cpu_id when the area is live, else sched_getcpu() (the vDSO's
 * __vdso_getcpu when there, else getcpu(2)). */
static inline int ktls_cpu(void)
{
	uint32_t v;
	return KTLS_TRY(cpu_id, &v) ? (int)v : sched_getcpu();
}

#if KTLS_LEVEL_BUILT_WITH >= 2
/* Signal deferral (spec section 8), a nesting counter in sig_defer; no-ops when the kernel
 * does not fill level 2 (then signals are never deferred). */
static inline void ktls_defer_signals(void)
{
	if (KTLS_HAS(sig_pending))
		ktls_self()->sig_defer++;
	__asm__ volatile("" ::: "memory");
}

static inline void ktls_undefer_signals(void)
{
	__asm__ volatile("" ::: "memory");
	if (KTLS_HAS(sig_pending)) {
		volatile struct ktls_area *a = ktls_self();
		if (--a->sig_defer == 0 && a->sig_pending)
			ktls_syscall0(KTLS_SYS_sched_yield); /* the kernel delivers on the way out */
	}
}
#endif

/* ---- Threads -------------------------------------------------------------------------------- */

typedef struct ktls_thread *ktls_thread_t;

/* Starts fn(arg) in a new thread with its own stack, TLS block and KTLS area (clone3 with
 * CLONE_RSEQ_KTLS when the kernel has KTLS). 0, or an errno value. */
int ktls_thread_create(ktls_thread_t *thread, void *(*fn)(void *), void *arg);
/* Waits for the thread (through its tid futex), frees it, and stores fn's result in *ret
 * unless ret is NULL. 0. */
int ktls_thread_join(ktls_thread_t thread, void **ret);
/* Ends the calling thread with `ret` as its result (in main: ends the process). */
void ktls_thread_exit(void *ret) __attribute__((noreturn));
/* The calling thread's handle; NULL in the main thread. */
ktls_thread_t ktls_thread_self(void);

/* How the calling thread's area was registered. */
#define KTLS_REG_NONE 0 /* not at all (rseq unavailable) */
#define KTLS_REG_RSEQ 1 /* a plain rseq area: no KTLS on this kernel */
#define KTLS_REG_KTLS_RSEQ 2 /* KTLS, by rseq(2) with RSEQ_FLAG_KTLS (main thread, fallback) */
#define KTLS_REG_KTLS_CLONE3 3 /* KTLS, by the kernel at clone3(CLONE_RSEQ_KTLS) */
int ktls_thread_registration(void);

/* The KTLS level the library was built for (KTLS_LEVEL_BUILT_WITH of the library). */
unsigned int ktls_level_built_with(void);

/* ---- vDSO ----------------------------------------------------------------------------------- */

/* A vDSO symbol by name and version ("LINUX_2.6" for Linux's, "KTLS_1" for the KTLS
 * accessors), from the image AT_SYSINFO_EHDR announced; NULL when absent. */
void *ktls_vdso_sym(const char *name, const char *version);

/* ---- Formatted output: %d %i %u %x %X %o %c %s %p %% with flags, width, precision and the
 * length modifiers hh h l ll z j t (no floating point). ----------------------------------- */

int ktls_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ktls_dprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ktls_snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ktls_vprintf(const char *fmt, va_list ap);
int ktls_vdprintf(int fd, const char *fmt, va_list ap);
int ktls_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);

/* ---- The libc subset ------------------------------------------------------------------------ */

#if !defined(__timespec_defined) && !defined(_STRUCT_TIMESPEC)
#define __timespec_defined 1
#define _STRUCT_TIMESPEC 1
struct timespec {
	long tv_sec;
	long tv_nsec;
};
#endif
#ifndef CLOCK_REALTIME
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#endif

long read(int fd, void *buf, size_t n);
long write(int fd, const void *buf, size_t n);
void exit(int status) __attribute__((noreturn)); /* runs .fini_array, then exit_group */
void _exit(int status) __attribute__((noreturn));
void _Exit(int status) __attribute__((noreturn));
void abort(void) __attribute__((noreturn));
int getpid(void);
int gettid(void);
unsigned int getuid(void);
unsigned int geteuid(void);
unsigned int getgid(void);
unsigned int getegid(void);
int clock_gettime(int clock, struct timespec *ts);
unsigned long getauxval(unsigned long key);
long syscall(long nr, ...);
long ktls_syscall(long nr, ...);
int *__errno_location(void);
#ifndef errno
#define errno (*__errno_location())
#endif

void *malloc(size_t n);
void free(void *p);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void *aligned_alloc(size_t align, size_t n);
int posix_memalign(void **out, size_t align, size_t n);
size_t malloc_usable_size(void *p);

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KTLS_H */
