/*
 * Isolation between processes: after fork, neither side sees the other's writes to private
 * memory (user writes and kernel writes into copy-on-write pages), mappings made, removed or
 * re-protected on one side do not change the other, file descriptors, the working directory,
 * signal dispositions and limits are per process, and a thread of one process cannot be named
 * through another's pid. MAP_SHARED memory is the control: it is shared.
 *
 * process_vm_readv/process_vm_writev: Linux lets a process of the same user read and write a
 * dumpable child (the data must then be exactly right) and refuses other cases; a kernel that
 * does not implement them says ENOSYS, which this program reports on an "info" line (the
 * harness then checks that the kernel log names the call).
 */
#include "ktls_test.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
/* A fixed address for a mapping the parent makes after fork (free in both programs' layout). */
#define LATE_MAP ((void *)0x5a5a00000000ul)

static volatile uint64_t global_word = 0x1111;
static uint8_t bss_pages[4 * PAGE];

/* Pipes: parent -> child and child -> parent, one byte per step. */
static int to_child[2], to_parent[2];

static void send_byte(int fd, char c)
{
    while (write(fd, &c, 1) != 1 && errno == EINTR)
        ;
}

static char recv_byte(int fd)
{
    char c = 0;
    while (read(fd, &c, 1) != 1) {
        if (errno != EINTR)
            return 0;
    }
    return c;
}

static int pattern_ok(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static sigjmp_buf jump;
static volatile sig_atomic_t faulted;
static void on_segv(int sig)
{
    (void)sig;
    faulted = 1;
    siglongjmp(jump, 1);
}

static int readable(volatile uint8_t *p)
{
    faulted = 0;
    if (sigsetjmp(jump, 1) == 0)
        (void)*p;
    return !faulted;
}

static int status_is_exit0(int st)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/*
 * The memory dance. Child exit status bits say what the child saw wrong.
 */
static void memory_after_fork(void)
{
    uint8_t *heap = malloc(8 * PAGE);
    uint8_t *priv = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    uint8_t *gone = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    uint8_t *prot = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(heap && priv != MAP_FAILED && gone != MAP_FAILED && prot != MAP_FAILED,
          "set up private memory");
    CHECK(shared != MAP_FAILED, "map MAP_SHARED|MAP_ANONYMOUS memory");
    if (!heap || priv == MAP_FAILED || gone == MAP_FAILED || prot == MAP_FAILED ||
        shared == MAP_FAILED)
        return;
    volatile uint64_t stack_word = 0x2222;
    memset(heap, 0xa1, 8 * PAGE);
    memset(priv, 0xa2, 4 * PAGE);
    memset(gone, 0xa3, 2 * PAGE);
    memset(prot, 0xa4, PAGE);
    memset(bss_pages, 0xa5, sizeof bss_pages);
    memset(shared, 0xa6, PAGE);
    global_word = 0x1111;

    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipes");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        /* Step 1: user writes in the child. */
        memset(heap, 0xb1, 8 * PAGE);
        memset(priv, 0xb2, 4 * PAGE);
        memset(bss_pages, 0xb5, sizeof bss_pages);
        global_word = 0x3333;
        stack_word = 0x4444;
        /* Kernel writes into the child's copies: a pipe read, getrandom, clock_gettime. */
        int p[2];
        if (pipe(p) == 0) {
            uint8_t src[PAGE];
            memset(src, 0xc1, sizeof src);
            if (write(p[1], src, sizeof src) != (ssize_t)sizeof src)
                bad |= 1;
            if (read(p[0], priv + PAGE, PAGE) != PAGE)
                bad |= 1;
            close(p[0]);
            close(p[1]);
        }
        if (raw_syscall3(SYS_getrandom, priv + 2 * PAGE, PAGE, 0) != PAGE)
            bad |= 1;
        if (raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, bss_pages + PAGE) != 0)
            bad |= 1;
        shared[0] = 0xd6;
        send_byte(to_parent[1], '1');

        /* Step 2: the parent wrote its copies, unmapped `gone`, made `prot` PROT_NONE and
         * mapped LATE_MAP. The child's view is unchanged. */
        recv_byte(to_child[0]);
        if (!pattern_ok(heap, 8 * PAGE, 0xb1) || !pattern_ok(bss_pages, PAGE, 0xb5) ||
            global_word != 0x3333 || stack_word != 0x4444)
            bad |= 2;
        if (!pattern_ok(priv, PAGE, 0xb2) || !pattern_ok(priv + PAGE, PAGE, 0xc1))
            bad |= 2;
        if (!pattern_ok(gone, 2 * PAGE, 0xa3))
            bad |= 4;
        if (!pattern_ok(prot, PAGE, 0xa4))
            bad |= 8;
        signal(SIGSEGV, on_segv);
        if (readable(LATE_MAP))
            bad |= 16;
        if (shared[1] != 0xe6)
            bad |= 32;
        send_byte(to_parent[1], '2');
        _exit(bad);
    }

    recv_byte(to_parent[0]);
    CHECK(pattern_ok(heap, 8 * PAGE, 0xa1), "the child's writes to the heap leave the parent's");
    CHECK(pattern_ok(priv, PAGE, 0xa2), "the child's writes to a private mapping leave the "
                                        "parent's");
    CHECK(pattern_ok(priv + PAGE, PAGE, 0xa2),
          "a pipe read into the child's copy leaves the parent's page");
    CHECK(pattern_ok(priv + 2 * PAGE, PAGE, 0xa2),
          "getrandom into the child's copy leaves the parent's page");
    CHECK(pattern_ok(bss_pages, sizeof bss_pages, 0xa5),
          "the child's writes to .bss (user and clock_gettime) leave the parent's");
    CHECK(global_word == 0x1111 && stack_word == 0x2222,
          "the child's writes to .data and the stack leave the parent's");
    CHECK(shared[0] == 0xd6, "control: the child's write to MAP_SHARED memory is seen");

    /* Step 2 in the parent: change its own view. */
    memset(heap, 0xe1, 8 * PAGE);
    memset(priv, 0xe2, PAGE);
    memset(bss_pages, 0xe5, PAGE);
    global_word = 0x5555;
    CHECK(munmap(gone, 2 * PAGE) == 0, "unmap a region in the parent");
    CHECK(mprotect(prot, PAGE, PROT_NONE) == 0, "PROT_NONE a page in the parent");
    void *late = mmap(LATE_MAP, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(late == LATE_MAP, "map a new page in the parent");
    shared[1] = 0xe6;
    send_byte(to_child[1], '2');
    recv_byte(to_parent[0]);
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st), "the child exits");
    int bad = WIFEXITED(st) ? WEXITSTATUS(st) : 0xff;
    check(!(bad & 1), "the child's kernel writes worked", "child bits %#x", bad);
    check(!(bad & 2), "the parent's writes after fork leave the child's copies",
          "child bits %#x", bad);
    check(!(bad & 4), "the parent's munmap leaves the child's mapping", "child bits %#x", bad);
    check(!(bad & 8), "the parent's mprotect leaves the child's page readable",
          "child bits %#x", bad);
    check(!(bad & 16), "a page mapped by the parent after fork is not in the child",
          "child bits %#x", bad);
    check(!(bad & 32), "control: the parent's write to MAP_SHARED memory is seen by the child",
          "child bits %#x", bad);

    /* After the child is gone (its frames freed and reused), the parent's pages are intact. */
    size_t churn = 16u << 20;
    uint8_t *fresh = mmap(NULL, churn, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                          0);
    if (fresh != MAP_FAILED) {
        memset(fresh, 0xf0, churn);
        munmap(fresh, churn);
    }
    CHECK(pattern_ok(heap, 8 * PAGE, 0xe1) && pattern_ok(priv, PAGE, 0xe2) &&
              pattern_ok(priv + PAGE, 3 * PAGE, 0xa2) && pattern_ok(bss_pages, PAGE, 0xe5) &&
              pattern_ok(bss_pages + PAGE, 3 * PAGE, 0xa5) && global_word == 0x5555,
          "the parent's memory is intact after the child exited and 16 MiB were reused");
    munmap(LATE_MAP, PAGE);
    munmap(priv, 4 * PAGE);
    munmap(prot, PAGE);
    munmap(shared, PAGE);
    free(heap);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

/* Per-process state: fds, cwd, umask, signal dispositions, limits. */
static void state_after_fork(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "a pipe");
    struct rlimit before;
    getrlimit(RLIMIT_NOFILE, &before);
    char cwd0[256] = "", cwd[256] = "";
    CHECK(getcwd(cwd0, sizeof cwd0) != NULL, "getcwd");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[1]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        (void)!chdir(strcmp(cwd0, "/proc") ? "/proc" : "/");
        umask(0777);
        signal(SIGUSR1, SIG_IGN);
        struct rlimit low = {16, before.rlim_max};
        setrlimit(RLIMIT_NOFILE, &low);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(status_is_exit0(st), "the child changed its state");
    CHECK(write(p[1], "x", 1) == 1, "the child's close leaves the parent's fd open");
    char c;
    CHECK(read(p[0], &c, 1) == 1 && c == 'x', "the pipe still works");
    CHECK(getcwd(cwd, sizeof cwd) && strcmp(cwd, cwd0) == 0,
          "the child's chdir leaves the parent's cwd");
    mode_t m = umask(022);
    CHECK(m == 022, "the child's umask leaves the parent's");
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    CHECK(sa.sa_handler == SIG_DFL, "the child's sigaction leaves the parent's disposition");
    struct rlimit after;
    getrlimit(RLIMIT_NOFILE, &after);
    CHECK(after.rlim_cur == before.rlim_cur, "the child's setrlimit leaves the parent's limit");
    close(p[0]);
    close(p[1]);
}

/* Thread ids are not reachable through another process's tgid. */
static void foreign_tids(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "a pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        (void)!read(p[0], &c, 1); /* blocks until killed */
        _exit(0);
    }
    close(p[0]);
    long me = raw_syscall0(SYS_gettid);
    CHECK_ERR(raw_syscall3(SYS_tgkill, pid, me, SIGKILL), ESRCH,
              "tgkill(child's tgid, parent's tid): ESRCH");
    CHECK_ERR(raw_syscall3(SYS_tgkill, me, pid, 0), ESRCH,
              "tgkill(parent's tgid, child's tid): ESRCH");
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child was killed by the parent");
    close(p[1]);
}

static int note_enosys(long r, const char *call)
{
    if (r == -ENOSYS) {
        printf("info %s: ENOSYS\n", call);
        return 1;
    }
    return 0;
}

static void process_vm(void)
{
    static volatile uint64_t secret[8];
    for (int i = 0; i < 8; i++)
        secret[i] = 0x5ec0000000000000ull + i;
    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipes");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 8; i++)
            secret[i] = 0xc41d000000000000ull + i;
        send_byte(to_parent[1], 'r');
        recv_byte(to_child[0]);
        /* The parent may have written secret[7] (process_vm_writev). */
        send_byte(to_parent[1], secret[7] == 0x77 ? 'w' : 'n');
        recv_byte(to_child[0]);
        _exit(0);
    }
    recv_byte(to_parent[0]);
    uint64_t got[8] = {0};
    struct iovec local = {got, sizeof got}, remote = {(void *)secret, sizeof got};
    long r = raw_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0);
    if (!note_enosys(r, "process_vm_readv"))
        check(r == (long)sizeof got && got[0] == 0xc41d000000000000ull &&
                  got[7] == 0xc41d000000000007ull,
              "[opt] process_vm_readv of a dumpable child of the same user reads the child's copy",
              "got %ld, first word %#lx", r, (unsigned long)got[0]);
    /* Remote addresses in the kernel half: EFAULT. */
    struct iovec kremote = {(void *)0xffff800000000000ul, 64};
    r = raw_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&kremote, 1, 0);
    if (!note_enosys(r, "process_vm_readv"))
        CHECK_ERR(r, EFAULT, "[opt] process_vm_readv of the child's kernel half: EFAULT");
    r = raw_syscall6(SYS_process_vm_readv, 0x7ffffff0, (long)&local, 1, (long)&remote, 1, 0);
    if (!note_enosys(r, "process_vm_readv"))
        CHECK_ERR(r, ESRCH, "[opt] process_vm_readv of a pid that does not exist: ESRCH");

    uint64_t val = 0x77;
    struct iovec wlocal = {&val, 8}, wremote = {(void *)&secret[7], 8};
    r = raw_syscall6(SYS_process_vm_writev, pid, (long)&wlocal, 1, (long)&wremote, 1, 0);
    int wrote = !note_enosys(r, "process_vm_writev");
    if (wrote)
        check(r == 8, "[opt] process_vm_writev into the child", "got %ld", r);
    CHECK(secret[7] == 0x5ec0000000000007ull, "the parent's own copy is untouched");
    send_byte(to_child[1], 'x');
    char seen = recv_byte(to_parent[0]);
    if (wrote)
        check(seen == 'w', "[opt] the child sees what process_vm_writev wrote", "child saw %c",
              seen);
    send_byte(to_child[1], 'x');
    int st;
    waitpid(pid, &st, 0);

    /* A non-dumpable child: refused to a process without CAP_SYS_PTRACE. */
    if (geteuid() == 0) {
        printf("skip [opt] process_vm_readv of a non-dumpable child: running as root\n");
    } else {
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            long d = raw_syscall2(SYS_prctl, PR_SET_DUMPABLE, 0);
            send_byte(to_parent[1], d == 0 ? 'd' : 'e');
            recv_byte(to_child[0]);
            _exit(0);
        }
        char c = recv_byte(to_parent[0]);
        if (c != 'd') {
            printf("skip [opt] process_vm_readv of a non-dumpable child: "
                   "prctl(PR_SET_DUMPABLE) failed\n");
        } else {
            r = raw_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0);
            if (!note_enosys(r, "process_vm_readv"))
                CHECK_ERR(r, EPERM, "[opt] process_vm_readv of a non-dumpable child: EPERM");
        }
        send_byte(to_child[1], 'x');
        waitpid(pid, &st, 0);
    }
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    memory_after_fork();
    state_after_fork();
    foreign_tids();
    process_vm();
    return finish();
}
