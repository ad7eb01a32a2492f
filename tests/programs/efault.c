/*
 * Bad user pointers give the errors Linux gives (EFAULT), and arch_prctl rejects bad bases.
 *
 * Every call is a raw `syscall` instruction so no libc wrapper touches the bad pointer first;
 * each expectation was checked against the host Linux.
 */
#include "ktls_test.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004

static const struct {
    const char *name;
    long addr;
} bad[] = {
    {"NULL", 0},
    {"kernel 0xffff800000000000", (long)0xffff800000000000UL},
    {"kernel 0xffffffff81000000", (long)0xffffffff81000000UL},
    {"unmapped user page", 0}, /* filled in by main */
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

static char what[160];

static const char *label(const char *call, const char *ptr)
{
    snprintf(what, sizeof(what), "%s with %s", call, ptr);
    return what;
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    char *unmapped = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(unmapped != MAP_FAILED, "mmap a page to unmap");
    CHECK(munmap(unmapped, page) == 0, "munmap it");
    long addrs[NBAD];
    for (size_t i = 0; i < NBAD; i++)
        addrs[i] = bad[i].addr;
    addrs[NBAD - 1] = (long)unmapped;

    int zero = open("/dev/zero", O_RDONLY);
    CHECK(zero >= 0, "open /dev/zero");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK(write(p[1], "0123456789abcdef", 16) == 16, "fill the pipe");

    for (size_t i = 0; i < NBAD; i++) {
        const char *n = bad[i].name;
        long a = addrs[i];
        CHECK_ERR(raw_syscall3(SYS_read, zero, a, 16), EFAULT, label("read /dev/zero", n));
        CHECK_ERR(raw_syscall3(SYS_read, p[0], a, 16), EFAULT, label("read pipe", n));
        CHECK_ERR(raw_syscall3(SYS_write, p[1], a, 16), EFAULT, label("write pipe", n));
        CHECK_ERR(raw_syscall1(SYS_uname, a), EFAULT, label("uname", n));
        CHECK_ERR(raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, a), EFAULT,
                  label("clock_gettime(CLOCK_MONOTONIC)", n));
        CHECK_ERR(raw_syscall3(SYS_openat, AT_FDCWD, a, O_RDONLY), EFAULT, label("openat path", n));
        CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, a), EFAULT,
                  label("arch_prctl(ARCH_GET_FS)", n));
        CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_GET_GS, a), EFAULT,
                  label("arch_prctl(ARCH_GET_GS)", n));
        CHECK_ERR(raw_syscall2(SYS_fstat, zero, a), EFAULT, label("fstat buffer", n));
        CHECK_ERR(raw_syscall2(SYS_stat, a, addrs[0]), EFAULT, label("stat path", n));
        CHECK_ERR(raw_syscall3(SYS_readv, zero, a, 1), EFAULT, label("readv iovec array", n));
        CHECK_ERR(raw_syscall2(SYS_nanosleep, a, 0), EFAULT, label("nanosleep request", n));
        CHECK_ERR(raw_syscall3(SYS_getrandom, a, 16, 0), EFAULT, label("getrandom buffer", n));
        if (a != 0) /* a NULL new action just queries */
            CHECK_ERR(raw_syscall4(SYS_rt_sigaction, 10, a, 0, 8), EFAULT,
                      label("rt_sigaction new action", n));
        CHECK_ERR(raw_syscall4(SYS_rt_sigprocmask, 0, a, 0, 8), a ? EFAULT : 0,
                  label("rt_sigprocmask new set", n));
    }
    CHECK_RET(raw_syscall4(SYS_rt_sigaction, 10, 0, 0, 8), 0, "rt_sigaction with NULL action");

    /* The data is still in the pipe: the failed reads consumed nothing. */
    char buf[32];
    CHECK_RET(raw_syscall3(SYS_read, p[0], buf, sizeof(buf)), 16, "pipe data intact after EFAULTs");
    CHECK(memcmp(buf, "0123456789abcdef", 16) == 0, "pipe data contents");

    /* A zero-length transfer does not look at the buffer. */
    CHECK_RET(raw_syscall3(SYS_write, p[1], 0, 0), 0, "write of 0 bytes from NULL");
    CHECK_RET(raw_syscall3(SYS_read, zero, 0, 0), 0, "read of 0 bytes into NULL");

    /* arch_prctl: bases outside the user half are EPERM, unknown codes EINVAL. */
    CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, 0x0000800000000000L), EPERM,
              "arch_prctl(ARCH_SET_FS, non-canonical 0x0000800000000000)");
    CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, (long)0xffff800000000000UL), EPERM,
              "arch_prctl(ARCH_SET_FS, kernel 0xffff800000000000)");
    CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_SET_GS, 0x0000800000000000L), EPERM,
              "arch_prctl(ARCH_SET_GS, non-canonical 0x0000800000000000)");
    CHECK_ERR(raw_syscall2(SYS_arch_prctl, ARCH_SET_GS, (long)0xffff800000000000UL), EPERM,
              "arch_prctl(ARCH_SET_GS, kernel 0xffff800000000000)");
    unsigned long fs = 0;
    CHECK_RET(raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs), 0, "arch_prctl(ARCH_GET_FS) works");
    unsigned long tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    CHECK(fs == tp, "FS base unchanged by the rejected ARCH_SET_FS");
    CHECK_ERR(raw_syscall2(SYS_arch_prctl, 0x3001, &fs), EINVAL, "arch_prctl(0x3001) is EINVAL");

    /*
     * Buffers that straddle the end of a mapping: the first page is mapped, the second not.
     * What Linux does (checked on the host): a pipe write fails with EFAULT and queues nothing
     * (the pipe copies a page-sized chunk at a time and drops a partial one); a pipe read fails
     * with EFAULT and consumes nothing; /dev/zero and regular files transfer up to the hole and
     * return the short count.
     */
    char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(two != MAP_FAILED, "mmap two pages");
    CHECK(munmap(two + page, page) == 0, "munmap the second page");
    memset(two, 'x', page);
    char *edge = two + page - 100;
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "make the pipe's read end non-blocking");

    CHECK_ERR(raw_syscall3(SYS_write, p[1], edge, 200), EFAULT,
              "pipe write straddling the end of a mapping");
    CHECK_ERR(raw_syscall3(SYS_read, p[0], buf, sizeof(buf)), EAGAIN,
              "the failed pipe write queued nothing");
    CHECK_ERR(raw_syscall3(SYS_write, p[1], two + page, 16), EFAULT,
              "pipe write starting in the unmapped page");

    CHECK_RET(raw_syscall3(SYS_write, p[1], "abcdefgh", 8), 8, "refill the pipe");
    CHECK_ERR(raw_syscall3(SYS_read, p[0], edge + 96, 8), EFAULT,
              "pipe read straddling the end of a mapping");
    CHECK_RET(raw_syscall3(SYS_read, p[0], buf, sizeof(buf)), 8,
              "the failed pipe read consumed nothing");
    CHECK(memcmp(buf, "abcdefgh", 8) == 0, "the pipe data after the failed read");

    CHECK_RET(raw_syscall3(SYS_read, zero, edge, 200), 100,
              "read /dev/zero straddling the end of a mapping is short");
    CHECK(edge[0] == 0 && edge[99] == 0, "the short read zeroed up to the hole");

    char path[64];
    snprintf(path, sizeof(path), "/tmp/ktls-efault-%d", (int)getpid());
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(f >= 0, "create a file in /tmp");
    CHECK(unlink(path) == 0, "unlink it (keeping it open)");
    memset(edge, 'y', 100);
    CHECK_RET(raw_syscall3(SYS_write, f, edge, 200), 100,
              "file write straddling the end of a mapping is short");
    CHECK_RET(lseek(f, 0, SEEK_END), 100, "the file holds the short count");
    CHECK_RET(lseek(f, 0, SEEK_SET), 0, "rewind");
    CHECK_RET(raw_syscall3(SYS_read, f, edge + 50, 100), 50,
              "file read straddling the end of a mapping is short");
    CHECK(edge[50] == 'y' && edge[99] == 'y', "the short file read's bytes landed");
    CHECK_RET(lseek(f, 0, SEEK_CUR), 50, "the short read advanced the offset by its count");
    close(f);

    return finish();
}
