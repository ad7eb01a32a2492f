/* The timed loops of the guest program and the native harness: DEFINE_LOOP(name, body) makes
 * `u64 name(u64 n, u64 arg)`, which runs the assembly `body` n times and returns the TSC ticks
 * it took. rbx counts down, r12 holds the loop's argument, r14 the start TSC; the syscall
 * argument registers are 0 (getcpu writes through them). Everything a function call or a
 * syscall may clobber is declared clobbered.
 *
 * LOOP_FENCE, defined by the includer, goes before each rdtsc: "lfence\n" natively, so that
 * the TSC is read after the loop's work; nothing in the guest, where rdtsc counts instructions
 * (-icount) and every instruction counts. The includer defines the type u64. */
#ifndef KTLS_BENCH_TIMED_LOOP_H
#define KTLS_BENCH_TIMED_LOOP_H

#ifndef LOOP_FENCE
#error "define LOOP_FENCE before including timed_loop.h"
#endif

#define TSC_TO_RAX LOOP_FENCE "rdtsc\n shl $32, %%rdx\n or %%rdx, %%rax\n"
#define XMM_CLOBBERS                                                                          \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
		"xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#define DEFINE_LOOP(fname, body)                                                            \
	static u64 fname(u64 n, u64 arg)                                                    \
	{                                                                                   \
		u64 d;                                                                      \
		__asm__ volatile("mov %[arg], %%r12\n"                                     \
				 "mov %%rsp, %%r13\n and $-16, %%rsp\n" TSC_TO_RAX        \
				 "mov %%rax, %%r14\n"                                       \
				 "xor %%edi, %%edi\n xor %%esi, %%esi\n xor %%edx, %%edx\n"     \
				 "xor %%r8d, %%r8d\n xor %%r9d, %%r9d\n xor %%r10d, %%r10d\n"   \
				 ".p2align 4\n"                                             \
				 "1:\n" body "\n"                                           \
				 "dec %%rbx\n jnz 1b\n" TSC_TO_RAX "sub %%r14, %%rax\n"     \
				 "mov %%r13, %%rsp\n"                                       \
				 : "=a"(d), "+b"(n)                                         \
				 : [arg] "m"(arg)                                           \
				 : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", \
				   "r13", "r14", "memory", "cc", XMM_CLOBBERS);             \
		return d;                                                                   \
	}

typedef u64 (*loop_fn)(u64 n, u64 arg);

/* The floor of any vDSO call: a call to a bare `ret`. */
void ret_stub(void);
__asm__(".text\n.globl ret_stub\nret_stub:\n ret\n");

#endif
