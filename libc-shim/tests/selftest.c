/* A self-checking program for the ktls libc shim: TLS blocks, the TCB, the KTLS area and its
 * registration, threads, errno, the allocator, printf, the string functions, clocks and
 * constructors. One "ok WHAT" or "FAIL WHAT: why" line per check, "all checks passed" and exit
 * status 0 when every check passed. Runs on ktls (any level) and on Linux.
 *
 * Build: libc-shim/ktls-cc -O2 -o selftest libc-shim/tests/selftest.c */
#include "ktls.h"

static int failures;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (cond) {                                       \
			ktls_printf("ok " __VA_ARGS__);           \
			ktls_printf("\n");                        \
		} else {                                          \
			failures++;                               \
			ktls_printf("FAIL " __VA_ARGS__);         \
			ktls_printf(": %s (line %d)\n", #cond, __LINE__); \
		}                                                 \
	} while (0)

#define NTHREADS 4

/* TLS: initialised data, zeroed data, and an over-aligned variable. */
static __thread int tls_init = 42;
static __thread char tls_zero[100];
static __thread _Alignas(128) long tls_aligned = 7;

static int constructed;
__attribute__((constructor)) static void ctor(void)
{
	constructed = 1;
}

static uint64_t fs_load64(long off)
{
	uint64_t v;
	__asm__ volatile("movq %%fs:(%1), %0" : "=r"(v) : "r"(off));
	return v;
}

static void check_format(void)
{
	char buf[128];
	struct {
		const char *want;
		int n;
	} cases[8];
	int i = 0;
#define FMT(want_, ...)                                                    \
	do {                                                               \
		cases[i].n = ktls_snprintf(buf, sizeof buf, __VA_ARGS__); \
		cases[i].want = want_;                                     \
		CHECK(strcmp(buf, want_) == 0 && cases[i].n == (int)strlen(want_), \
		      "snprintf %s", want_);                               \
	} while (0)
	FMT("-42|42|ffffffff|4294967295", "%d|%u|%x|%u", -42, 42u, -1, -1);
	FMT("-9223372036854775808|18446744073709551615", "%ld|%lu", (long)(-9223372036854775807L - 1),
	    ~0UL);
	FMT("[   7][7   ][007][+7][ 7]", "[%4d][%-4d][%03d][%+d][% d]", 7, 7, 7, 7, 7);
	FMT("0x1f|0X1F|1F|(nil)|0x10", "%#x|%#X|%X|%p|%p", 31, 31, 31, (void *)0, (void *)16);
	char *volatile null = 0; /* hidden from the compiler's format checks */
	FMT("abc|ab|  abc|(null)|x|%", "%s|%.2s|%5s|%s|%c|%%", "abc", "abc", "abc", null, 'x');
	FMT("[00042][  -42][-0042]", "[%05d][%*d][%.4d]", 42, 5, -42, -42);
	char small[4];
	int n = ktls_snprintf(small, sizeof small, "%s", "truncated");
	CHECK(n == 9 && strcmp(small, "tru") == 0, "snprintf truncates and returns the full length");
	(void)cases;
}

static void check_strings(void)
{
	char a[64], b[64];
	memset(a, 'x', sizeof a);
	CHECK(a[0] == 'x' && a[63] == 'x', "memset");
	for (int i = 0; i < 64; i++)
		a[i] = (char)i;
	memcpy(b, a, 64);
	CHECK(memcmp(a, b, 64) == 0, "memcpy and memcmp");
	b[10] = 100;
	CHECK(memcmp(a, b, 64) < 0 && memcmp(b, a, 64) > 0, "memcmp orders");
	memmove(a + 1, a, 32);
	CHECK(a[1] == 0 && a[32] == 31, "memmove overlapping upwards");
	memmove(a, a + 1, 32);
	CHECK(a[0] == 0 && a[31] == 31, "memmove overlapping downwards");
	CHECK(strlen("") == 0 && strlen("hello") == 5, "strlen");
	CHECK(strcmp("abc", "abd") < 0 && strncmp("abc", "abd", 2) == 0, "strcmp and strncmp");
}

static void check_errno(void)
{
	errno = 0;
	long r = read(-1, 0, 0);
	CHECK(r == -1 && errno == 9, "read(-1) fails with EBADF in errno");
	r = write(1, "", 0);
	CHECK(r == 0, "write of nothing");
	CHECK(ktls_syscall(KTLS_SYS_getpid) == getpid(), "syscall(SYS_getpid)");
	errno = 0;
	CHECK(ktls_syscall(100000) == -1 && errno == 38, "syscall of an unknown number: ENOSYS");
}

/* Checks on the calling thread's TCB, TLS and area; returns the number of failures. */
static int check_thread(const char *who, int expect_reg)
{
	int before = failures;
	uint64_t tp = fs_load64(0);
	CHECK(tp == (uint64_t)__builtin_thread_pointer() && tp % 64 == 0,
	      "%s: %%fs:0 is the 64-byte aligned thread pointer", who);
	CHECK(fs_load64(0x10) == tp, "%s: the TCB's second self pointer", who);
	uint64_t guard = fs_load64(0x28);
	CHECK(guard != 0 && (guard & 0xff) == 0, "%s: stack guard at %%fs:0x28 (low byte 0)", who);
	CHECK(tls_init == 42 && tls_zero[0] == 0 && tls_zero[99] == 0 && tls_aligned == 7,
	      "%s: TLS initialised from PT_TLS", who);
	CHECK((uintptr_t)&tls_aligned % 128 == 0, "%s: over-aligned TLS variable", who);
	CHECK((uintptr_t)&tls_init < tp && (uintptr_t)&tls_init >= tp - 16384,
	      "%s: TLS below the thread pointer", who);
	tls_init++;
	tls_zero[5] = 1;
	CHECK(__ktls_offset == 128 && ((uintptr_t)tp + __ktls_offset) % KTLS_ALIGN == 0,
	      "%s: area at the thread pointer + 128, aligned", who);
	CHECK(ktls_thread_registration() == expect_reg, "%s: registration %d", who,
	      ktls_thread_registration());
	if (__ktls_size) {
		volatile struct ktls_area *a = ktls_self();
		CHECK(a->ktls_live == KTLS_LIVE, "%s: area live", who);
		CHECK(a->tid == (uint32_t)ktls_syscall0(KTLS_SYS_gettid) &&
			      a->pid == (uint32_t)ktls_syscall0(KTLS_SYS_getpid),
		      "%s: area tid and pid", who);
#if KTLS_LEVEL_BUILT_WITH >= 2
		if (KTLS_HAS(egid))
			CHECK(a->uid == (uint32_t)ktls_syscall0(KTLS_SYS_getuid) &&
				      a->euid == (uint32_t)ktls_syscall0(KTLS_SYS_geteuid) &&
				      a->gid == (uint32_t)ktls_syscall0(KTLS_SYS_getgid) &&
				      a->egid == (uint32_t)ktls_syscall0(KTLS_SYS_getegid),
			      "%s: area credentials", who);
		if (KTLS_HAS(sig_pending)) {
			ktls_defer_signals();
			CHECK(a->sig_defer == 1, "%s: sig_defer counts", who);
			ktls_undefer_signals();
			CHECK(a->sig_defer == 0 && a->sig_pending == 0, "%s: sig_defer back to 0", who);
		}
#endif
	}
	CHECK(ktls_gettid() == (int)ktls_syscall0(KTLS_SYS_gettid) && gettid() == ktls_gettid(),
	      "%s: gettid", who);
	CHECK(ktls_getpid() == getpid() && getpid() == (int)ktls_syscall0(KTLS_SYS_getpid),
	      "%s: getpid", who);
	CHECK(ktls_getuid() == getuid() && ktls_geteuid() == geteuid() &&
		      ktls_getgid() == getgid() && ktls_getegid() == getegid(),
	      "%s: credentials", who);
	int same = 0;
	for (int i = 0; i < 100 && !same; i++) {
		unsigned cpu = 0, node = 0;
		int k = ktls_cpu(), s = sched_getcpu();
		ktls_syscall3(KTLS_SYS_getcpu, (long)&cpu, (long)&node, 0);
		same = k == (int)cpu && s == (int)cpu;
	}
	CHECK(same, "%s: ktls_cpu, sched_getcpu and getcpu agree", who);
	if (__rseq_size) {
		int ok = 0;
		for (int i = 0; i < 100 && !ok; i++) {
			unsigned cpu = 0, node = 0;
			uint32_t rs = ktls_fs_load32(__rseq_offset + 4);
			ktls_syscall3(KTLS_SYS_getcpu, (long)&cpu, (long)&node, 0);
			ok = rs == cpu;
		}
		CHECK(ok, "%s: the rseq area's cpu_id is current", who);
	}
	return failures - before;
}

/* Allocator stress: many blocks of varied sizes, each filled with a pattern and checked. */
static int stress_malloc(unsigned seed)
{
	enum { SLOTS = 256, ROUNDS = 4000 };
	static __thread unsigned char *slot[SLOTS];
	static __thread size_t size[SLOTS];
	int bad = 0;
	unsigned x = seed;
	for (int r = 0; r < ROUNDS; r++) {
		x = x * 1103515245 + 12345;
		int i = (x >> 8) % SLOTS;
		if (slot[i]) {
			for (size_t k = 0; k < size[i]; k++)
				if (slot[i][k] != (unsigned char)(i + k))
					bad++;
			if ((x >> 3) & 1) {
				free(slot[i]);
				slot[i] = 0;
				continue;
			}
			size_t n = (x >> 12) % 3000;
			unsigned char *p = realloc(slot[i], n);
			if (!p && n) {
				bad++;
				continue;
			}
			size_t keep = n < size[i] ? n : size[i];
			for (size_t k = 0; k < keep; k++)
				if (p[k] != (unsigned char)(i + k))
					bad++;
			slot[i] = n ? p : 0;
			size[i] = n;
		} else {
			size_t n = (x >> 12) % ((x & 64) ? 100000 : 600);
			slot[i] = malloc(n);
			size[i] = n;
			if (!slot[i] || (uintptr_t)slot[i] % 16)
				bad++;
		}
		for (size_t k = 0; slot[i] && k < size[i]; k++)
			slot[i][k] = (unsigned char)(i + k);
	}
	for (int i = 0; i < SLOTS; i++) {
		free(slot[i]);
		slot[i] = 0;
	}
	return bad;
}

struct job {
	int index;
	int expect_reg;
	int failures;
	int tid;
	int malloc_bad;
	int tls_value;
	void *self;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	char who[16];
	ktls_snprintf(who, sizeof who, "thread %d", j->index);
	j->failures = check_thread(who, j->expect_reg);
	j->tid = gettid();
	j->malloc_bad = stress_malloc(j->index + 1);
	j->tls_value = tls_init;
	j->self = ktls_thread_self();
	return j;
}

int main(int argc, char **argv, char **envp)
{
	(void)argv;
	int no_clone_flag = 0;
	for (char **e = envp; *e; e++)
		no_clone_flag |= strcmp(*e, "KTLS_SHIM_NO_CLONE_RSEQ_KTLS=1") == 0;
	CHECK(argc >= 1, "argc");
	CHECK(constructed, "constructors ran before main");
	unsigned long fsz = getauxval(AT_KTLS_FEATURE_SIZE);
	CHECK(getauxval(6) == 4096, "getauxval(AT_PAGESZ)");
	if (fsz) {
		unsigned want = fsz < 128 ? (unsigned)fsz : 128;
		CHECK(__ktls_size == want, "__ktls_size is min(128, AT_KTLS_FEATURE_SIZE)");
	} else {
		CHECK(__ktls_size == 0, "__ktls_size 0 without KTLS");
	}
	CHECK(__ktls_flags == 0 && __rseq_flags == 0 && __rseq_offset == __ktls_offset,
	      "__ktls_flags, __rseq_flags, __rseq_offset");
	int expect_main = fsz ? KTLS_REG_KTLS_RSEQ : (__rseq_size ? KTLS_REG_RSEQ : KTLS_REG_NONE);
	/* With KTLS, threads get their area from clone3(CLONE_RSEQ_KTLS), or register it
	 * themselves when the flag is not used (KTLS_SHIM_NO_CLONE_RSEQ_KTLS=1). */
	int expect_thread = fsz && !no_clone_flag ? KTLS_REG_KTLS_CLONE3 : expect_main;

	check_format();
	check_strings();
	check_errno();
	check_thread("main", expect_main);

	struct timespec t0, t1;
	CHECK(clock_gettime(CLOCK_MONOTONIC, &t0) == 0 && clock_gettime(CLOCK_MONOTONIC, &t1) == 0 &&
		      (t1.tv_sec > t0.tv_sec || (t1.tv_sec == t0.tv_sec && t1.tv_nsec >= t0.tv_nsec)),
	      "CLOCK_MONOTONIC does not go back");
	CHECK(clock_gettime(CLOCK_REALTIME, &t0) == 0 && t0.tv_sec > 1600000000,
	      "CLOCK_REALTIME is after 2020");
	errno = 0;
	CHECK(clock_gettime(12345, &t0) == -1 && errno == 22, "clock_gettime of a bad clock: EINVAL");

	void *big = malloc(1 << 20);
	CHECK(big && malloc_usable_size(big) >= (1 << 20), "1 MiB malloc");
	free(big);
	unsigned char *z = calloc(1000, 3);
	int zeroed = z != 0;
	for (int i = 0; z && i < 3000; i++)
		zeroed &= z[i] == 0;
	CHECK(zeroed, "calloc zeroes");
	free(z);
	volatile size_t huge = (size_t)1 << 62;
	CHECK(calloc(huge, 8) == 0 && errno == 12, "calloc overflow: ENOMEM");
	void *al = aligned_alloc(4096, 100);
	CHECK(al && (uintptr_t)al % 4096 == 0, "aligned_alloc(4096)");
	free(al);
	void *pm = 0;
	CHECK(posix_memalign(&pm, 256, 10) == 0 && (uintptr_t)pm % 256 == 0, "posix_memalign");
	free(pm);

	CHECK(ktls_thread_self() == 0, "ktls_thread_self() is NULL in main");
	struct job jobs[NTHREADS];
	ktls_thread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		jobs[i] = (struct job){.index = i + 1, .expect_reg = expect_thread};
		CHECK(ktls_thread_create(&t[i], worker, &jobs[i]) == 0, "thread %d created", i + 1);
	}
	int main_bad = stress_malloc(99);
	for (int i = 0; i < NTHREADS; i++) {
		void *ret = 0;
		CHECK(ktls_thread_join(t[i], &ret) == 0 && ret == &jobs[i], "thread %d joined", i + 1);
		struct job *j = &jobs[i];
		failures += j->failures;
		CHECK(j->malloc_bad == 0, "thread %d: allocator stress", j->index);
		CHECK(j->tls_value == 43, "thread %d: its own TLS copy", j->index);
		CHECK(j->self == (void *)t[i], "thread %d: ktls_thread_self()", j->index);
		CHECK(j->tid != gettid(), "thread %d: a tid of its own", j->index);
		for (int k = 0; k < i; k++)
			CHECK(jobs[k].tid != j->tid, "threads %d and %d: different tids", k + 1, j->index);
	}
	CHECK(main_bad == 0, "main: allocator stress alongside the threads");
	CHECK(tls_init == 43 && tls_zero[5] == 1, "main: TLS unaffected by the threads");

	if (failures) {
		ktls_printf("%d checks FAILED\n", failures);
		return 1;
	}
	ktls_printf("all checks passed\n");
	return 0;
}
