/*
 * A critical section the kernel cannot abort cleanly kills the thread with SIGSEGV: a signature
 * mismatch at abort_ip - 4, and invalid descriptors (version 1, a deprecated flag, abort_ip
 * inside the section, start_ip + post_commit_offset overflowing, start_ip or the descriptor
 * pointer in the kernel half, an unmapped descriptor). Each case runs in a child process that
 * spins inside the section while the parent sends it SIGUSR1 until it dies; a valid descriptor
 * (the control case) makes the child take the abort handler and exit 42.
 * With glibc, run with GLIBC_TUNABLES=glibc.pthread.rseq=0.
 */
#include "rseq_util.h"

static struct rseq_area rs;
static struct rseq_cs_desc desc;
static uint64_t per_ms;
static volatile uint32_t in_cs;

static void on_usr1(int sig)
{
    (void)sig;
}

enum variant {
    GOOD,
    BAD_SIGNATURE,
    VERSION_1,
    DEPRECATED_FLAG,
    ABORT_INSIDE,
    END_OVERFLOW,
    START_IN_KERNEL,
    DESC_IN_KERNEL,
    DESC_UNMAPPED,
};

static const char *const names[] = {
    [GOOD] = "a valid descriptor: the child takes the abort handler",
    [BAD_SIGNATURE] = "registered signature differs from the one before abort_ip: SIGSEGV",
    [VERSION_1] = "descriptor version 1: SIGSEGV",
    [DEPRECATED_FLAG] = "descriptor flag RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT: SIGSEGV",
    [ABORT_INSIDE] = "abort_ip inside the section: SIGSEGV",
    [END_OVERFLOW] = "start_ip + post_commit_offset overflows: SIGSEGV",
    [START_IN_KERNEL] = "start_ip in the kernel half: SIGSEGV",
    [DESC_IN_KERNEL] = "rseq_cs pointing into the kernel half: SIGSEGV",
    [DESC_UNMAPPED] = "rseq_cs pointing to an unmapped page: SIGSEGV",
};

static int child(enum variant v)
{
    uint32_t sig = v == BAD_SIGNATURE ? 0x12345678u : RSEQ_SIG;
    if (sys_rseq(&rs, 32, 0, sig) != 0)
        return 3;
    desc = rseq_spin_cs;
    const struct rseq_cs_desc *d = &desc;
    switch (v) {
    case GOOD:
    case BAD_SIGNATURE:
        break;
    case VERSION_1:
        desc.version = 1;
        break;
    case DEPRECATED_FLAG:
        desc.flags = 1;
        break;
    case ABORT_INSIDE:
        desc.abort_ip = desc.start_ip + 8;
        break;
    case END_OVERFLOW:
        desc.post_commit_offset = ~0ull - desc.start_ip + 16; /* the end wraps to 15 */
        break;
    case START_IN_KERNEL:
        /* covers no user address at all; Linux checks start_ip before the ip */
        desc.start_ip = KERNEL_ADDR;
        desc.post_commit_offset = 16;
        break;
    case DESC_IN_KERNEL:
        d = (const struct rseq_cs_desc *)KERNEL_ADDR;
        break;
    case DESC_UNMAPPED: {
        char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(p, 4096);
        d = (const struct rseq_cs_desc *)p;
        break;
    }
    }
    int r = rseq_spin(&rs, d, &in_cs, rdtsc() + per_ms * 3000);
    return r == 1 ? 42 : 0;
}

static void run_case(enum variant v)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(v));
    int st = 0;
    pid_t w = 0;
    long t0 = mono_ns();
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && mono_ns() - t0 < 5000000000L) {
        kill(pid, SIGUSR1);
        sleep_ms(2);
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    if (v == GOOD)
        check(WIFEXITED(st) && WEXITSTATUS(st) == 42, names[v], "child status %#x", st);
    else
        check(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, names[v], "child status %#x", st);
}

int main(void)
{
    per_ms = tsc_per_ms();
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    for (enum variant v = GOOD; v <= DESC_UNMAPPED; v++)
        run_case(v);
    return finish();
}
