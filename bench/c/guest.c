/* ktls-bench guest program: a static x86_64 program without libc that runs as the program on
 * ktls (argv[1] = "ktls") and as /init on Linux (argv[1] = "linux"), and counts instructions
 * per operation with rdtsc. It is meant for QEMU TCG with `-icount shift=0`, where the guest
 * TSC advances by one per instruction executed, so every delta is an exact instruction count
 * (plus whatever interrupts happened meanwhile: hence several repetitions).
 *
 * Output, one line each (the host parses them; see bench/src/guest.rs):
 *   @kb boot TSC                       the TSC at the program's first instruction
 *   @kb info KEY=VALUE ...             what the kernel offered
 *   @kb m NAME N EXTRA D1 ... DR       R repetitions of N operations took D1..DR TSC ticks;
 *                                      EXTRA instructions per operation are set-up to subtract
 *   @kb t NAME N 0 D1 ... DR           the same for a C loop (nothing is subtracted)
 *   @kb na NAME REASON                 NAME was not measured
 *   @kb done
 * Every "m" loop is the body followed by `dec %rbx; jnz`; the host subtracts the empty loop
 * ("base:N") of the same N, so a figure is the body's instructions minus EXTRA. "t" figures
 * (threads, ping-pong) include their C loop's few instructions per operation.
 */

#include "vdso_sym.h"

typedef unsigned long u64;
typedef unsigned int u32;
typedef long i64;

#define REPS 9

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_madvise 28
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_uname 63
#define SYS_getuid 102
#define SYS_getppid 110
#define SYS_arch_prctl 158
#define SYS_ioperm 173
#define SYS_reboot 169
#define SYS_gettid 186
#define SYS_futex 202
#define SYS_sched_setaffinity 203
#define SYS_exit_group 231
#define SYS_mkdir 83
#define SYS_mount 165
#define SYS_nanosleep 35
#define SYS_getcpu 309
#define SYS_rseq 334
#define SYS_clone3 435

#define ARCH_SET_FS 0x1002
#define AT_NULL 0
#define AT_HWCAP2 26
#define AT_SYSINFO_EHDR 33
#define AT_RSEQ_FEATURE_SIZE 27
#define AT_KTLS_FEATURE_SIZE 0x4b544c01
#define HWCAP2_FSGSBASE 2
#define RSEQ_SIG 0x53053053
#define RSEQ_FLAG_KTLS 0x10000
#define KTLS_LEN 128
#define FUTEX_WAIT 0
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#define ENOSYS 38

#define CLONE_VM 0x100
#define CLONE_FS 0x200
#define CLONE_FILES 0x400
#define CLONE_SIGHAND 0x800
#define CLONE_THREAD 0x10000
#define CLONE_SYSVSEM 0x40000
#define CLONE_SETTLS 0x80000
#define CLONE_PARENT_SETTID 0x100000
#define CLONE_CHILD_CLEARTID 0x200000
#define CLONE_RSEQ_KTLS 0x10000000000UL
#define THREAD_FLAGS                                                                      \
	(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | \
	 CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

/* ---- system calls ---- */

static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	i64 r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (i64)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (i64)(a), (i64)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (i64)(a), (i64)(b), (i64)(c), (i64)(d), 0, 0)

/* gcc may call these for struct copies and initializers. */
void *memset(void *d, int c, u64 n)
{
	char *p = d;
	while (n--)
		*p++ = (char)c;
	return d;
}

void *memcpy(void *d, const void *s, u64 n)
{
	char *p = d;
	const char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- output ---- */

static char outbuf[4096];
static u64 outlen;

static void flush(void)
{
	u64 off = 0;
	while (off < outlen) {
		i64 r = sys3(SYS_write, 1, outbuf + off, outlen - off);
		if (r <= 0)
			break;
		off += (u64)r;
	}
	outlen = 0;
}

static void puts_(const char *s)
{
	while (*s) {
		if (outlen == sizeof outbuf)
			flush();
		outbuf[outlen++] = *s++;
	}
}

static void putu(u64 v)
{
	char b[24];
	int i = sizeof b;
	b[--i] = 0;
	do
		b[--i] = (char)('0' + v % 10);
	while (v /= 10);
	puts_(b + i);
}

static void puthex(u64 v)
{
	char b[24];
	int i = sizeof b;
	b[--i] = 0;
	do
		b[--i] = "0123456789abcdef"[v & 15];
	while (v >>= 4);
	puts_("0x");
	puts_(b + i);
}

static void line_end(void)
{
	puts_("\n");
	flush();
}

static void na(const char *name, const char *why)
{
	puts_("@kb na ");
	puts_(name);
	puts_(" ");
	puts_(why);
	line_end();
}

/* ---- thread pointers, TLS and the KTLS area ----
 * Every thread gets a `struct thread_mem`: its static TLS block (x86_64 variant II: the TLS
 * block lies just below the thread pointer) and the TCB, whose first word points to itself
 * (%fs:0), as libcs keep it. The KTLS (or, on Linux, rseq) area is a __thread variable, so its
 * offset from the thread pointer is the same in every thread. */

struct ktls_area {
	u32 cpu_id_start, cpu_id;
	u64 rseq_cs;
	u32 flags, node_id, mm_cid, slice_ctrl;
	unsigned char rseq_reserved[32];
	u32 ktls_live, tid, pid, uid, euid, gid, egid, sig_defer, sig_pending;
	unsigned char pad[28];
} __attribute__((aligned(64)));

__thread struct ktls_area ktls_area;
__thread u32 plain_tls;

#define TLS_RESERVE 4096
struct tcb {
	struct tcb *self;
	u64 pad[7];
};
struct thread_mem {
	unsigned char tls[TLS_RESERVE];
	struct tcb tcb;
} __attribute__((aligned(64)));

static struct thread_mem main_mem, child_mem;
static unsigned char child_stack[65536] __attribute__((aligned(16)));

i64 ktls_off;          /* area address - thread pointer (as a libc's __ktls_offset) */
static int have_ktls;  /* KTLS area registered */
static int have_rseq;  /* plain rseq area registered (Linux) */
static u32 hwcap2;

/* All TLS variables are zero-initialized (.tbss), and the memory is static, so a thread's
 * TLS block needs nothing but the TCB's self pointer. */
static struct tcb *thread_mem_init(struct thread_mem *m)
{
	m->tcb.self = &m->tcb;
	return &m->tcb;
}

/* Zero a thread's area (as a libc does before the thread runs): 16 stores. */
static void zero_area(struct thread_mem *m)
{
	volatile u64 *a = (volatile u64 *)((char *)&m->tcb + ktls_off);
	for (int i = 0; i < KTLS_LEN / 8; i++)
		a[i] = 0;
}

static struct tcb *self_tp(void)
{
	struct tcb *t;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(t));
	return t;
}

static i64 register_area(void)
{
	char *area = (char *)self_tp() + ktls_off;
	if (have_ktls)
		return sys4(SYS_rseq, area, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
	if (have_rseq)
		return sys4(SYS_rseq, area, 32, 0, RSEQ_SIG);
	return 0;
}

/* ---- timed loops ---- */

#define LOOP_FENCE ""
#include "timed_loop.h"

DEFINE_LOOP(loop_base, "")
DEFINE_LOOP(loop_tls, "mov %%fs:plain_tls@tpoff, %%eax")
DEFINE_LOOP(loop_ktls_cpu, "mov ktls_off(%%rip), %%rax\n mov %%fs:4(%%rax), %%eax")
DEFINE_LOOP(loop_ktls_tid, "mov ktls_off(%%rip), %%rax\n mov %%fs:68(%%rax), %%eax")
DEFINE_LOOP(loop_ktls_pid, "mov ktls_off(%%rip), %%rax\n mov %%fs:72(%%rax), %%eax")
DEFINE_LOOP(loop_ktls_uid, "mov ktls_off(%%rip), %%rax\n mov %%fs:76(%%rax), %%eax")
DEFINE_LOOP(loop_call, "call *%%r12")
DEFINE_LOOP(loop_call_area, "mov ktls_off(%%rip), %%rdi\n add %%fs:0, %%rdi\n call *%%r12")
DEFINE_LOOP(loop_call3, "xor %%edi, %%edi\n xor %%esi, %%esi\n xor %%edx, %%edx\n call *%%r12")
DEFINE_LOOP(loop_syscall, "mov %%r12, %%rax\n syscall")
DEFINE_LOOP(loop_set_fs, "mov $158, %%eax\n mov $0x1002, %%edi\n mov %%fs:0, %%rsi\n syscall")
DEFINE_LOOP(loop_wrfsbase, "mov %%fs:0, %%rsi\n wrfsbase %%rsi")
DEFINE_LOOP(loop_touch, "movb $1, (%%r12)\n add $4096, %%r12")


static u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

/* kind "m": an asm loop, the host subtracts the empty loop of the same N and EXTRA per
 * operation; kind "t": a C loop, the host divides by N and subtracts nothing. */
static void emit(const char *kind, const char *name, u64 n, u64 extra, const u64 *d)
{
	puts_("@kb ");
	puts_(kind);
	puts_(" ");
	puts_(name);
	puts_(" ");
	putu(n);
	puts_(" ");
	putu(extra);
	for (int r = 0; r < REPS; r++) {
		puts_(" ");
		putu(d[r]);
	}
	line_end();
}

/* Sizes of the loops: each repetition stays well below a timer period (4 ms = 4M
 * instructions on Linux at HZ=250) so that most repetitions see no interrupt. */
#define N_CHEAP 10000
#define N_SYSCALL 2000

static void base(u64 n)
{
	u64 d[REPS];
	char name[32] = "base:";
	char num[24];
	int i = sizeof num;
	u64 v = n;
	num[--i] = 0;
	do
		num[--i] = (char)('0' + v % 10);
	while (v /= 10);
	int j = 5;
	while (num[i])
		name[j++] = num[i++];
	name[j] = 0;
	for (int r = 0; r < REPS; r++)
		d[r] = loop_base(n, 0);
	emit("m", name, n, 0, d);
}

static void measure(const char *name, loop_fn f, u64 n, u64 arg, u64 extra)
{
	u64 d[REPS];
	f(n < 100 ? n : 100, arg); /* warm up: first-touch faults, cold paths */
	for (int r = 0; r < REPS; r++)
		d[r] = f(n, arg);
	emit("m", name, n, extra, d);
}

static void measure_syscall(const char *name, u64 nr)
{
	i64 r = sys0(nr);
	if (r == -ENOSYS) {
		na(name, "ENOSYS");
		return;
	}
	measure(name, loop_syscall, N_SYSCALL, nr, 1);
}

/* ---- page faults: first touch of fresh anonymous pages ---- */

#define FAULT_PAGES 256

static void measure_faults(void)
{
	u64 d[REPS];
	for (int r = -1; r < REPS; r++) {
		u64 len = FAULT_PAGES * 4096UL;
		i64 p = sys6(SYS_mmap, 0, len, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
		if (p < 0 && p > -4096) {
			na("page_fault", "mmap_failed");
			return;
		}
		sys3(SYS_madvise, p, len, 15 /* MADV_NOHUGEPAGE */);
		u64 t = loop_touch(FAULT_PAGES, (u64)p);
		if (r >= 0)
			d[r] = t;
		sys2(SYS_munmap, p, len);
	}
	emit("m", "page_fault", FAULT_PAGES, 1, d);
}

/* ---- threads ---- */

struct clone_args {
	u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
		set_tid_size, cgroup;
};

/* long spawn(struct clone_args *, u64 size, void (*fn)(void)): clone3; the child calls fn on
 * its new stack and then exits the thread. */
long spawn(struct clone_args *a, u64 size, void (*fn)(void));
__asm__(".text\n.globl spawn\nspawn:\n"
	"  push %r12\n"
	"  mov %rdx, %r12\n"
	"  mov $435, %eax\n"
	"  syscall\n"
	"  test %rax, %rax\n"
	"  jz 1f\n"
	"  pop %r12\n"
	"  ret\n"
	"1:\n"
	"  xor %ebp, %ebp\n"
	"  call *%r12\n"
	"  mov $60, %eax\n"
	"  xor %edi, %edi\n"
	"  syscall\n"
	"  ud2\n");

static volatile u32 child_tid;

static long start_thread(struct thread_mem *m, unsigned char *stack, u64 stack_size,
			 void (*fn)(void), u64 extra_flags)
{
	struct clone_args a;
	memset(&a, 0, sizeof a);
	zero_area(m);
	a.flags = THREAD_FLAGS | extra_flags;
	a.child_tid = (u64)&child_tid;
	a.parent_tid = (u64)&child_tid;
	a.stack = (u64)stack;
	a.stack_size = stack_size;
	a.tls = (u64)&m->tcb;
	return spawn(&a, sizeof a, fn);
}

/* Wait until the kernel cleared child_tid at the thread's exit (CLONE_CHILD_CLEARTID). Linux
 * wakes that word with a shared-futex wake, which a FUTEX_PRIVATE waiter would never see
 * (glibc's pthread_join waits shared for the same reason). */
static void join(void)
{
	u32 v;
	while ((v = child_tid) != 0)
		sys4(SYS_futex, &child_tid, FUTEX_WAIT, v, 0);
}

static void child_nothing(void)
{
}

static void child_register(void)
{
	register_area();
}

/* Create and join `n` threads; returns the TSC ticks, or 0 if clone3 failed. */
static u64 create_join(u64 n, void (*fn)(void), u64 extra_flags, long *err)
{
	u64 t0 = rdtsc();
	for (u64 i = 0; i < n; i++) {
		long r = start_thread(&child_mem, child_stack, sizeof child_stack, fn, extra_flags);
		if (r < 0) {
			*err = r;
			return 0;
		}
		join();
	}
	return rdtsc() - t0;
}

#define N_THREADS 50

static void measure_create(const char *name, void (*fn)(void), u64 extra_flags)
{
	u64 d[REPS];
	long err = 0;
	create_join(2, fn, extra_flags, &err);
	for (int r = 0; r < REPS && !err; r++)
		d[r] = create_join(N_THREADS, fn, extra_flags, &err);
	if (err) {
		na(name, err == -ENOSYS ? "ENOSYS" : "clone3_failed");
		return;
	}
	emit("t", name, N_THREADS, 0, d);
}

/* Ping-pong: the main thread sets the word to 1 and wakes the partner, then waits until the
 * partner has set it back to 0 and woken it. One round is two context switches. */
static volatile u32 pp_word;
static unsigned char pp_stack[65536] __attribute__((aligned(16)));
static struct thread_mem pp_mem;

static void pin_cpu0(void)
{
	u64 mask = 1;
	sys3(SYS_sched_setaffinity, 0, sizeof mask, &mask);
}

static void pp_partner(void)
{
	if (!have_ktls)
		register_area(); /* on Linux, as glibc's start_thread does */
	pin_cpu0();
	for (;;) {
		u32 v;
		while ((v = pp_word) == 0)
			sys4(SYS_futex, &pp_word, FUTEX_WAIT_PRIVATE, 0, 0);
		if (v == 2)
			return;
		pp_word = 0;
		sys3(SYS_futex, &pp_word, FUTEX_WAKE_PRIVATE, 1);
	}
}

static u64 pp_rounds(u64 n)
{
	u64 t0 = rdtsc();
	for (u64 i = 0; i < n; i++) {
		pp_word = 1;
		sys3(SYS_futex, &pp_word, FUTEX_WAKE_PRIVATE, 1);
		while (pp_word == 1)
			sys4(SYS_futex, &pp_word, FUTEX_WAIT_PRIVATE, 1, 0);
	}
	return rdtsc() - t0;
}

#define N_ROUNDS 200

static void measure_pingpong(void)
{
	u64 d[REPS];
	pin_cpu0();
	long r = start_thread(&pp_mem, pp_stack, sizeof pp_stack, pp_partner,
			      have_ktls ? CLONE_RSEQ_KTLS : 0);
	if (r < 0) {
		na("futex_pingpong", "clone3_failed");
		return;
	}
	pp_rounds(20);
	for (int i = 0; i < REPS; i++)
		d[i] = pp_rounds(N_ROUNDS);
	pp_word = 2;
	sys3(SYS_futex, &pp_word, FUTEX_WAKE_PRIVATE, 1);
	join();
	/* N counts context switches: two per round. */
	emit("t", "futex_pingpong", 2 * N_ROUNDS, 0, d);
}

/* ---- profiling: one operation between the global labels prof_begin_OP and prof_end_OP, for
 * a debugger that single-steps from one to the other (bench/profile.py). Each is done once
 * before, so the marked one finds warm caches and mapped pages. ---- */

static void __attribute__((noinline)) profile_syscall(u64 nr)
{
	sys0(nr);
	__asm__ volatile(".globl prof_begin_syscall\nprof_begin_syscall:\n"
			 "syscall\n"
			 ".globl prof_end_syscall\nprof_end_syscall:\n"
			 : "+a"(nr)
			 : "D"(0L), "S"(0L), "d"(0L)
			 : "rcx", "r11", "memory");
}

static void __attribute__((noinline)) profile_vdso(void *fn)
{
	((void (*)(void))fn)();
	__asm__ volatile(".globl prof_begin_vdso\nprof_begin_vdso:\n"
			 "call *%0\n"
			 ".globl prof_end_vdso\nprof_end_vdso:\n" ::"r"(fn)
			 : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
}

static void __attribute__((noinline)) profile_fault(void)
{
	i64 p = sys6(SYS_mmap, 0, 8192, 3, 0x22, -1, 0);
	*(volatile char *)p = 1;
	__asm__ volatile(".globl prof_begin_fault\nprof_begin_fault:\n"
			 "movb $1, 4096(%0)\n"
			 ".globl prof_end_fault\nprof_end_fault:\n" ::"r"(p) : "memory");
}

static void __attribute__((noinline)) profile_pingpong(void)
{
	pin_cpu0();
	if (start_thread(&pp_mem, pp_stack, sizeof pp_stack, pp_partner,
			 have_ktls ? CLONE_RSEQ_KTLS : 0) < 0)
		return;
	pp_rounds(20);
	__asm__ volatile(".globl prof_begin_pingpong\nprof_begin_pingpong:" ::: "memory");
	pp_rounds(1);
	__asm__ volatile(".globl prof_end_pingpong\nprof_end_pingpong:" ::: "memory");
	pp_word = 2;
	sys3(SYS_futex, &pp_word, FUTEX_WAKE_PRIVATE, 1);
	join();
}

static void __attribute__((noinline)) profile_thread(void)
{
	long err = 0;
	create_join(2, child_nothing, have_ktls ? CLONE_RSEQ_KTLS : 0, &err);
	__asm__ volatile(".globl prof_begin_thread\nprof_begin_thread:" ::: "memory");
	create_join(1, child_nothing, have_ktls ? CLONE_RSEQ_KTLS : 0, &err);
	__asm__ volatile(".globl prof_end_thread\nprof_end_thread:" ::: "memory");
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* The rest of `s` after `prefix`, or 0. */
static const char *after(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return s;
}

/* Linux's kernel symbols for bench/profile.py (Debian's System.map is a placeholder). */
static void dump_kallsyms(void)
{
	static char buf[65536];
	sys2(SYS_mkdir, "/proc", 0555);
	sys6(SYS_mount, (i64) "proc", (i64) "/proc", (i64) "proc", 0, 0, 0);
	i64 fd = sys2(SYS_open, "/proc/kallsyms", 0);
	if (fd < 0)
		return;
	puts_("@kb kallsyms begin");
	line_end();
	for (;;) {
		i64 n = sys3(SYS_read, fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (i64 off = 0; off < n;) {
			i64 w = sys3(SYS_write, 1, buf + off, n - off);
			if (w <= 0)
				break;
			off += w;
		}
	}
	puts_("@kb kallsyms end");
	line_end();
}

/* ---- startup ---- */

struct utsname {
	char sysname[65], nodename[65], release[65], version[65], machine[65], domainname[65];
};

static void finish(int linux_init)
{
	puts_("@kb done");
	line_end();
	if (linux_init) {
		/* QEMU's isa-debug-exit, else a reboot that -no-reboot turns into QEMU's exit. */
		if (sys3(SYS_ioperm, 0xf4, 4, 1) == 0)
			__asm__ volatile("outl %0, %1" ::"a"(0), "Nd"((unsigned short)0xf4));
		sys4(SYS_reboot, 0xfee1dead, 672274793, 0x01234567, 0);
	}
	sys1(SYS_exit_group, 0);
	for (;;)
		;
}

void bench_main(u64 *sp, u64 boot_tsc)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	while (*envp)
		envp++;
	u64 *auxv = (u64 *)(envp + 1);
	u64 vdso = 0, ktls_fsz = 0, rseq_fsz = 0;
	for (; auxv[0] != AT_NULL; auxv += 2) {
		switch (auxv[0]) {
		case AT_SYSINFO_EHDR: vdso = auxv[1]; break;
		case AT_HWCAP2: hwcap2 = (u32)auxv[1]; break;
		case AT_KTLS_FEATURE_SIZE: ktls_fsz = auxv[1]; break;
		case AT_RSEQ_FEATURE_SIZE: rseq_fsz = auxv[1]; break;
		}
	}
	/* Arguments may come in any order: Linux passes kernel parameters it does not know (such
	 * as nokaslr) to init too. */
	int linux_init = 0;
	const char *op = 0;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "linux"))
			linux_init = 1;
		if (after(argv[i], "profile-"))
			op = argv[i];
	}

	puts_("@kb boot ");
	putu(boot_tsc);
	line_end();

	/* Our own thread pointer and TLS block. */
	struct tcb *tp = thread_mem_init(&main_mem);
	sys2(SYS_arch_prctl, ARCH_SET_FS, tp);
	ktls_off = (char *)&ktls_area - (char *)tp;
	if ((char *)tp + ktls_off < (char *)main_mem.tls || (((u64)tp + ktls_off) & 63)) {
		na("all", "tls_layout");
		finish(linux_init);
	}
	thread_mem_init(&child_mem);
	thread_mem_init(&pp_mem);

	if (ktls_fsz) {
		i64 r = sys4(SYS_rseq, (char *)tp + ktls_off, KTLS_LEN, RSEQ_FLAG_KTLS, RSEQ_SIG);
		have_ktls = r == 0;
		if (r) {
			puts_("@kb note ktls_register_failed ");
			putu((u64)-r);
			line_end();
		}
	} else {
		have_rseq = sys4(SYS_rseq, (char *)tp + ktls_off, 32, 0, RSEQ_SIG) == 0;
	}
	pin_cpu0();

	struct utsname u;
	memset(&u, 0, sizeof u);
	sys1(SYS_uname, &u);
	void *v_gettid = vdso ? vdso_sym((void *)vdso, "__vdso_gettid") : 0;
	void *v_getpid = vdso ? vdso_sym((void *)vdso, "__vdso_getpid") : 0;
	void *v_getuid = vdso ? vdso_sym((void *)vdso, "__vdso_getuid") : 0;
	void *v_getcpu = vdso ? vdso_sym((void *)vdso, "__vdso_getcpu") : 0;
	void *v_ktls_gettid = vdso ? vdso_sym((void *)vdso, "__vdso_ktls_gettid") : 0;
	puts_("@kb info sysname=");
	puts_(u.sysname);
	puts_(" release=");
	puts_(u.release);
	puts_(" hwcap2=");
	puthex(hwcap2);
	puts_(" ktls_feature_size=");
	putu(ktls_fsz);
	puts_(" rseq_feature_size=");
	putu(rseq_fsz);
	puts_(" ktls=");
	putu((u64)have_ktls);
	puts_(" rseq=");
	putu((u64)(have_ktls || have_rseq));
	puts_(" vdso=");
	putu(vdso != 0);
	puts_(" tls_offset=");
	putu((u64)-ktls_off);
	line_end();

	if (op) {
		/* `guest KERNEL profile-OP`: one marked operation for bench/profile.py. */
		const char *nr_text = after(op, "profile-sys-");
		if (nr_text) {
			u64 nr = 0;
			for (const char *c = nr_text; *c >= '0' && *c <= '9'; c++)
				nr = nr * 10 + (u64)(*c - '0');
			profile_syscall(nr);
		} else if (streq(op, "profile-vdso-gettid") && v_gettid)
			profile_vdso(v_gettid);
		else if (streq(op, "profile-fault"))
			profile_fault();
		else if (streq(op, "profile-pingpong"))
			profile_pingpong();
		else if (streq(op, "profile-thread"))
			profile_thread();
		else {
			puts_("@kb na profile unknown_operation ");
			puts_(op);
			line_end();
		}
		if (linux_init)
			dump_kallsyms();
		finish(linux_init);
	}

	if (linux_init) {
		/* Let the boot's background work (kworkers, RCU, deferred initcalls) settle. With
		 * -icount sleep=off, idle time passes instantly. */
		struct {
			i64 s, ns;
		} ts = {2, 0};
		sys2(SYS_nanosleep, &ts, 0);
	}


	base(N_CHEAP);
	base(N_SYSCALL);
	base(FAULT_PAGES);

	measure("tls_load", loop_tls, N_CHEAP, 0, 0);
	if (have_ktls) {
		measure("ktls_load_tid", loop_ktls_tid, N_CHEAP, 0, 0);
		measure("ktls_load_pid", loop_ktls_pid, N_CHEAP, 0, 0);
		measure("ktls_load_uid", loop_ktls_uid, N_CHEAP, 0, 0);
	} else {
		na("ktls_load_tid", "no_ktls");
		na("ktls_load_pid", "no_ktls");
		na("ktls_load_uid", "no_ktls");
	}
	if (have_ktls || have_rseq)
		measure("rseq_load_cpu", loop_ktls_cpu, N_CHEAP, 0, 0);
	else
		na("rseq_load_cpu", "no_rseq");

	const struct {
		const char *name;
		void *fn;
		int args;
	} vdso_fns[] = {
		{"vdso_gettid", v_gettid, 0},
		{"vdso_getpid", v_getpid, 0},
		{"vdso_getuid", v_getuid, 0},
		{"vdso_getcpu", v_getcpu, 3},
	};
	measure("call_empty", loop_call, N_CHEAP, (u64)ret_stub, 0);
	if (!v_ktls_gettid)
		na("vdso_ktls_gettid", vdso ? "no_symbol" : "no_vdso");
	else if (!have_ktls)
		na("vdso_ktls_gettid", "no_ktls");
	else
		measure("vdso_ktls_gettid", loop_call_area, N_CHEAP, (u64)v_ktls_gettid, 2);
	for (unsigned i = 0; i < sizeof vdso_fns / sizeof vdso_fns[0]; i++) {
		if (!vdso_fns[i].fn)
			na(vdso_fns[i].name, vdso ? "no_symbol" : "no_vdso");
		else if (vdso_fns[i].args)
			measure(vdso_fns[i].name, loop_call3, N_CHEAP, (u64)vdso_fns[i].fn, 3);
		else
			measure(vdso_fns[i].name, loop_call, N_CHEAP, (u64)vdso_fns[i].fn, 0);
	}

	measure_syscall("sys_getppid", SYS_getppid);
	measure_syscall("sys_gettid", SYS_gettid);
	measure_syscall("sys_getpid", SYS_getpid);
	measure_syscall("sys_getuid", SYS_getuid);
	measure_syscall("sys_getcpu", SYS_getcpu);

	measure("arch_prctl_set_fs", loop_set_fs, N_SYSCALL, 0, 3);
	if (hwcap2 & HWCAP2_FSGSBASE)
		measure("wrfsbase", loop_wrfsbase, N_CHEAP, 0, 1);
	else
		na("wrfsbase", "no_fsgsbase");

	measure_faults();
	measure_pingpong();
	if (have_ktls)
		measure_create("thread_ktls_clone", child_nothing, CLONE_RSEQ_KTLS);
	else
		na("thread_ktls_clone", "no_ktls");
	if (have_ktls || have_rseq)
		measure_create("thread_register", child_register, 0);
	else
		na("thread_register", "no_rseq");
	measure_create("thread_bare", child_nothing, 0);

	finish(linux_init);
}

/* The first instruction: read the TSC before anything else. */
__asm__(".text\n.globl _start\n_start:\n"
	"  rdtsc\n"
	"  shl $32, %rdx\n"
	"  or %rdx, %rax\n"
	"  mov %rax, %rsi\n"
	"  mov %rsp, %rdi\n"
	"  xor %ebp, %ebp\n"
	"  and $-16, %rsp\n"
	"  call bench_main\n"
	"  ud2\n");
