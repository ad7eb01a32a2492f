/*
 * SMP: pins the calling thread to each CPU it may run on in turn (sched_setaffinity) and
 * checks that sched_getcpu() and the raw getcpu syscall report that CPU, right away, after
 * a yield, after a few milliseconds of spinning (timer ticks) and after a short sleep; then
 * does the same from a second thread. Output does not depend on the number of CPUs (that
 * goes to stderr).
 */
#include "ktls_test.h"
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int raw_cpu(void)
{
    unsigned cpu = ~0u, node = ~0u;
    long r = raw_syscall3(SYS_getcpu, &cpu, &node, 0);
    return r == 0 ? (int)cpu : -1;
}

static void spin_ms(int ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

/* Returns the number of CPUs visited; counts mismatches in *bad. */
static int visit_all(const cpu_set_t *allowed, int *bad, const char *who)
{
    int visited = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, allowed))
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) {
            fprintf(stderr, "%s: sched_setaffinity(%d): %s\n", who, cpu, strerror(errno));
            (*bad)++;
            continue;
        }
        int seen[4];
        seen[0] = sched_getcpu();
        sched_yield();
        seen[1] = raw_cpu();
        spin_ms(25);
        seen[2] = sched_getcpu();
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        seen[3] = raw_cpu();
        for (int i = 0; i < 4; i++) {
            if (seen[i] != cpu) {
                fprintf(stderr, "%s: pinned to %d, step %d reports %d\n", who, cpu, i, seen[i]);
                (*bad)++;
            }
        }
        visited++;
    }
    return visited;
}

static cpu_set_t all;
static int thread_bad, thread_visited;

static void *second(void *arg)
{
    (void)arg;
    thread_visited = visit_all(&all, &thread_bad, "thread");
    return NULL;
}

int main(void)
{
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    int n = CPU_COUNT(&all);
    fprintf(stderr, "smp_affinity: %d CPUs allowed\n", n);
    CHECK(n >= 1, "at least one CPU allowed");

    int bad = 0;
    int visited = visit_all(&all, &bad, "main");
    CHECK(visited == n, "main thread pinned to every allowed CPU");
    check(bad == 0, "main thread: getcpu agrees with the pinned CPU", "%d mismatches", bad);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, second, NULL) == 0, "second thread created");
    pthread_join(t, NULL);
    CHECK(thread_visited == n, "second thread pinned to every allowed CPU");
    check(thread_bad == 0, "second thread: getcpu agrees with the pinned CPU", "%d mismatches",
          thread_bad);

    CHECK(sched_setaffinity(0, sizeof all, &all) == 0, "affinity restored");
    cpu_set_t after;
    CHECK(sched_getaffinity(0, sizeof after, &after) == 0 && CPU_EQUAL(&after, &all),
          "sched_getaffinity returns the restored set");
    return finish();
}
