/*
 * Memory management: brk growth and shrink, big sparse anonymous mmap, MAP_FIXED,
 * munmap and re-map, mprotect, mremap, madvise(MADV_DONTNEED), mincore, msync and
 * MAP_POPULATE.
 */
#include "ktls_test.h"

#include <time.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096L
#define MiB (1024L * 1024L)

static int all_equal(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void test_brk(void)
{
    /*
     * libc's malloc owns the break below `cur`; everything here stays above it, and no libc
     * call that could allocate runs between the first move and the restore, so results are
     * collected first and checked afterwards.
     */
    long cur = raw_syscall1(SYS_brk, 0);
    long base = (cur + PAGE - 1) & ~(PAGE - 1);
    long top = base + 4 * MiB;
    long grow = raw_syscall1(SYS_brk, top);
    int fresh_zero = 0, kept = 0, regrown_zero = 0;
    long shrink = 0, regrow = 0;
    if (grow == top) {
        fresh_zero = all_equal((unsigned char *)base, top - base, 0);
        memset((void *)base, 0xa5, top - base);
        shrink = raw_syscall1(SYS_brk, base + PAGE);
        regrow = raw_syscall1(SYS_brk, top);
        kept = all_equal((unsigned char *)base, PAGE, 0xa5);
        regrown_zero = all_equal((unsigned char *)base + PAGE, top - base - PAGE, 0);
    }
    long restore = raw_syscall1(SYS_brk, cur);
    long below = raw_syscall1(SYS_brk, 0x1000);
    long after = raw_syscall1(SYS_brk, 0);

    CHECK(cur > 0, "brk(0) returns the current break");
    CHECK_RET(grow, top, "brk grows by 4 MiB");
    CHECK(fresh_zero, "grown brk memory is zero");
    CHECK_RET(shrink, base + PAGE, "brk shrinks");
    CHECK_RET(regrow, top, "brk grows again");
    CHECK(kept, "memory below the shrunk break kept its contents");
    CHECK(regrown_zero, "memory above the shrunk break is fresh zero pages after regrowing");
    CHECK_RET(restore, cur, "brk back to the start");
    CHECK_RET(below, cur, "brk below the heap start fails, returning the current break");
    CHECK_RET(after, cur, "the failed brk did not move the break");
}

static void test_big_mmap(void)
{
    size_t len = 64 * MiB;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap 64 MiB anonymous");
    if (p == MAP_FAILED)
        return;
    CHECK((uintptr_t)p % PAGE == 0, "the mapping is page aligned");
    int zero = 1, back = 1;
    for (size_t off = 0; off < len; off += MiB / 2)
        zero &= p[off] == 0 && p[off + 4095] == 0;
    zero &= p[len - 1] == 0;
    for (size_t off = 0; off < len; off += MiB / 2)
        p[off] = (unsigned char)(off >> 19);
    p[len - 1] = 0x77;
    for (size_t off = 0; off < len; off += MiB / 2)
        back &= p[off] == (unsigned char)(off >> 19);
    back &= p[len - 1] == 0x77;
    CHECK(zero, "64 MiB mapping reads as zero (touched every 512 KiB)");
    CHECK(back, "sparse writes across 64 MiB read back");
    CHECK(munmap(p, len) == 0, "munmap 64 MiB");
}

static void test_fixed_and_remap(void)
{
    unsigned char *r = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r != MAP_FAILED, "mmap 16 pages");
    if (r == MAP_FAILED)
        return;
    memset(r, 0x11, 16 * PAGE);

    unsigned char *f = mmap(r + 4 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(f == r + 4 * PAGE, "MAP_FIXED maps at exactly the address asked");
    CHECK(all_equal(f, 2 * PAGE, 0), "MAP_FIXED replaced the old pages with zero pages");
    CHECK(all_equal(r + 3 * PAGE, PAGE, 0x11) && all_equal(r + 6 * PAGE, PAGE, 0x11),
          "MAP_FIXED left the neighbouring pages alone");

    void *nr = mmap(r + 8 * PAGE, PAGE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(nr == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE over a mapping is EEXIST");

    CHECK(munmap(r + 8 * PAGE, PAGE) == 0, "munmap one page in the middle");
    /* The kernel writing into memory (here clock_gettime's result) sees what the MMU sees. */
    struct timespec ts;
    CHECK_ERR(raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, r + 8 * PAGE), EFAULT,
              "the unmapped page is gone (clock_gettime into it is EFAULT)");
    unsigned char *m = mmap(r + 8 * PAGE, PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(m == r + 8 * PAGE, "re-map the hole with MAP_FIXED");
    CHECK(all_equal(m, PAGE, 0), "the re-mapped page is zero");
    m[0] = 1;
    m[PAGE - 1] = 2;
    CHECK(m[0] == 1 && m[PAGE - 1] == 2, "the re-mapped page is writable");
    CHECK(all_equal(r + 7 * PAGE, PAGE, 0x11) && all_equal(r + 9 * PAGE, PAGE, 0x11),
          "the hole's neighbours kept their contents");

    CHECK(munmap(r + 12 * PAGE, PAGE) == 0, "munmap another page");
    unsigned char *h = mmap(r + 12 * PAGE, PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(h == r + 12 * PAGE, "an mmap hint at a free address is honoured");

    /* mprotect to read-only: reads still work, the kernel refuses to write into it. */
    CHECK(mprotect(r, PAGE, PROT_READ) == 0, "mprotect a page PROT_READ");
    CHECK(r[0] == 0x11 && r[PAGE - 1] == 0x11, "the read-only page still reads its contents");
    CHECK_ERR(raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, r), EFAULT,
              "clock_gettime into a read-only page is EFAULT");
    CHECK_RET(raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, &ts), 0,
              "clock_gettime into the stack works");
    CHECK(mprotect(r, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect it back to read-write");
    r[0] = 0x22;
    CHECK(r[0] == 0x22, "the page is writable again");

    CHECK(munmap(r, 16 * PAGE) == 0, "munmap the 16 pages");

    errno = 0;
    CHECK(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
              errno == EINVAL,
          "mmap of length 0 is EINVAL");
    errno = 0;
    CHECK(mmap(NULL, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL,
          "mmap without MAP_PRIVATE or MAP_SHARED is EINVAL");
    errno = 0;
    CHECK(munmap((char *)r + 1, PAGE) == -1 && errno == EINVAL, "munmap of an unaligned address is EINVAL");
}

static void test_mremap(void)
{
    unsigned char *a = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(a != MAP_FAILED, "mmap 8 pages for mremap");
    if (a == MAP_FAILED)
        return;
    for (long i = 0; i < 8 * PAGE; i++)
        a[i] = (unsigned char)(i * 13);
    errno = 0;
    CHECK(mremap(a, 4 * PAGE, 6 * PAGE, 0) == MAP_FAILED && errno == ENOMEM,
          "mremap cannot grow in place into a mapped range without MREMAP_MAYMOVE");
    CHECK(mremap(a, 8 * PAGE, 4 * PAGE, 0) == a, "mremap shrinks in place");
    unsigned char *b = mremap(a, 4 * PAGE, 256 * PAGE, MREMAP_MAYMOVE);
    CHECK(b != MAP_FAILED, "mremap grows 4 -> 256 pages with MREMAP_MAYMOVE");
    if (b == MAP_FAILED)
        return;
    int same = 1;
    for (long i = 0; i < 4 * PAGE; i++)
        same &= b[i] == (unsigned char)(i * 13);
    CHECK(same, "mremap preserved the contents");
    CHECK(all_equal(b + 4 * PAGE, 252 * PAGE, 0), "the grown part is zero");
    b[256 * PAGE - 1] = 9;
    CHECK(b[256 * PAGE - 1] == 9, "the grown part is writable");
    CHECK(munmap(b, 256 * PAGE) == 0, "munmap the remapped area");

    /* Pages made PROT_NONE keep their contents through a move. */
    unsigned char *c = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(c != MAP_FAILED, "mmap 2 pages to move while PROT_NONE");
    if (c == MAP_FAILED)
        return;
    memset(c, 0x6d, 2 * PAGE);
    CHECK(mprotect(c, 2 * PAGE, PROT_NONE) == 0, "mprotect them PROT_NONE");
    unsigned char *d = mremap(c, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    CHECK(d != MAP_FAILED, "mremap moves the PROT_NONE pages");
    if (d == MAP_FAILED)
        return;
    CHECK(mprotect(d, 4 * PAGE, PROT_READ) == 0, "mprotect the moved pages readable");
    CHECK(all_equal(d, 2 * PAGE, 0x6d), "the moved PROT_NONE pages kept their contents");
    CHECK(all_equal(d + 2 * PAGE, 2 * PAGE, 0), "the grown part is zero");
    CHECK(munmap(d, 4 * PAGE) == 0, "munmap the moved pages");
}

static void test_madvise(void)
{
    unsigned char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap 2 pages for madvise");
    if (p == MAP_FAILED)
        return;
    memset(p, 0x5c, 2 * PAGE);
    CHECK(madvise(p, PAGE, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED)");
    CHECK(all_equal(p, PAGE, 0), "MADV_DONTNEED zeroed the private anonymous page");
    CHECK(all_equal(p + PAGE, PAGE, 0x5c), "the page after it kept its contents");
    p[0] = 3;
    CHECK(p[0] == 3, "the zapped page is writable");
    CHECK(munmap(p, 2 * PAGE) == 0, "munmap the madvise pages");
}

static void test_mincore_msync(void)
{
    unsigned char v[8];
    unsigned char *p = mmap(NULL, 5 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap 5 pages for mincore");
    if (p == MAP_FAILED)
        return;
    CHECK(munmap(p + 4 * PAGE, PAGE) == 0, "munmap the fifth: a hole after the mapping");
    p[0] = 1;
    p[2 * PAGE] = 1;
    memset(v, 9, sizeof v);
    CHECK_RET(raw_syscall3(SYS_mincore, p, 4 * PAGE, v), 0, "mincore of 4 pages");
    CHECK(v[0] == 1 && v[1] == 0 && v[2] == 1 && v[3] == 0 && v[4] == 9,
          "mincore: the touched pages are resident, the others not, one byte per page");
    CHECK_RET(raw_syscall3(SYS_mincore, p, 3 * PAGE + 1, v), 0, "mincore of a partial page");
    CHECK(madvise(p, PAGE, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) the first page");
    CHECK_RET(raw_syscall3(SYS_mincore, p, PAGE, v), 0, "mincore after MADV_DONTNEED");
    CHECK(v[0] == 0, "mincore: a discarded page is not resident");
    CHECK_ERR(raw_syscall3(SYS_mincore, p + 1, PAGE, v), EINVAL, "mincore at an unaligned address");
    CHECK_ERR(raw_syscall3(SYS_mincore, p, 5 * PAGE, v), ENOMEM,
              "mincore of a range running past the mapping");
    CHECK_ERR(raw_syscall3(SYS_mincore, p, PAGE, 0xffff800000000000ul), EFAULT,
              "mincore into a kernel address");
    CHECK_RET(raw_syscall3(SYS_mincore, p, 0, v), 0, "mincore of no pages");

    CHECK_RET(raw_syscall3(SYS_msync, p, 4 * PAGE, MS_SYNC), 0, "msync(MS_SYNC)");
    CHECK_RET(raw_syscall3(SYS_msync, p, PAGE + 1, MS_ASYNC | MS_INVALIDATE), 0,
              "msync(MS_ASYNC | MS_INVALIDATE) of a partial page");
    CHECK_RET(raw_syscall3(SYS_msync, p, 0, MS_SYNC), 0, "msync of nothing");
    CHECK_ERR(raw_syscall3(SYS_msync, p, PAGE, MS_SYNC | MS_ASYNC), EINVAL,
              "msync(MS_SYNC | MS_ASYNC)");
    CHECK_ERR(raw_syscall3(SYS_msync, p, PAGE, 8), EINVAL, "msync with an unknown flag");
    CHECK_ERR(raw_syscall3(SYS_msync, p + 1, PAGE, MS_SYNC), EINVAL,
              "msync at an unaligned address");
    CHECK(munmap(p + PAGE, PAGE) == 0, "munmap the second page");
    CHECK_ERR(raw_syscall3(SYS_msync, p, 4 * PAGE, MS_SYNC), ENOMEM,
              "msync(MS_SYNC) over a hole");
    CHECK_ERR(raw_syscall3(SYS_msync, p, 4 * PAGE, MS_ASYNC), ENOMEM,
              "msync(MS_ASYNC) over a hole");
    CHECK_ERR(raw_syscall3(SYS_mincore, p, 4 * PAGE, v), ENOMEM, "mincore over a hole");
    CHECK(munmap(p, 4 * PAGE) == 0, "munmap the mincore pages");
    CHECK_ERR(raw_syscall3(SYS_msync, p, PAGE, MS_SYNC), ENOMEM, "msync of unmapped memory");

    /* MAP_POPULATE faults everything in. */
    p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
             -1, 0);
    CHECK(p != MAP_FAILED, "mmap 4 pages with MAP_POPULATE");
    if (p == MAP_FAILED)
        return;
    memset(v, 9, sizeof v);
    CHECK_RET(raw_syscall3(SYS_mincore, p, 4 * PAGE, v), 0, "mincore of the populated pages");
    CHECK(v[0] == 1 && v[1] == 1 && v[2] == 1 && v[3] == 1, "MAP_POPULATE pages are resident");
    CHECK(all_equal(p, 4 * PAGE, 0), "MAP_POPULATE pages are zero");
    CHECK(munmap(p, 4 * PAGE) == 0, "munmap the populated pages");
}

int main(void)
{
    /* The first printf allocates stdio's buffer before test_brk moves the break. */
    printf("memory\n");
    test_brk();
    test_big_mmap();
    test_fixed_and_remap();
    test_mremap();
    test_madvise();
    test_mincore_msync();
    return finish();
}
