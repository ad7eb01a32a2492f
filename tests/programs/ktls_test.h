/*
 * Shared helpers for the ktls conformance programs.
 *
 * Every program prints one "ok <what>" line per passed check and one "FAIL <what>: ..." line per
 * failed check on stdout, and exits with finish()'s status: 0 when every check passed, 1
 * otherwise. The harness runs each program natively and on ktls and compares the two stdouts,
 * so "ok" lines must only contain values that are the same on the host and on ktls.
 */
#ifndef KTLS_TEST_H
#define KTLS_TEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ktls_failures;

/* Records a check: prints "ok WHAT" or "FAIL WHAT: DETAIL" (detail is printf-style). */
static void check(int cond, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(int cond, const char *what, const char *fmt, ...)
{
    if (cond) {
        printf("ok %s\n", what);
    } else {
        va_list ap;
        ktls_failures++;
        printf("FAIL %s: ", what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

/* CHECK(cond, what): the detail is the failed expression and the current errno. */
#define CHECK(cond, what)                                                                      \
    do {                                                                                       \
        int ktls_ok = !!(cond);                                                                \
        int ktls_e = errno;                                                                    \
        check(ktls_ok, (what), "%s (line %d, errno %d %s)", #cond, __LINE__, ktls_e,           \
              strerror(ktls_e));                                                               \
    } while (0)

/* Expects a raw syscall result (see raw_syscall6) to be exactly -err. */
#define CHECK_ERR(ret, err, what)                                                              \
    do {                                                                                       \
        long ktls_r = (ret);                                                                   \
        check(ktls_r == -(long)(err), (what), "got %ld, want -%d (%s) (line %d)", ktls_r,      \
              (int)(err), #err, __LINE__);                                                     \
    } while (0)

/* Expects a raw syscall result to be exactly `want`. */
#define CHECK_RET(ret, want, what)                                                             \
    do {                                                                                       \
        long ktls_r = (ret);                                                                   \
        long ktls_w = (want);                                                                  \
        check(ktls_r == ktls_w, (what), "got %ld, want %ld (line %d)", ktls_r, ktls_w,         \
              __LINE__);                                                                       \
    } while (0)

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

/* Prints the summary line and returns the exit status for main. */
static int finish(void)
{
    if (ktls_failures) {
        printf("FAILED %d check(s)\n", ktls_failures);
        fflush(stdout);
        return 1;
    }
    printf("all checks passed\n");
    fflush(stdout);
    return 0;
}

#endif
