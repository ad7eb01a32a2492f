/*
 * The libc's clock functions, called in loops: with AT_SYSINFO_EHDR, glibc and musl run them in
 * the vDSO, so on ktls the harness (tests/tests/vdso.rs) finds no clock_gettime, gettimeofday
 * or time system call in the strace of this program.
 *
 * Checks (the same natively and on ktls): a vDSO is announced; CLOCK_MONOTONIC never goes back
 * over many reads; the other clocks the vDSO serves give valid, plausible values; gettimeofday
 * and time agree with CLOCK_REALTIME.
 */
#include "ktls_test.h"

#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

#define LOOPS 20000

static long long ns(struct timespec t)
{
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int valid(struct timespec t)
{
    return t.tv_sec >= 0 && t.tv_nsec >= 0 && t.tv_nsec < 1000000000L;
}

int main(void)
{
    CHECK(getauxval(AT_SYSINFO_EHDR) != 0, "AT_SYSINFO_EHDR announces a vDSO");

    struct timespec prev, now;
    int ok = clock_gettime(CLOCK_MONOTONIC, &prev) == 0 && valid(prev);
    int backwards = 0;
    for (int i = 0; i < LOOPS && ok; i++) {
        ok = clock_gettime(CLOCK_MONOTONIC, &now) == 0 && valid(now);
        if (ns(now) < ns(prev))
            backwards++;
        prev = now;
    }
    CHECK(ok, "CLOCK_MONOTONIC in a loop");
    CHECK(backwards == 0, "CLOCK_MONOTONIC never goes back");

    static const struct {
        clockid_t id;
        const char *name;
    } clocks[] = {
        {CLOCK_REALTIME, "CLOCK_REALTIME"},
        {CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE"},
        {CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW"},
        {CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE"},
        {CLOCK_BOOTTIME, "CLOCK_BOOTTIME"},
    };
    char what[96];
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        int good = 1;
        for (int j = 0; j < LOOPS / 10 && good; j++) {
            struct timespec t;
            good = clock_gettime(clocks[i].id, &t) == 0 && valid(t);
        }
        snprintf(what, sizeof what, "%s in a loop", clocks[i].name);
        CHECK(good, what);
    }

    /* After 2001-09-09 (1e9 seconds): the real-time clock was set from the RTC. */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    CHECK(rt.tv_sec > 1000000000L, "CLOCK_REALTIME is a plausible date");

    int tv_ok = 1;
    for (int i = 0; i < LOOPS / 10 && tv_ok; i++) {
        struct timeval tv;
        struct timespec before, after;
        clock_gettime(CLOCK_REALTIME, &before);
        tv_ok = gettimeofday(&tv, NULL) == 0 && tv.tv_usec >= 0 && tv.tv_usec < 1000000;
        clock_gettime(CLOCK_REALTIME, &after);
        long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
        tv_ok = tv_ok && us >= ns(before) / 1000 && us <= ns(after) / 1000;
    }
    CHECK(tv_ok, "gettimeofday lies between two CLOCK_REALTIME reads");

    int time_ok = 1;
    for (int i = 0; i < LOOPS / 10 && time_ok; i++) {
        struct timespec before, after;
        time_t t, t2;
        clock_gettime(CLOCK_REALTIME, &before);
        t = time(&t2);
        clock_gettime(CLOCK_REALTIME, &after);
        /* Linux's vDSO time() reads the clock of the last tick: up to a tick behind. */
        time_ok = t == t2 && t >= before.tv_sec - 1 && t <= after.tv_sec;
    }
    CHECK(time_ok, "time lies between two CLOCK_REALTIME reads");
    return finish();
}
