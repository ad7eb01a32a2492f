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
#include "raw_syscall.h"

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
