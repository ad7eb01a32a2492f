/*
 * Many short-lived threads and processes: 1000 threads created and joined (in waves of 50 alive
 * at once, each returning a value derived from its argument), then 200 cycles of fork, exit with
 * a per-cycle status, and wait.
 */
#include "ktls_test.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 1000
#define WAVE 50
#define FORKS 200

static volatile long ran;

static void *thread_fn(void *p)
{
    __atomic_add_fetch(&ran, 1, __ATOMIC_SEQ_CST);
    return (void *)((intptr_t)p * 3 + 1);
}

static void test_threads(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int created = 0, joined = 0, values = 1;
    for (int base = 0; base < THREADS; base += WAVE) {
        pthread_t th[WAVE];
        int n = 0;
        for (int i = 0; i < WAVE; i++) {
            if (pthread_create(&th[i], &attr, thread_fn, (void *)(intptr_t)(base + i)) != 0)
                break;
            n++;
        }
        created += n;
        for (int i = 0; i < n; i++) {
            void *ret = NULL;
            if (pthread_join(th[i], &ret) == 0)
                joined++;
            values &= (intptr_t)ret == (intptr_t)(base + i) * 3 + 1;
        }
        if (n < WAVE)
            break;
    }
    pthread_attr_destroy(&attr);
    check(created == THREADS, "1000 threads created", "%d", created);
    check(joined == THREADS, "1000 threads joined", "%d", joined);
    CHECK(values, "each thread's return value arrived through pthread_join");
    check(ran == THREADS, "every thread ran", "%ld", ran);
}

static void test_forks(void)
{
    int forked = 0, statuses = 1, children = 1;
    pid_t me = getpid();
    for (int i = 0; i < FORKS; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0)
            _exit(getppid() == me ? i % 256 : 255);
        forked++;
        int st = 0;
        pid_t w = waitpid(pid, &st, 0);
        children &= w == pid;
        statuses &= WIFEXITED(st) && WEXITSTATUS(st) == i % 256;
    }
    check(forked == FORKS, "200 forks", "%d", forked);
    CHECK(children, "waitpid returns each child");
    CHECK(statuses, "each child's exit status (its cycle number) arrives");
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "no child left");
}

int main(void)
{
    test_threads();
    test_forks();
    return finish();
}
