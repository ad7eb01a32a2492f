/* ktls-bench native harness: runs on the host Linux as an ordinary (glibc, dynamically linked)
 * process and times ring-3 code paths in nanoseconds and TSC ticks:
 *   - a plain __thread load, a raw KTLS load and glibc's rseq cpu_id load (__rseq_offset);
 *   - ktls's vDSO accessors, with the built vDSO image (argv[1]) loaded into this process
 *     below a fake vvar page whose KTLS offset points at a __thread KTLS area we fill;
 *   - the host's own vDSO (getcpu, clock_gettime) and system calls.
 * Output (parsed by bench/src/native.rs):
 *   @nb info KEY=VALUE ...
 *   @nb m NAME N NS:TSC ...     one NS:TSC pair per repetition: N iterations of the loop took
 *                               NS nanoseconds and TSC ticks
 *   @nb na NAME REASON
 * Every loop is the body followed by `dec %rbx; jnz` (see `empty_loop` for that alone). */

#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vdso_sym.h"

#define REPS 11
#define N_CHEAP 2000000UL
#define N_SYSCALL 200000UL
#define HWCAP2_FSGSBASE 2

typedef uint64_t u64;

struct ktls_area {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags, node_id, mm_cid, slice_ctrl;
	unsigned char rseq_reserved[32];
	uint32_t ktls_live, tid, pid, uid, euid, gid, egid, sig_defer, sig_pending;
	unsigned char pad[28];
} __attribute__((aligned(64)));

/* The vvar page of spec/ktls.md section 10 (abi/src/vvar.rs). */
struct vvar {
	uint32_t seq, version, clock_mode, tsc_shift;
	uint64_t tsc_mult, base_tsc, base_mono_ns;
	int64_t realtime_offset_ns, ktls_offset;
	uint32_t ktls_feature_size, ktls_enabled, ktls_level, hwcap2;
};
_Static_assert(offsetof(struct vvar, ktls_offset) == 48, "vvar layout");
_Static_assert(offsetof(struct vvar, hwcap2) == 68, "vvar layout");
_Static_assert(offsetof(struct ktls_area, tid) == 68, "ktls layout");

__thread struct ktls_area ktls_area;
__thread uint32_t plain_tls;
long ktls_off;

#define LOOP_FENCE "lfence\n"
#include "timed_loop.h"

DEFINE_LOOP(loop_base, "")
DEFINE_LOOP(loop_tls, "mov %%fs:plain_tls@tpoff, %%eax")
DEFINE_LOOP(loop_ktls_tid, "mov ktls_off(%%rip), %%rax\n mov %%fs:68(%%rax), %%eax")
/* glibc's ABI: __rseq_offset lives in ld.so, reached through the GOT. */
DEFINE_LOOP(loop_rseq_cpu, "mov __rseq_offset@GOTPCREL(%%rip), %%rax\n mov (%%rax), %%rax\n"
			   "mov %%fs:4(%%rax), %%eax")
DEFINE_LOOP(loop_call, "call *%%r12")
DEFINE_LOOP(loop_call_area, "mov ktls_off(%%rip), %%rdi\n add %%fs:0, %%rdi\n call *%%r12")
DEFINE_LOOP(loop_call3, "xor %%edi, %%edi\n xor %%esi, %%esi\n xor %%edx, %%edx\n call *%%r12")
DEFINE_LOOP(loop_clock, "sub $32, %%rsp\n mov $1, %%edi\n mov %%rsp, %%rsi\n call *%%r12\n"
			"add $32, %%rsp")
DEFINE_LOOP(loop_syscall, "mov %%r12, %%rax\n syscall")


static u64 now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000UL + (u64)ts.tv_nsec;
}

static void measure(const char *name, loop_fn f, u64 n, u64 arg)
{
	u64 ns[REPS], tsc[REPS];
	f(n / 10, arg); /* warm up */
	for (int r = 0; r < REPS; r++) {
		u64 t0 = now_ns();
		tsc[r] = f(n, arg);
		ns[r] = now_ns() - t0;
	}
	printf("@nb m %s %lu", name, (unsigned long)n);
	for (int r = 0; r < REPS; r++)
		printf(" %lu:%lu", (unsigned long)ns[r], (unsigned long)tsc[r]);
	printf("\n");
	fflush(stdout);
}

static void na(const char *name, const char *why)
{
	printf("@nb na %s %s\n", name, why);
	fflush(stdout);
}

/* Loads the vDSO image at `path` below a fresh vvar page; returns the image base or NULL. */
static char *load_vdso(const char *path, struct vvar **vv)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	char *file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED)
		return NULL;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return NULL;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(file + eh->e_phoff);
	u64 lo = (u64)-1, hi = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_vaddr < lo)
			lo = ph[i].p_vaddr;
		if (ph[i].p_vaddr + ph[i].p_memsz > hi)
			hi = ph[i].p_vaddr + ph[i].p_memsz;
	}
	if (lo == (u64)-1)
		return NULL;
	size_t span = (size_t)((hi - lo + 4095) & ~4095UL);
	char *mem = mmap(NULL, 4096 + span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (mem == MAP_FAILED)
		return NULL;
	char *image = mem + 4096;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memcpy(image + (ph[i].p_vaddr - lo), file + ph[i].p_offset,
			       (size_t)ph[i].p_filesz);
	mprotect(image, span, PROT_READ | PROT_EXEC);
	*vv = (struct vvar *)mem;
	return image;
}

/* A system call with every argument 0 (getcpu writes through its first two). */
static long raw_syscall0(long nr)
{
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 0;
	register long r9 __asm__("r9") = 0;
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(0L), "S"(0L), "d"(0L), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

int main(int argc, char **argv)
{
	const char *vdso_path = argc > 1 ? argv[1] : "";
	unsigned long hwcap2 = getauxval(AT_HWCAP2);
	int cpu = sched_getcpu();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu < 0 ? 0 : cpu, &set);
	sched_setaffinity(0, sizeof set, &set);

	ktls_off = (char *)&ktls_area - (char *)__builtin_thread_pointer();
	ktls_area.ktls_live = 1;
	ktls_area.tid = (uint32_t)gettid();
	ktls_area.pid = (uint32_t)getpid();
	ktls_area.uid = getuid();
	ktls_area.euid = geteuid();
	ktls_area.gid = getgid();
	ktls_area.egid = getegid();

	printf("@nb info hwcap2=%#lx rseq_size=%u rseq_offset=%ld ktls_offset=%ld cpu=%d\n", hwcap2,
	       __rseq_size, (long)__rseq_offset, ktls_off, cpu);

	measure("empty_loop", loop_base, N_CHEAP, 0);
	measure("tls_load", loop_tls, N_CHEAP, 0);
	measure("ktls_load_tid", loop_ktls_tid, N_CHEAP, 0);
	if (__rseq_size > 0)
		measure("rseq_load_cpu", loop_rseq_cpu, N_CHEAP, 0);
	else
		na("rseq_load_cpu", "glibc_did_not_register_rseq");

	measure("call_empty", loop_call, N_CHEAP, (u64)ret_stub);

	struct vvar *vv = NULL;
	char *ours = *vdso_path ? load_vdso(vdso_path, &vv) : NULL;
	static const char *const ours_names[][2] = {
		{"vdso_gettid", "__vdso_gettid"},
		{"vdso_getpid", "__vdso_getpid"},
		{"vdso_getuid", "__vdso_getuid"},
		{"vdso_getcpu", "__vdso_getcpu"},
		{"vdso_ktls_gettid", "__vdso_ktls_gettid"},
	};
	for (unsigned i = 0; i < sizeof ours_names / sizeof ours_names[0]; i++) {
		const char *name = ours_names[i][0];
		if (!ours) {
			na(name, *vdso_path ? "vdso_image_unreadable" : "not_built");
			continue;
		}
		void *fn = vdso_sym(ours, ours_names[i][1]);
		if (!fn) {
			na(name, "no_symbol");
			continue;
		}
		vv->version = 1;
		vv->ktls_offset = ktls_off;
		vv->ktls_feature_size = 100;
		vv->ktls_enabled = 1;
		vv->ktls_level = 2;
		vv->hwcap2 = (uint32_t)(hwcap2 & HWCAP2_FSGSBASE);
		if (strcmp(name, "vdso_getcpu") == 0) {
			ktls_area.cpu_id = ktls_area.cpu_id_start = (uint32_t)(cpu < 0 ? 0 : cpu);
			measure(name, loop_call3, N_CHEAP, (u64)fn);
			continue;
		}
		if (strcmp(name, "vdso_ktls_gettid") == 0) {
			measure(name, loop_call_area, N_CHEAP, (u64)fn);
			continue;
		}
		measure(name, loop_call, N_CHEAP, (u64)fn);
	}

	const void *host_vdso = (const void *)getauxval(AT_SYSINFO_EHDR);
	void *h_getcpu = host_vdso ? vdso_sym(host_vdso, "__vdso_getcpu") : NULL;
	void *h_clock = host_vdso ? vdso_sym(host_vdso, "__vdso_clock_gettime") : NULL;
	if (h_getcpu)
		measure("host_vdso_getcpu", loop_call3, N_CHEAP, (u64)h_getcpu);
	else
		na("host_vdso_getcpu", "no_symbol");
	if (h_clock)
		measure("host_vdso_clock_gettime", loop_clock, N_CHEAP, (u64)h_clock);
	else
		na("host_vdso_clock_gettime", "no_symbol");

	static const struct {
		const char *name;
		long nr;
	} calls[] = {
		{"sys_getppid", SYS_getppid}, {"sys_gettid", SYS_gettid}, {"sys_getpid", SYS_getpid},
		{"sys_getuid", SYS_getuid},   {"sys_getcpu", SYS_getcpu},
	};
	for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		if (raw_syscall0(calls[i].nr) == -38)
			na(calls[i].name, "ENOSYS");
		else
			measure(calls[i].name, loop_syscall, N_SYSCALL, (u64)calls[i].nr);
	}
	printf("@nb done\n");
	return 0;
}
