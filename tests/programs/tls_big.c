/*
 * A 1 MiB local-exec TLS block: the loader/libc must set up the static TLS image (.tdata copied,
 * .tbss zeroed) below the thread pointer, and %fs must point at it.
 *
 * Checks the initial values, that the variables sit in the TLS block just below the thread
 * pointer (the %fs:0 self pointer of x86_64's TLS variant II), writes a pattern over the whole
 * 1 MiB and reads it back through both the %fs-relative accesses and plain pointers, and prints
 * a checksum.
 */
#include "ktls_test.h"

#include <stdint.h>

#define BIG (1 << 20)

#define LE __attribute__((tls_model("local-exec")))
static __thread unsigned char big[BIG] LE __attribute__((aligned(64)));
static __thread uint64_t init64 LE = 0x0123456789abcdefULL;
static __thread char initstr[16] LE = "tls initialized";
static __thread uint32_t zero32 LE;

static uintptr_t thread_pointer(void)
{
    uintptr_t tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}

/* FNV-1a over the TLS array, read through %fs-relative local-exec accesses. */
static __attribute__((noinline)) uint64_t checksum(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < BIG; i++) {
        h ^= big[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int main(void)
{
    uintptr_t tp = thread_pointer();
    CHECK(tp == (uintptr_t)__builtin_thread_pointer(), "%fs:0 holds the thread pointer");
    CHECK(tp % 64 == 0, "the thread pointer is aligned for the TLS block");

    uintptr_t lo = (uintptr_t)&big[0], hi = (uintptr_t)&big[BIG];
    CHECK(hi <= tp && tp - lo <= BIG + 4096, "the 1 MiB TLS array sits just below the thread pointer");
    CHECK(lo % 64 == 0, "the TLS array is 64-byte aligned");
    uintptr_t v = (uintptr_t)&init64;
    CHECK(v < tp && tp - v <= BIG + 4096, ".tdata variable sits below the thread pointer");

    /* The local-exec offset really is %fs-relative: read init64 through %fs by hand. */
    intptr_t off = (intptr_t)(v - tp);
    uint64_t through_fs;
    __asm__ volatile("mov %%fs:(%1), %0" : "=r"(through_fs) : "r"(off));
    CHECK(through_fs == 0x0123456789abcdefULL, "reading .tdata through %fs by offset");

    CHECK(init64 == 0x0123456789abcdefULL, ".tdata u64 initialized");
    CHECK(strcmp(initstr, "tls initialized") == 0, ".tdata string initialized");
    CHECK(zero32 == 0, ".tbss u32 zeroed");
    size_t nonzero = 0;
    for (size_t i = 0; i < BIG; i++)
        nonzero += big[i] != 0;
    CHECK(nonzero == 0, ".tbss 1 MiB array zeroed");

    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 12));
    size_t bad = 0;
    volatile unsigned char *plain = (volatile unsigned char *)lo;
    for (size_t i = 0; i < BIG; i++)
        bad += plain[i] != (unsigned char)(i * 7 + (i >> 12));
    CHECK(bad == 0, "pattern written via %fs reads back via plain pointers");
    plain[BIG - 1] = 0x5a;
    CHECK(big[BIG - 1] == 0x5a, "plain pointer write reads back via %fs");
    plain[BIG - 1] = (unsigned char)((BIG - 1) * 7 + ((BIG - 1) >> 12));

    CHECK(init64 == 0x0123456789abcdefULL && zero32 == 0, "neighbours untouched");
    CHECK(thread_pointer() == tp, "thread pointer unchanged");
    printf("checksum %016llx\n", (unsigned long long)checksum());
    return finish();
}
