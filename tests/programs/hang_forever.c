/*
 * Blocks forever, for the runner's hang report (tests/tests/robustness.rs, hang_report): a
 * second thread waits on a futex word that never changes, and the main thread reads a pipe
 * whose write end stays open and empty. Only a timeout ends it.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128 /* FUTEX_WAIT | FUTEX_PRIVATE_FLAG (musl has no <linux/futex.h>) */

static int never_changes;

static void *futex_waiter(void *arg)
{
    (void)arg;
    for (;;)
        syscall(SYS_futex, &never_changes, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

int main(void)
{
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        perror("pipe");
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, futex_waiter, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    printf("blocking\n");
    fflush(stdout);
    char c;
    for (;;)
        if (read(pipe_fds[0], &c, 1) == 1)
            return 1; /* nothing is ever written */
}
