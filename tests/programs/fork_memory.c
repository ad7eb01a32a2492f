/*
 * Memory across fork: MAP_SHARED anonymous memory is the same memory in parent, child and
 * grandchild (pages nobody touched before the fork too, in a 512 MiB mapping split by
 * mprotect and then moved by mremap on one side), survives madvise(MADV_DONTNEED) and a
 * munmap on the other side, and carries shared futexes between processes; private memory is
 * each process's own after fork however much of it is written on either side; and a file
 * mapping raises SIGBUS (BUS_ADRERR) on a page wholly past the end of the file, while the
 * rest of the last page reads zeros and the kernel's copies from such a page fail with EFAULT;
 * a private file mapping is copy-on-write over the file (MADV_DONTNEED brings it back).
 */
#include "ktls_test.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define MIB (1ul << 20)
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

static int wait_exit(pid_t pid)
{
    int st = -1;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void shared_anonymous(void)
{
    uint8_t *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "map 4 MAP_SHARED|MAP_ANONYMOUS pages");
    if (m == MAP_FAILED)
        return;
    m[0] = 1; /* only the first page is touched before the fork */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++)
            m[i * PAGE + 7] = 0x10 + i;
        /* A grandchild writes too. */
        pid_t g = fork();
        if (g == 0) {
            m[3 * PAGE + 8] = 0x77;
            _exit(0);
        }
        _exit(wait_exit(g));
    }
    CHECK_RET(wait_exit(pid), 0, "the child and the grandchild exit 0");
    int seen = 1;
    for (int i = 0; i < 4; i++)
        seen &= m[i * PAGE + 7] == 0x10 + i;
    CHECK(seen, "the child's writes to shared pages are seen, untouched ones before fork too");
    CHECK(m[3 * PAGE + 8] == 0x77, "the grandchild's write to shared memory is seen");
    CHECK(m[0] == 1, "the parent's write before fork is still there");
    unsigned char v[4];
    CHECK_RET(raw_syscall3(SYS_mincore, m, 4 * PAGE, v), 0, "mincore of the shared pages");
    CHECK(v[0] == 1 && v[1] == 1 && v[2] == 1 && v[3] == 1,
          "mincore: pages the child touched are resident in the parent too");

    /* The child unmaps and discards its view; the parent's memory stays. */
    memset(m, 0x5a, 4 * PAGE);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int bad = m[PAGE] != 0x5a;
        madvise(m, 2 * PAGE, MADV_DONTNEED);
        bad |= (m[0] != 0x5a) << 1; /* shared memory keeps its contents */
        m[1] = 0x6b;
        munmap(m, 4 * PAGE);
        _exit(bad);
    }
    CHECK_RET(wait_exit(pid), 0,
              "the child sees the parent's data, before and after madvise(MADV_DONTNEED)");
    CHECK(m[1] == 0x6b && m[2] == 0x5a && m[3 * PAGE] == 0x5a,
          "after the child's madvise and munmap, the parent's shared memory is intact");
    munmap(m, 4 * PAGE);
}

/* A big shared mapping nobody touched, split by mprotect, then moved by mremap in the parent:
 * the child's writes still land in the parent's pages, wherever they now are. */
static void shared_big_split_moved(void)
{
    size_t n = 512 * MIB;
    uint8_t *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    CHECK(m != MAP_FAILED, "map 512 MiB of MAP_SHARED|MAP_ANONYMOUS memory, untouched");
    if (m == MAP_FAILED)
        return;
    CHECK(mprotect(m + n / 2, PAGE, PROT_READ) == 0, "mprotect a page in its middle");
    CHECK(mprotect(m + n / 2, PAGE, PROT_READ | PROT_WRITE) == 0, "and back");
    int go[2], done[2];
    CHECK(pipe(go) == 0 && pipe(done) == 0, "pipes");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        m[0] = 1;
        m[n / 2 + 5] = 2;
        m[n - 1] = 3;
        (void)!write(done[1], "1", 1);
        /* The parent moves its view meanwhile. */
        (void)!read(go[0], &c, 1);
        m[PAGE] = 4;
        m[n - PAGE] = 5;
        _exit(0);
    }
    char c;
    (void)!read(done[0], &c, 1);
    CHECK(m[0] == 1 && m[n / 2 + 5] == 2 && m[n - 1] == 3,
          "the child's writes across the whole untouched mapping are seen");
    uint8_t *moved = mremap(m, n, n + 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
                            (void *)0x600000000000ul);
    CHECK(moved != MAP_FAILED, "mremap moves the parent's view");
    (void)!write(go[1], "g", 1);
    CHECK_RET(wait_exit(pid), 0, "the child exits 0");
    if (moved != MAP_FAILED) {
        CHECK(moved[0] == 1 && moved[n - 1] == 3, "the moved view has the shared contents");
        CHECK(moved[PAGE] == 4 && moved[n - PAGE] == 5,
              "the child's writes after the move are seen through the moved view");
        munmap(moved, n + 4 * PAGE);
    }
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
    return raw_syscall4(SYS_futex, w, op, val, ts);
}

static void shared_futex(void)
{
    uint32_t *w = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(w != MAP_FAILED, "map a shared futex page");
    if (w == MAP_FAILED)
        return;
    /* w[0]: the futex word; w[1]: what the child's FUTEX_WAKE returned, plus 100. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec d = {0, 50 * 1000 * 1000};
        nanosleep(&d, NULL);
        __atomic_store_n(&w[0], 1, __ATOMIC_SEQ_CST);
        w[1] = 100 + (uint32_t)futex(&w[0], FUTEX_WAKE, 1, NULL);
        _exit(0);
    }
    long r = 0;
    struct timespec limit = {5, 0};
    while (__atomic_load_n(&w[0], __ATOMIC_SEQ_CST) == 0) {
        r = futex(&w[0], FUTEX_WAIT, 0, &limit);
        if (r == -ETIMEDOUT)
            break;
    }
    CHECK(r != -ETIMEDOUT, "a shared FUTEX_WAIT is woken by another process's FUTEX_WAKE");
    CHECK_RET(wait_exit(pid), 0, "the waking child exits 0");
    CHECK(w[1] == 100 || w[1] == 101, "the child's FUTEX_WAKE succeeded");
    munmap(w, PAGE);
}

static uint64_t sum(const uint8_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i += 64)
        s = s * 31 + p[i];
    return s;
}

static void private_memory(void)
{
    size_t n = 8 * MIB;
    uint8_t *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "map 8 MiB of private memory");
    if (m == MAP_FAILED)
        return;
    for (size_t i = 0; i < n; i += 64)
        m[i] = (uint8_t)(i >> 6);
    uint64_t before = sum(m, n), half = sum(m + n / 2, n / 2);
    int to_child[2];
    CHECK(pipe(to_child) == 0, "a pipe");
    int bad = 0;
    for (int round = 0; round < 8; round++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            /* Wait until the parent has written after the fork. */
            (void)!read(to_child[0], &c, 1);
            int b = m[0] != 0;
            b |= (sum(m + n / 2, n / 2) != half) << 1;
            /* Write every page of the second half. */
            memset(m + n / 2, 0xc0 + round, n / 2);
            b |= (m[n - 1] != 0xc0 + round) << 2;
            _exit(b);
        }
        m[0] = 0xee;
        (void)!write(to_child[1], "g", 1);
        int st = wait_exit(pid);
        m[0] = 0;
        if (st != 0 && !bad)
            printf("FAIL round %d: child status %d (1: saw the parent's write, 2: data "
                   "differs, 4: its own write lost)\n",
                   round, st);
        bad |= st != 0;
    }
    CHECK(!bad, "8 children each see the memory as at fork and write half of it");
    CHECK(sum(m, n) == before, "the parent's 8 MiB are unchanged by the children's writes");
    /* A write in the child through the kernel (read from a pipe) stays in the child. */
    int p[2];
    CHECK(pipe(p) == 0, "another pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        (void)!write(p[1], "kernel", 6);
        _exit(read(p[0], m + PAGE, 6) == 6 && memcmp(m + PAGE, "kernel", 6) == 0 ? 0 : 1);
    }
    CHECK_RET(wait_exit(pid), 0, "the child's read() into its copy of a private page works");
    CHECK(m[PAGE] == (uint8_t)(PAGE >> 6), "the child's read() left the parent's page alone");
    close(p[0]);
    close(p[1]);
    close(to_child[0]);
    close(to_child[1]);
    munmap(m, n);
}

static sigjmp_buf jump;
static volatile int fault_sig, fault_code;
static void *volatile fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fault_sig = sig;
    fault_code = si->si_code;
    fault_addr = si->si_addr;
    siglongjmp(jump, 1);
}

static int touch(volatile uint8_t *p)
{
    fault_sig = 0;
    if (sigsetjmp(jump, 1) == 0)
        (void)*p;
    return fault_sig;
}

static void past_eof(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    FILE *f = tmpfile();
    CHECK(f != NULL, "a temporary file");
    if (!f)
        return;
    int fd = fileno(f);
    char data[100];
    memset(data, 'd', sizeof data);
    CHECK_RET(write(fd, data, sizeof data), (long)sizeof data, "write 100 bytes to it");
    static const int TYPES[] = {MAP_PRIVATE, MAP_SHARED};
    for (int t = 0; t < 2; t++) {
        const char *name = t ? "MAP_SHARED" : "MAP_PRIVATE";
        char what[128];
        volatile uint8_t *m = mmap(NULL, 3 * PAGE, PROT_READ, TYPES[t], fd, 0);
        snprintf(what, sizeof what, "%s: map 3 pages of a 100-byte file", name);
        CHECK(m != MAP_FAILED, what);
        if (m == MAP_FAILED)
            continue;
        snprintf(what, sizeof what, "%s: the file's bytes, then zeros to the end of the page",
                 name);
        CHECK(m[0] == 'd' && m[99] == 'd' && m[100] == 0 && m[PAGE - 1] == 0, what);
        for (int pg = 1; pg < 3; pg++) {
            volatile uint8_t *a = m + pg * PAGE + 5;
            int sig = touch(a);
            snprintf(what, sizeof what, "%s: reading page %d (past the end of the file)", name,
                     pg);
            check(sig == SIGBUS, what, "signal %d", sig);
            snprintf(what, sizeof what, "%s: SIGBUS page %d: BUS_ADRERR at the address", name,
                     pg);
            check(fault_code == BUS_ADRERR && fault_addr == (void *)a, what,
                  "si_code %d si_addr %p", fault_code, fault_addr);
        }
        int p[2];
        CHECK(pipe(p) == 0, "a pipe");
        snprintf(what, sizeof what, "%s: write() from a page past the end of the file", name);
        CHECK_ERR(raw_syscall3(SYS_write, p[1], m + PAGE, 16), EFAULT, what);
        close(p[0]);
        close(p[1]);
        /* After fork the child sees the same. */
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(m[0] == 'd' && touch(m + 2 * PAGE) == SIGBUS ? 0 : 1);
        snprintf(what, sizeof what, "%s: the same in a child after fork", name);
        CHECK_RET(wait_exit(pid), 0, what);
        munmap((void *)m, 3 * PAGE);
    }
    fclose(f);
    signal(SIGBUS, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
}

/* A private file mapping is copy-on-write over the file's pages: writes stay in the process
 * (and out of another mapping of the file, and out of the parent after fork), and
 * MADV_DONTNEED brings the file's contents back. */
static void file_private(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL, "a temporary file");
    if (!f)
        return;
    int fd = fileno(f);
    CHECK_RET(write(fd, "file data", 9), 9, "write 9 bytes to it");
    char *a = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *b = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(a != MAP_FAILED && b != MAP_FAILED, "map the file privately twice");
    if (a == MAP_FAILED || b == MAP_FAILED)
        return;
    a[0] = 'F';
    CHECK(memcmp(a, "File data", 9) == 0 && memcmp(b, "file data", 9) == 0,
          "a write to one private mapping stays out of the other");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = a[0] != 'F';
        a[1] = 'I';
        bad |= (madvise(a, PAGE, MADV_DONTNEED) != 0 || memcmp(a, "file data", 9) != 0) << 1;
        _exit(bad);
    }
    CHECK_RET(wait_exit(pid), 0,
              "the child sees the parent's write; MADV_DONTNEED gives it the file back");
    CHECK(memcmp(a, "File data", 9) == 0, "the child's write and discard leave the parent's");
    CHECK(madvise(a, PAGE, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) the private mapping");
    CHECK(memcmp(a, "file data", 9) == 0 && a[9] == 0,
          "after MADV_DONTNEED the private mapping reads the file again");
    munmap(a, PAGE);
    munmap(b, PAGE);
    fclose(f);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    shared_anonymous();
    shared_big_split_moved();
    shared_futex();
    private_memory();
    past_eof();
    file_private();
    return finish();
}
