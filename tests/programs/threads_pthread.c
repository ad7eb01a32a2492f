/*
 * POSIX threads through the libc: 8 threads each add 1 to a shared counter 100000 times under a
 * mutex, wait on a condition variable for the start signal, and report their own count through
 * a pipe (a channel: one fixed-size message per thread); the main thread checks the exact total
 * both ways. Runs on any number of CPUs.
 */
#include "ktls_test.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#define NTHREADS 8
#define ITERS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int started, ready, go;
static long counter;
static int chan[2];

struct msg {
    int id;
    long count;
    long tid;
};

static void *worker(void *p)
{
    int id = (int)(intptr_t)p;
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_signal(&ready_cond);
    while (!go)
        pthread_cond_wait(&start_cond, &lock);
    started++;
    pthread_mutex_unlock(&lock);

    long mine = 0;
    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        mine++;
    }
    struct msg m = {id, mine, raw_syscall0(186 /* gettid */)};
    if (write(chan[1], &m, sizeof m) != sizeof m)
        return (void *)1;
    return NULL;
}

int main(void)
{
    pthread_t th[NTHREADS];
    CHECK(pipe(chan) == 0, "pipe for the channel");
    int created = 1;
    for (int i = 0; i < NTHREADS; i++)
        created &= pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0;
    CHECK(created, "create 8 threads");

    /* Wait (condvar) until every thread waits for the start signal, then broadcast it. */
    pthread_mutex_lock(&lock);
    while (ready < NTHREADS)
        pthread_cond_wait(&ready_cond, &lock);
    CHECK(started == 0, "no thread started before the broadcast");
    go = 1;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&lock);

    long sum = 0;
    int seen[NTHREADS] = {0}, msgs = 1, tids = 1;
    for (int i = 0; i < NTHREADS; i++) {
        struct msg m;
        ssize_t n = read(chan[0], &m, sizeof m);
        msgs &= n == sizeof m && m.id >= 0 && m.id < NTHREADS && !seen[m.id];
        if (n == sizeof m && m.id >= 0 && m.id < NTHREADS)
            seen[m.id] = 1;
        tids &= m.tid != getpid();
        sum += m.count;
    }
    CHECK(msgs, "one message from each thread through the pipe");
    CHECK(tids, "each thread has its own tid");
    int joined = 1;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        joined &= pthread_join(th[i], &ret) == 0 && ret == NULL;
    }
    CHECK(joined, "join 8 threads");
    CHECK(started == NTHREADS, "the broadcast started every thread");
    check(sum == (long)NTHREADS * ITERS, "the channel's counts add up to 8 x 100000", "%ld", sum);
    check(counter == (long)NTHREADS * ITERS, "the mutex-protected counter is 8 x 100000", "%ld",
          counter);
    return finish();
}
