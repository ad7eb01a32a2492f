/*
 * Raw system calls for the test programs: a bare `syscall` instruction, so a test sees the
 * kernel's own answer (-errno) and can pass arguments no libc wrapper would.
 */
#ifndef RAW_SYSCALL_H
#define RAW_SYSCALL_H

/*
 * A raw `syscall` instruction: returns the kernel's RAX (-errno on failure) and never touches
 * errno, %fs or the libc wrappers (some of which would fault in user space on a bad pointer).
 */
static inline __attribute__((always_inline)) long raw_syscall6(long nr, long a1, long a2, long a3,
                                                               long a4, long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define raw_syscall0(n) raw_syscall6((n), 0, 0, 0, 0, 0, 0)
#define raw_syscall1(n, a) raw_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define raw_syscall2(n, a, b) raw_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define raw_syscall3(n, a, b, c) raw_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define raw_syscall4(n, a, b, c, d)                                                            \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/*
 * clone, clone3, fork or vfork whose child (return value 0) calls exit(0) at once, touching no
 * memory: safe whatever stack and flags the call was given.
 */
static inline __attribute__((always_inline, unused)) long
raw_clone_exit(long nr, long a1, long a2, long a3, long a4, long a5)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

#endif
