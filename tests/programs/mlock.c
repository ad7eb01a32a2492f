/*
 * mlock, mlock2, munlock, mlockall, munlockall and MAP_LOCKED, as Linux answers them:
 * argument checks, ENOMEM for unmapped ranges, locked pages faulted in (or not, with
 * MLOCK_ONFAULT / MCL_ONFAULT: mincore tells), MADV_DONTNEED refused on locked pages, and
 * RLIMIT_MEMLOCK enforced for a process without CAP_IPC_LOCK (a child that drops root).
 */
#include "child.h"
#include "ktls_test.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096l
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

/* How many of the `pages` pages at `p` are resident. */
static int resident(void *p, long pages)
{
    unsigned char vec[64];
    if (pages > 64 || mincore(p, pages * PAGE, vec) != 0)
        return -1;
    int n = 0;
    for (long i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

static char *map(long pages)
{
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void ranges(void)
{
    char *p = map(16);
    CHECK(p != NULL, "map 16 pages");
    if (!p)
        return;
    CHECK_ERR(raw_syscall2(SYS_mlock, p, 16 * PAGE), 0, "mlock 16 pages");
    check(resident(p, 16) == 16, "mlock faults the pages in", "%d of 16 resident",
          resident(p, 16));
    CHECK_ERR(raw_syscall3(SYS_madvise, p, PAGE, MADV_DONTNEED), EINVAL,
               "MADV_DONTNEED on a locked page: EINVAL");
    CHECK_ERR(raw_syscall2(SYS_munlock, p + 3, PAGE), 0,
               "munlock from an unaligned address (rounded down)");
    CHECK_ERR(raw_syscall3(SYS_madvise, p, PAGE, MADV_DONTNEED), 0,
               "MADV_DONTNEED after munlock");
    CHECK_ERR(raw_syscall2(SYS_munlock, p, 16 * PAGE), 0, "munlock the rest");
    CHECK_ERR(raw_syscall2(SYS_mlock, p, 0), 0, "mlock of 0 bytes");
    CHECK_ERR(raw_syscall2(SYS_mlock, p, -PAGE), EINVAL, "mlock past the end of memory: EINVAL");
    munmap(p + 8 * PAGE, PAGE);
    CHECK_ERR(raw_syscall2(SYS_mlock, p, 16 * PAGE), ENOMEM, "mlock over a hole: ENOMEM");
    CHECK_ERR(raw_syscall2(SYS_munlock, p, 16 * PAGE), ENOMEM, "munlock over a hole: ENOMEM");
    CHECK_ERR(raw_syscall2(SYS_mlock, 0x1000, PAGE), ENOMEM, "mlock of unmapped memory: ENOMEM");
    CHECK_ERR(raw_syscall3(SYS_mlock2, p, PAGE, 2), EINVAL, "mlock2 with unknown flags: EINVAL");
    munmap(p, 16 * PAGE);
    char *q = map(4);
    CHECK(q != NULL, "map 4 fresh pages");
    if (!q)
        return;
    CHECK_ERR(raw_syscall3(SYS_mlock2, q, 4 * PAGE, MLOCK_ONFAULT), 0, "mlock2(MLOCK_ONFAULT)");
    check(resident(q, 4) == 0, "MLOCK_ONFAULT leaves untouched pages out", "%d of 4 resident",
          resident(q, 4));
    CHECK_ERR(raw_syscall3(SYS_madvise, q, PAGE, MADV_DONTNEED), EINVAL,
              "and locks them (MADV_DONTNEED: EINVAL)");
    munmap(q, 4 * PAGE);
}

static void all(void)
{
    CHECK_ERR(raw_syscall1(SYS_mlockall, 0), EINVAL, "mlockall(0): EINVAL");
    CHECK_ERR(raw_syscall1(SYS_mlockall, MCL_ONFAULT), EINVAL, "mlockall(MCL_ONFAULT): EINVAL");
    CHECK_ERR(raw_syscall1(SYS_mlockall, 8), EINVAL, "mlockall with unknown flags: EINVAL");
    CHECK_ERR(raw_syscall1(SYS_mlockall, MCL_CURRENT | MCL_FUTURE), 0,
               "mlockall(MCL_CURRENT | MCL_FUTURE)");
    char *p = map(8);
    check(p && resident(p, 8) == 8, "after MCL_FUTURE a new mapping is faulted in",
          "%d of 8 resident", p ? resident(p, 8) : -1);
    CHECK_ERR(raw_syscall0(SYS_munlockall), 0, "munlockall");
    char *q = map(8);
    check(q && resident(q, 8) == 0, "after munlockall a new mapping is not",
          "%d of 8 resident", q ? resident(q, 8) : -1);
    CHECK_ERR(raw_syscall1(SYS_mlockall, MCL_FUTURE | MCL_ONFAULT), 0,
               "mlockall(MCL_FUTURE | MCL_ONFAULT)");
    char *r = map(8);
    check(r && resident(r, 8) == 0, "with MCL_ONFAULT a new mapping is faulted in as touched",
          "%d of 8 resident", r ? resident(r, 8) : -1);
    if (r)
        CHECK_ERR(raw_syscall3(SYS_madvise, r, PAGE, MADV_DONTNEED), EINVAL,
                   "and it is locked (MADV_DONTNEED: EINVAL)");
    CHECK_ERR(raw_syscall0(SYS_munlockall), 0, "munlockall again");
    munmap(p, 8 * PAGE);
    munmap(q, 8 * PAGE);
    munmap(r, 8 * PAGE);
}

/* Not root (no CAP_IPC_LOCK): RLIMIT_MEMLOCK of 16 pages counts. */
static int limited(long unused)
{
    (void)unused;
    struct rlimit rl = {16 * PAGE, 16 * PAGE};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        return 100;
    int bad = 0;
    char *p = map(64);
    if (!p)
        return 101;
    bad |= (raw_syscall2(SYS_mlock, p, 8 * PAGE) != 0) << 0;
    /* The same pages again do not count twice. */
    bad |= (raw_syscall2(SYS_mlock, p, 12 * PAGE) != 0) << 1;
    bad |= (raw_syscall2(SYS_mlock, p + 20 * PAGE, 8 * PAGE) != -ENOMEM) << 2;
    char *m = mmap(NULL, 8 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    bad |= (m != MAP_FAILED || errno != EAGAIN) << 3;
    bad |= (raw_syscall1(SYS_mlockall, MCL_CURRENT) != -ENOMEM) << 4;
    bad |= (raw_syscall2(SYS_munlock, p, 64 * PAGE) != 0) << 5;
    bad |= (raw_syscall2(SYS_mlock, p + 20 * PAGE, 8 * PAGE) != 0) << 6;
    /* After MCL_FUTURE the heap brk adds is locked, and must fit too (8 pages are locked). */
    bad |= (raw_syscall1(SYS_mlockall, MCL_FUTURE) != 0) << 10;
    long b0 = raw_syscall1(SYS_brk, 0);
    bad |= (raw_syscall1(SYS_brk, b0 + 32 * PAGE) != b0) << 11;
    bad |= (raw_syscall1(SYS_brk, b0 + 4 * PAGE) != b0 + 4 * PAGE) << 12;
    raw_syscall1(SYS_brk, b0);
    bad |= (raw_syscall0(SYS_munlockall) != 0) << 13;
    rl.rlim_cur = 0;
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return 102;
    bad |= (raw_syscall2(SYS_mlock, p, PAGE) != -EPERM) << 7;
    bad |= (raw_syscall1(SYS_mlockall, MCL_FUTURE) != -EPERM) << 8;
    bad |= (raw_syscall2(SYS_munlock, p, 64 * PAGE) != 0) << 9;
    return bad;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    ranges();
    all();
    int st = in_child(limited, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "without root, RLIMIT_MEMLOCK bounds mlock (ENOMEM), MAP_LOCKED (EAGAIN), "
          "mlockall (ENOMEM) and brk after MCL_FUTURE, and 0 allows none (EPERM)",
          "%s (bits of the failed steps, 100+ a setup step)", status_text(st));
    return finish();
}
