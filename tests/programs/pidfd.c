/*
 * pidfds: pidfd_open, clone and clone3 with CLONE_PIDFD, poll on a pidfd, waitid(P_PIDFD) and
 * pidfd_send_signal, with Linux's errors.
 */
#include "ktls_test.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define PIDFD_NONBLOCK O_NONBLOCK

static long pidfd_open(long pid, long flags)
{
    return raw_syscall6(SYS_pidfd_open, pid, flags, 0, 0, 0, 0);
}

static long send_signal(long fd, long sig, siginfo_t *info, long flags)
{
    return raw_syscall6(SYS_pidfd_send_signal, fd, sig, (long)info, flags, 0, 0);
}

static long waitid_raw(long idtype, long id, siginfo_t *info, long options)
{
    return raw_syscall6(SYS_waitid, idtype, id, (long)info, options, 0, 0);
}

/* Readiness of a pidfd after waiting up to `ms`. */
static int poll_fd(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, ms);
    return r < 0 ? -errno : p.revents;
}

/* A child that waits until its pipe closes, then exits with 3. */
static pid_t sleeper(int *wfd)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[1]);
        char c;
        (void)!read(p[0], &c, 1);
        _exit(3);
    }
    close(p[0]);
    *wfd = p[1];
    return pid;
}

static void open_and_basics(void)
{
    int fd = pidfd_open(getpid(), 0);
    CHECK(fd >= 0, "pidfd_open(getpid())");
    CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "a pidfd is close-on-exec");
    CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "a pidfd is O_RDWR");
    char c;
    CHECK_ERR(raw_syscall6(SYS_read, fd, (long)&c, 1, 0, 0, 0), EINVAL, "read(pidfd): EINVAL");
    CHECK_ERR(raw_syscall6(SYS_write, fd, (long)&c, 1, 0, 0, 0), EINVAL,
              "write(pidfd): EINVAL");
    CHECK(poll_fd(fd, 0) == 0, "our own pidfd is not readable");
    CHECK_RET(send_signal(fd, 0, NULL, 0), 0, "pidfd_send_signal(self, 0)");
    close(fd);

    CHECK_ERR(pidfd_open(getpid(), 1), EINVAL, "pidfd_open with an unknown flag: EINVAL");
    CHECK_ERR(pidfd_open(0, 0), EINVAL, "pidfd_open(0): EINVAL");
    CHECK_ERR(pidfd_open(-1, 0), EINVAL, "pidfd_open(-1): EINVAL");
    fflush(stdout);
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    CHECK_ERR(pidfd_open(gone, 0), ESRCH, "pidfd_open of a reaped child: ESRCH");
}

static pthread_barrier_t barrier;

static void *thread_wait(void *arg)
{
    *(long *)arg = syscall(SYS_gettid);
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    return NULL;
}

static void thread_ids(void)
{
    long tid = 0;
    pthread_t th;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&th, NULL, thread_wait, &tid);
    pthread_barrier_wait(&barrier);
    CHECK_ERR(pidfd_open(tid, 0), ENOENT,
              "pidfd_open of a thread that is not the leader: ENOENT");
    pthread_barrier_wait(&barrier);
    pthread_join(th, NULL);
}

static void lifecycle(void)
{
    int w;
    pid_t child = sleeper(&w);
    int fd = pidfd_open(child, 0);
    CHECK(fd >= 0, "pidfd_open(child)");
    int nb = pidfd_open(child, PIDFD_NONBLOCK);
    CHECK(nb >= 0 && (fcntl(nb, F_GETFL) & O_NONBLOCK), "PIDFD_NONBLOCK gives an O_NONBLOCK pidfd");
    CHECK(poll_fd(fd, 0) == 0, "a running child's pidfd is not readable");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_ERR(waitid_raw(P_PIDFD, nb, &si, WEXITED), EAGAIN,
              "waitid(P_PIDFD) on a PIDFD_NONBLOCK pidfd of a running child: EAGAIN");
    memset(&si, 0, sizeof si);
    CHECK_RET(waitid_raw(P_PIDFD, fd, &si, WEXITED | WNOHANG), 0,
              "waitid(P_PIDFD, WNOHANG) on a running child: 0");
    CHECK(si.si_pid == 0, "and no child in the siginfo");

    /* A siginfo must match the signal, and may not pretend to be from kill or the kernel. */
    memset(&si, 0, sizeof si);
    si.si_signo = SIGUSR1;
    si.si_code = SI_QUEUE;
    CHECK_ERR(send_signal(fd, SIGTERM, &si, 0), EINVAL,
              "pidfd_send_signal with a siginfo for another signal: EINVAL");
    si.si_signo = SIGTERM;
    si.si_code = SI_USER;
    CHECK_ERR(send_signal(fd, SIGTERM, &si, 0), EPERM,
              "pidfd_send_signal with si_code SI_USER to another process: EPERM");
    CHECK_ERR(send_signal(fd, SIGTERM, NULL, 8), EINVAL, "pidfd_send_signal flag 8: EINVAL");
    CHECK_ERR(send_signal(fd, 65, NULL, 0), EINVAL, "pidfd_send_signal signal 65: EINVAL");
    CHECK_ERR(send_signal(0, SIGTERM, NULL, 0), EBADF, "pidfd_send_signal on stdin: EBADF");
    CHECK_ERR(send_signal(999, SIGTERM, NULL, 0), EBADF, "pidfd_send_signal on fd 999: EBADF");
    CHECK_RET(send_signal(fd, SIGTERM, NULL, 0), 0, "pidfd_send_signal(child, SIGTERM)");
    CHECK(poll_fd(fd, 5000) == POLLIN, "the pidfd polls readable once the child is a zombie");
    memset(&si, 0, sizeof si);
    CHECK_RET(waitid_raw(P_PIDFD, fd, &si, WEXITED | WNOWAIT), 0, "waitid(P_PIDFD, WNOWAIT)");
    CHECK(si.si_pid == child && si.si_code == CLD_KILLED && si.si_status == SIGTERM,
          "it reports the child killed by SIGTERM");
    CHECK(poll_fd(fd, 0) == POLLIN, "still readable, not hung up, before reaping");
    memset(&si, 0, sizeof si);
    CHECK_RET(waitid_raw(P_PIDFD, nb, &si, WEXITED), 0,
              "waitid(P_PIDFD) through the PIDFD_NONBLOCK pidfd reaps it");
    CHECK(si.si_pid == child && si.si_signo == SIGCHLD, "with the child's pid");
    CHECK(poll_fd(fd, 0) == (POLLIN | POLLHUP), "a reaped child's pidfd: POLLIN | POLLHUP");
    CHECK_ERR(send_signal(fd, SIGTERM, NULL, 0), ESRCH,
              "pidfd_send_signal to a reaped child: ESRCH");
    CHECK_ERR(waitid_raw(P_PIDFD, fd, &si, WEXITED), ECHILD,
              "waitid(P_PIDFD) of a reaped child: ECHILD");
    CHECK_ERR(waitid_raw(P_PIDFD, 0, &si, WEXITED), EBADF, "waitid(P_PIDFD) on stdin: EBADF");
    CHECK_ERR(waitid_raw(P_PIDFD, 999, &si, WEXITED), EBADF, "waitid(P_PIDFD, 999): EBADF");
    close(fd);
    close(nb);
    close(w);

    /* A signal with our own siginfo (si_code SI_QUEUE) is allowed. */
    child = sleeper(&w);
    fd = pidfd_open(child, 0);
    memset(&si, 0, sizeof si);
    si.si_signo = SIGKILL;
    si.si_code = SI_QUEUE;
    CHECK_RET(send_signal(fd, SIGKILL, &si, 0), 0,
              "pidfd_send_signal with an SI_QUEUE siginfo");
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
          "the child dies of SIGKILL");
    close(fd);
    close(w);
}

/* clone(flags) in fork style (no new stack); the child exits with `code` at once. */
static long fork_clone(long flags, long ptid, int code)
{
    fflush(stdout);
    long r = raw_syscall6(SYS_clone, flags, 0, ptid, 0, 0, 0);
    if (r == 0)
        raw_syscall6(SYS_exit, code, 0, 0, 0, 0, 0);
    return r;
}

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

static long fork_clone3(struct clone_args *a, int code)
{
    fflush(stdout);
    long r = raw_syscall6(SYS_clone3, (long)a, sizeof *a, 0, 0, 0, 0);
    if (r == 0)
        raw_syscall6(SYS_exit, code, 0, 0, 0, 0, 0);
    return r;
}

static void clone_pidfd(void)
{
    int pidfd = -1;
    long pid = fork_clone(CLONE_PIDFD | SIGCHLD, (long)&pidfd, 7);
    CHECK(pid > 0 && pidfd >= 0, "clone(CLONE_PIDFD) stores a pidfd through parent_tid");
    CHECK(fcntl(pidfd, F_GETFD) == FD_CLOEXEC, "it is close-on-exec");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_RET(waitid_raw(P_PIDFD, pidfd, &si, WEXITED), 0, "waitid(P_PIDFD) on it");
    CHECK(si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == 7,
          "the child exited with 7");
    close(pidfd);

    CHECK_ERR(fork_clone(CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, (long)&pidfd, 0), EINVAL,
              "clone(CLONE_PIDFD | CLONE_PARENT_SETTID): EINVAL");
    CHECK_ERR(fork_clone(CLONE_PIDFD | 0x00400000 /* CLONE_DETACHED */ | SIGCHLD, (long)&pidfd,
                         0),
              EINVAL, "clone(CLONE_PIDFD | CLONE_DETACHED): EINVAL");

    struct clone_args a;
    memset(&a, 0, sizeof a);
    uint64_t fd64 = ~0ull;
    a.flags = CLONE_PIDFD;
    a.pidfd = (uintptr_t)&fd64;
    a.exit_signal = SIGCHLD;
    pid = fork_clone3(&a, 9);
    int fd3 = (int)fd64;
    CHECK(pid > 0 && fd3 >= 0 && (fd64 >> 32) == 0xffffffffu,
          "clone3(CLONE_PIDFD) stores an int pidfd at args.pidfd");
    memset(&si, 0, sizeof si);
    CHECK_RET(waitid_raw(P_PIDFD, fd3, &si, WEXITED), 0, "waitid(P_PIDFD) on it");
    CHECK(si.si_pid == pid && si.si_status == 9, "the clone3 child exited with 9");
    close(fd3);

    a.pidfd = 1;
    CHECK_ERR(fork_clone3(&a, 0), EFAULT, "clone3(CLONE_PIDFD) with a bad pidfd pointer: EFAULT");
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "and no child was made");
    a.parent_tid = 1;
    a.flags = CLONE_PIDFD | CLONE_PARENT_SETTID;
    CHECK_ERR(fork_clone3(&a, 0), EINVAL,
              "clone3 with CLONE_PARENT_SETTID at the pidfd's address: EINVAL");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    open_and_basics();
    thread_ids();
    lifecycle();
    clone_pidfd();
    return finish();
}
