/*
 * Which children inherit an rseq registration (Linux: rseq_fork, rseq_execve): a thread made
 * with clone(CLONE_VM) starts without one, as does a CLONE_VM|CLONE_VFORK child; a fork child
 * keeps it (same address, in its copy of the memory, with its own ids); after execve the new
 * image starts without one (a re-exec of this program with the argument "exec-child" checks).
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

static struct rseq_area area;        /* the main thread's registration */
static struct rseq_area child_area;  /* for children that register their own */

/* ---- clone(CLONE_VM) thread ---- */

struct clone_result {
    long unreg_parent, reg_own, reg_parent_again, unreg_own, cpu;
    uint32_t cpu_id;
};

static int clone_vm_child(void *p)
{
    struct clone_result *r = p;
    /* Not registered: unregistering the parent's area fails, registering it succeeds. */
    r->unreg_parent = sys_rseq(&area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    r->reg_own = sys_rseq(&child_area, 32, 0, RSEQ_SIG);
    r->cpu = sys_getcpu();
    r->cpu_id = child_area.cpu_id;
    r->reg_parent_again = sys_rseq(&area, 32, 0, RSEQ_SIG); /* another area than ours */
    r->unreg_own = sys_rseq(&child_area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    return 0;
}

static void test_clone_vm(void)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    static struct clone_result r;
    static volatile int tid;
    memset(&r, 0x77, sizeof r);
    unsigned long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                          CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    long t = raw_clone_fn(flags, stack + sizeof stack, (int *)&tid, (int *)&tid, 0,
                          clone_vm_child, &r);
    CHECK(t > 0, "clone(CLONE_VM | CLONE_THREAD) without CLONE_SETTLS");
    if (t <= 0)
        return;
    wait_cleared(&tid);
    CHECK_ERR(r.unreg_parent, EINVAL, "clone thread: unregistering the parent's area is EINVAL");
    CHECK_RET(r.reg_own, 0, "clone thread: registering an area of its own works");
    CHECK(r.cpu_id == (uint32_t)r.cpu, "clone thread: its cpu_id is its CPU");
    CHECK_ERR(r.reg_parent_again, EINVAL, "clone thread: then the parent's area is another area");
    CHECK_RET(r.unreg_own, 0, "clone thread: unregister its area");
    CHECK_ERR(sys_rseq(&area, 32, 0, RSEQ_SIG), EBUSY, "parent still registered: EBUSY");
    CHECK(area.cpu_id == (uint32_t)sys_getcpu(), "parent's cpu_id is its CPU");
}

/* ---- vfork-style child (CLONE_VM | CLONE_VFORK) ---- */

static int vfork_child(void *p)
{
    long *res = p;
    res[0] = sys_rseq(&area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    res[1] = sys_rseq(&child_area, 32, 0, RSEQ_SIG);
    res[2] = sys_rseq(&child_area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    return 7;
}

static void test_vfork(void)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    static long res[3];
    long pid = raw_clone_fn(CLONE_VM | CLONE_VFORK | SIGCHLD, stack + sizeof stack, NULL, NULL,
                            0, vfork_child, res);
    CHECK(pid > 0, "clone(CLONE_VM | CLONE_VFORK)");
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "vfork child exits 7");
    CHECK_ERR(res[0], EINVAL, "vfork child: not registered (unregistering is EINVAL)");
    CHECK_RET(res[1], 0, "vfork child: registering an area of its own works");
    CHECK_RET(res[2], 0, "vfork child: unregistering it works");
    CHECK_ERR(sys_rseq(&area, 32, 0, RSEQ_SIG), EBUSY, "parent still registered after vfork");
    CHECK(area.cpu_id == (uint32_t)sys_getcpu(), "parent's cpu_id is still its CPU");
}

/* ---- fork ---- */

static void test_fork(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long res[6];
        res[0] = sys_rseq(&area, 32, 0, RSEQ_SIG);     /* EBUSY: inherited */
        res[1] = sys_rseq(&area, 32, 0, RSEQ_SIG + 1); /* EPERM: same sig inherited */
        res[2] = sys_getcpu();
        res[3] = area.cpu_id;
        res[4] = sys_rseq(&area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
        res[5] = area.cpu_id;
        write(fds[1], res, sizeof res);
        _exit(0);
    }
    long res[6] = {0};
    CHECK(read(fds[0], res, sizeof res) == sizeof res, "fork child reports");
    int st = 0;
    waitpid(pid, &st, 0);
    close(fds[0]);
    close(fds[1]);
    CHECK_ERR(res[0], EBUSY, "fork child: the registration is inherited (EBUSY)");
    CHECK_ERR(res[1], EPERM, "fork child: with the same signature (EPERM for another)");
    CHECK(res[3] == res[2], "fork child: its cpu_id is its CPU");
    CHECK_RET(res[4], 0, "fork child: unregistering works");
    CHECK(res[5] == RSEQ_CPU_ID_UNINITIALIZED, "fork child: its cpu_id is reset");
    CHECK(area.cpu_id == (uint32_t)sys_getcpu(), "parent's cpu_id untouched by the child");
    CHECK_ERR(sys_rseq(&area, 32, 0, RSEQ_SIG), EBUSY, "parent still registered after fork");
}

/* ---- execve ---- */

static int exec_child(void)
{
    /* Same binary, so `area` is at the same address as in the image that registered it
     * (without address randomization): a registration that survived execve would make this
     * EBUSY. */
    CHECK_RET(sys_rseq(&area, 32, 0, RSEQ_SIG), 0,
              "exec child: the new image is not registered (registering works)");
    CHECK(area.cpu_id == (uint32_t)sys_getcpu(), "exec child: cpu_id is its CPU");
    CHECK_RET(sys_rseq(&area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "exec child: unregister");
    fflush(stdout);
    return ktls_failures ? 1 : 0;
}

static void test_exec(const char *self)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The fork child is registered (inherited); execve must drop it. */
        if (sys_rseq(&area, 32, 0, RSEQ_SIG) != -EBUSY)
            _exit(90);
        extern char **environ;
        char *argv[] = {(char *)self, "exec-child", NULL};
        execve(self, argv, environ);
        _exit(91);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec child passed its checks", "status %#x",
          st);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
        return exec_child();
    /* One CPU, so "the current CPU" holds still between reading cpu_id and getcpu. */
    CHECK_RET(pin_to_cpu(0, 0), 0, "pin to CPU 0");
    CHECK_RET(sys_rseq(&area, 32, 0, RSEQ_SIG), 0, "register the main thread");
    test_clone_vm();
    test_vfork();
    test_fork();
    test_exec(argv[0]);
    CHECK_RET(sys_rseq(&area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG), 0, "unregister");
    return finish();
}
