/*
 * futex on memory that is not there, with Linux's answers: a shared (non-private) futex needs
 * its page mapped and accessible (get_futex_key: EFAULT otherwise, for every command and for
 * either address of a requeue); a private futex is named by its address alone, so a wake or
 * a requeue on an unmapped user page finds no waiter and returns 0, while a command that
 * reads the word (WAIT, CMP_REQUEUE) faults; an address outside user space is EFAULT always.
 */
#include "ktls_test.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE 128

static int word;

static void one(const char *name, long a, int user)
{
    char what[160];
    struct timespec ts = {0, 1000};
    long w = (long)&word;
    for (int priv = 0; priv < 2; priv++) {
        int pf = priv ? FUTEX_PRIVATE : 0;
        /* What a command that does not read the word returns. */
        long nofault = priv && user ? 0 : -EFAULT;
        const char *kind = priv ? "private" : "shared";
#define EXPECT(call, want, desc)                                                               \
    do {                                                                                       \
        snprintf(what, sizeof what, "%s %s at %s", kind, desc, name);                          \
        CHECK_RET(call, want, what);                                                           \
    } while (0)
        EXPECT(raw_syscall3(SYS_futex, a, FUTEX_WAKE | pf, 1), nofault, "FUTEX_WAKE");
        EXPECT(raw_syscall6(SYS_futex, a, FUTEX_WAKE_BITSET | pf, 1, 0, 0, -1), nofault,
               "FUTEX_WAKE_BITSET");
        EXPECT(raw_syscall4(SYS_futex, a, FUTEX_WAIT | pf, 0, &ts), -EFAULT, "FUTEX_WAIT");
        EXPECT(raw_syscall6(SYS_futex, a, FUTEX_WAIT_BITSET | pf, 0, 0, 0, -1), -EFAULT,
               "FUTEX_WAIT_BITSET");
        EXPECT(raw_syscall6(SYS_futex, a, FUTEX_REQUEUE | pf, 1, 1, w, 0), nofault,
               "FUTEX_REQUEUE from");
        EXPECT(raw_syscall6(SYS_futex, a, FUTEX_CMP_REQUEUE | pf, 1, 1, w, 0), -EFAULT,
               "FUTEX_CMP_REQUEUE from");
        EXPECT(raw_syscall6(SYS_futex, w, FUTEX_REQUEUE | pf, 1, 1, a, 0), nofault,
               "FUTEX_REQUEUE to");
        EXPECT(raw_syscall6(SYS_futex, w, FUTEX_CMP_REQUEUE | pf, 1, 1, a, 0), nofault,
               "FUTEX_CMP_REQUEUE to");
#undef EXPECT
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    one("the last page below TASK_SIZE", 0x7ffffffff000l, 1);
    one("the lowest mappable page", 0x10000l, 1);
    one("the kernel half", (long)0xffff800000000000ul, 0);
    void *n = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(n != MAP_FAILED, "map a PROT_NONE page");
    if (n != MAP_FAILED) {
        CHECK_RET(raw_syscall3(SYS_futex, n, FUTEX_WAKE, 1), -EFAULT,
                  "shared FUTEX_WAKE on a PROT_NONE page");
        CHECK_RET(raw_syscall3(SYS_futex, n, FUTEX_WAKE | FUTEX_PRIVATE, 1), 0,
                  "private FUTEX_WAKE on a PROT_NONE page");
    }
    /* A mapped word: the shared and the private wake find no waiter. */
    CHECK_RET(raw_syscall3(SYS_futex, &word, FUTEX_WAKE, 1), 0, "shared FUTEX_WAKE on .bss");
    CHECK_RET(raw_syscall3(SYS_futex, &word, FUTEX_WAKE | FUTEX_PRIVATE, 1), 0,
              "private FUTEX_WAKE on .bss");
    return finish();
}
