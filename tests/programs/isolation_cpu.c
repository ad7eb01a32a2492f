/*
 * Isolation of the CPU's privileged state: user code cannot run privileged instructions, raise
 * the kernel's interrupt vectors, reach ring 0 or I/O ports through rt_sigreturn, or make the
 * kernel write a signal frame into kernel memory (a user stack pointer, sigaltstack, handler or
 * restorer in the kernel half or non-canonical).
 *
 * Every attempt runs in a fork child whose death (or exit) the parent checks; a kernel that gets
 * it wrong either panics (the runner reports it) or lets the child reach a marker exit status.
 * Privileged instructions must fault with SIGSEGV (#GP) or SIGILL (#UD: which one depends on
 * the CPU, so both are accepted); "ok" lines do not name the signal, so the native and the ktls
 * stdout stay comparable.
 */
#include "ktls_test.h"
#include "child.h"

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define TASK_SIZE 0x7ffffffff000ul
/* What a child exits with when something that must not happen happened. */
#define EXIT_HANDLER_RAN 77
#define EXIT_REFUSED 50

static uint8_t *code_page;

static int killed_by(int st, int sig)
{
    return WIFSIGNALED(st) && WTERMSIG(st) == sig;
}

// ---------------------------------------------------------------------------------------------
// Privileged instructions, as machine code in an executable page.

struct insn {
    const char *name;
    const char *bytes; /* followed by a `ret` */
    int len;
};

#define INSN(name, ...)                                                                        \
    {name, (const char[]){__VA_ARGS__}, sizeof((const char[]){__VA_ARGS__})}

static const struct insn privileged[] = {
    INSN("hlt", 0xf4),
    INSN("cli", 0xfa),
    INSN("sti", 0xfb),
    INSN("in $0x80, %al", 0xe4, 0x80),
    /* The port QEMU's isa-debug-exit listens on: this would end the VM. */
    INSN("out %eax, (%dx) to port 0xf4", 0xba, 0xf4, 0x00, 0x00, 0x00, 0x31, 0xc0, 0xef),
    INSN("out %al, (%dx) to COM1", 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee),
    INSN("rdmsr IA32_GS_BASE", 0xb9, 0x01, 0x01, 0x00, 0xc0, 0x0f, 0x32),
    INSN("wrmsr IA32_LSTAR", 0xb9, 0x82, 0x00, 0x00, 0xc0, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x30),
    INSN("mov %cr3, %rax", 0x0f, 0x20, 0xd8),
    INSN("mov %rax, %cr3", 0x31, 0xc0, 0x0f, 0x22, 0xd8),
    INSN("mov %cr0, %rax", 0x0f, 0x20, 0xc0),
    INSN("mov %rax, %cr4", 0x31, 0xc0, 0x0f, 0x22, 0xe0),
    INSN("mov %rax, %dr7", 0x31, 0xc0, 0x0f, 0x23, 0xf8),
    INSN("lgdt (%rsp)", 0x0f, 0x01, 0x14, 0x24),
    INSN("lidt (%rsp)", 0x0f, 0x01, 0x1c, 0x24),
    INSN("ltr %ax", 0x31, 0xc0, 0x0f, 0x00, 0xd8),
    INSN("lldt %ax", 0x31, 0xc0, 0x0f, 0x00, 0xd0),
    INSN("invlpg (%rsp)", 0x0f, 0x01, 0x3c, 0x24),
    INSN("wbinvd", 0x0f, 0x09),
    INSN("invd", 0x0f, 0x08),
    INSN("clts", 0x0f, 0x06),
    INSN("swapgs", 0x0f, 0x01, 0xf8),
    INSN("sysretq", 0x48, 0x0f, 0x07),
    INSN("sysexitq", 0x48, 0x0f, 0x35),
    INSN("xsetbv", 0x31, 0xc9, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x01, 0xd1),
    INSN("mov 0x08 to %ds", 0x66, 0xb8, 0x08, 0x00, 0x8e, 0xd8),
    INSN("mov 0x10 to %ds", 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8),
    INSN("mov 0x10 to %ss", 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd0),
    INSN("mov 0x18 to %ss", 0x66, 0xb8, 0x18, 0x00, 0x8e, 0xd0),
};

/*
 * Last (a kernel that gets them wrong panics, which would hide the other checks): far returns
 * to ring 0 selectors, and instructions whose memory accesses the CPU makes with supervisor
 * rights although it runs ring 3 (descriptor-table reads; under QEMU's TCG also the frame pops
 * of iretq and lretq): a page fault they take has no U bit in its error code, yet it is user
 * space's fault, to be answered with a signal.
 */
static const struct insn supervisor_accesses[] = {
    /* iretq to selector 0x08 / 0x10 (ktls's and Linux's kernel code) with RPL 0. */
    INSN("iretq to CS 0x08", 0x48, 0x89, 0xe0, 0x6a, 0x10, 0x50, 0x9c, 0x6a, 0x08, 0x50, 0x48,
         0xcf),
    INSN("iretq to CS 0x10", 0x48, 0x89, 0xe0, 0x6a, 0x18, 0x50, 0x9c, 0x6a, 0x10, 0x50, 0x48,
         0xcf),
    INSN("lretq to CS 0x08", 0x48, 0x8d, 0x05, 0x00, 0x00, 0x00, 0x00, 0x6a, 0x08, 0x50, 0x48,
         0xcb),
    INSN("lretq with the stack at 0x10", 0x48, 0xc7, 0xc4, 0x10, 0x00, 0x00, 0x00, 0x48, 0xcb),
    INSN("lretq with the stack on a user page", 0x48, 0x8d, 0x25, 0xf9, 0x07, 0x00, 0x00, 0x48,
         0xcb),
    INSN("iretq with the stack on a user page", 0x48, 0x8d, 0x25, 0xf9, 0x07, 0x00, 0x00, 0x48,
         0xcf),
    INSN("mov an LDT selector to %ss", 0x66, 0xb8, 0x8e, 0x13, 0x8e, 0xd0),
    INSN("mov an LDT selector to %ds", 0x66, 0xb8, 0x8e, 0x13, 0x8e, 0xd8),
};

static int run_code(long len)
{
    (void)len;
    ((void (*)(void))code_page)();
    return 0; /* executed and returned: not allowed */
}

static int load_code(const char *bytes, int len)
{
    if (mprotect(code_page, 4096, PROT_READ | PROT_WRITE) != 0)
        return -1;
    memcpy(code_page, bytes, len);
    code_page[len] = 0xc3; /* ret */
    return mprotect(code_page, 4096, PROT_READ | PROT_EXEC);
}

static void fault_each(const struct insn *list, size_t n)
{
    char what[128];
    for (size_t i = 0; i < n; i++) {
        const struct insn *in = &list[i];
        if (load_code(in->bytes, in->len) != 0) {
            check(0, in->name, "cannot load the code page: errno %d", errno);
            continue;
        }
        int st = in_child(run_code, 0);
        snprintf(what, sizeof what, "%s in ring 3 faults (SIGSEGV or SIGILL)", in->name);
        check(killed_by(st, SIGSEGV) || killed_by(st, SIGILL), what, "child %s",
              status_text(st));
    }
}

static void privileged_instructions(void)
{
    fault_each(privileged, sizeof privileged / sizeof privileged[0]);
    /* Controls: the method sees both kinds of fault. */
    load_code((const char[]){0x0f, 0x0b}, 2);
    int st = in_child(run_code, 0);
    check(killed_by(st, SIGILL), "control: ud2 gives SIGILL", "child %s", status_text(st));
    load_code((const char[]){0xcc}, 1);
    st = in_child(run_code, 0);
    check(killed_by(st, SIGTRAP), "control: int3 gives SIGTRAP", "child %s", status_text(st));
    load_code((const char[]){0x90}, 1);
    st = in_child(run_code, 0);
    check(st == 0, "control: nop returns", "child %s", status_text(st));
}

/* `int $N` for every vector whose gate is not open to user space (all but 3, 4 and 0x80). */
static void interrupt_vectors(void)
{
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        if (v == 3 || v == 4 || v == 0x80)
            continue;
        load_code((const char[]){(char)0xcd, (char)v}, 2);
        int st = in_child(run_code, 0);
        if (!killed_by(st, SIGSEGV)) {
            bad++;
            printf("FAIL int $%#x in ring 3: SIGSEGV: child %s\n", v, status_text(st));
            ktls_failures++;
        }
    }
    check(bad == 0, "int $N for the 253 vectors closed to ring 3: SIGSEGV", "%d wrong", bad);
    /* int $0x80 (Linux's 32-bit syscall gate): whatever it does, the kernel survives it. */
    load_code((const char[]){(char)0xb8, (char)0xff, (char)0xff, 0x00, 0x00, (char)0xcd,
                             (char)0x80},
              7);
    int st = in_child(run_code, 0);
    check(WIFEXITED(st) || WIFSIGNALED(st), "int $0x80 with a bad number: the kernel survives",
          "child %s", status_text(st));
}

// ---------------------------------------------------------------------------------------------
// rt_sigreturn with privileged or impossible state in the frame.

enum frame_edit {
    RIP_NONCANONICAL_LOW,
    RIP_NONCANONICAL_HIGH,
    RIP_KERNEL,
    CS_KERNEL_08,
    CS_KERNEL_10,
    CS_NULL,
    SS_KERNEL,
    SS_NULL_STRICT,
    RFLAGS_PRIVILEGED,
    FPSTATE_KERNEL,
    FPSTATE_BAD_MXCSR,
    FPSTATE_BAD_XSTATE_BV,
    N_EDITS,
};

static const char *const edit_names[] = {
    [RIP_NONCANONICAL_LOW] = "RIP 0x800000000000 (non-canonical)",
    [RIP_NONCANONICAL_HIGH] = "RIP 0x8000000000000000 (non-canonical)",
    [RIP_KERNEL] = "RIP in the kernel text",
    [CS_KERNEL_08] = "CS 0x08 (ring 0)",
    [CS_KERNEL_10] = "CS 0x10 (ring 0)",
    [CS_NULL] = "CS 0",
    [SS_KERNEL] = "SS 0x10",
    [SS_NULL_STRICT] = "SS 0 with UC_STRICT_RESTORE_SS",
    [RFLAGS_PRIVILEGED] = "RFLAGS with IOPL 3, IF 0, NT, VM, VIF, VIP",
    [FPSTATE_KERNEL] = "fpstate pointer into the kernel half",
    [FPSTATE_BAD_MXCSR] = "MXCSR with reserved bits",
    [FPSTATE_BAD_XSTATE_BV] = "xstate_bv with every bit",
};

static volatile enum frame_edit edit;

static void edit_frame(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
    /* REG_CSGSFS: cs in bits 0-15, gs 16-31, fs 32-47, ss 48-63 (Linux's __pad0). */
    switch (edit) {
    case RIP_NONCANONICAL_LOW:
        g[REG_RIP] = 0x800000000000;
        break;
    case RIP_NONCANONICAL_HIGH:
        g[REG_RIP] = (greg_t)0x8000000000000000ul;
        break;
    case RIP_KERNEL:
        g[REG_RIP] = (greg_t)0xffffffff80100000ul;
        break;
    case CS_KERNEL_08:
        g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffl) | 0x08;
        break;
    case CS_KERNEL_10:
        g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffl) | 0x10;
        break;
    case CS_NULL:
        g[REG_CSGSFS] = g[REG_CSGSFS] & ~0xffffl;
        break;
    case SS_KERNEL:
        g[REG_CSGSFS] = (g[REG_CSGSFS] & 0x0000ffffffffffffl) | (0x10l << 48);
        break;
    case SS_NULL_STRICT:
        g[REG_CSGSFS] = g[REG_CSGSFS] & 0x0000ffffffffffffl;
        uc->uc_flags |= 0x4; /* UC_STRICT_RESTORE_SS */
        break;
    case RFLAGS_PRIVILEGED:
        g[REG_EFL] = (g[REG_EFL] & ~0x200l) | 0x3000 | 0x4000 | 0x20000 | 0x80000 | 0x100000;
        break;
    case FPSTATE_KERNEL:
        uc->uc_mcontext.fpregs = (void *)0xffff800000001000ul;
        break;
    case FPSTATE_BAD_MXCSR:
        if (fp)
            *(uint32_t *)(fp + 24) = 0xffffffffu;
        break;
    case FPSTATE_BAD_XSTATE_BV:
        /* Only in an XSAVE frame (FP_XSTATE_MAGIC1 in the software-reserved bytes). */
        if (fp && *(uint32_t *)(fp + 464) == 0x46505853u)
            *(uint64_t *)(fp + 512) = ~0ull;
        break;
    default:
        break;
    }
}

/* After the handler returns (if the kernel returned at all): the privilege state. */
static int sigreturn_child(long e)
{
    edit = (enum frame_edit)e;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = edit_frame;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    uint64_t flags;
    uint16_t cs, ss;
    __asm__ volatile("pushfq; popq %0; mov %%cs, %1; mov %%ss, %2"
                     : "=r"(flags), "=r"(cs), "=r"(ss));
    if ((cs & 3) != 3 || (ss & 3) != 3)
        return 60; /* not in ring 3 */
    if (flags & 0x3000)
        return 61; /* IOPL raised */
    if (!(flags & 0x200))
        return 62; /* interrupts disabled */
    if (flags & 0x24000)
        return 63; /* NT or VM */
    /* With IOPL 0, cli still faults. */
    __asm__ volatile("cli");
    return 64;
}

static void sigreturn_frames(void)
{
    char what[160];
    for (int e = 0; e < N_EDITS; e++) {
        int st = in_child(sigreturn_child, e);
        int ok;
        const char *want;
        switch (e) {
        case RIP_NONCANONICAL_LOW:
        case RIP_NONCANONICAL_HIGH:
        case RIP_KERNEL:
        case CS_KERNEL_08:
        case CS_KERNEL_10:
        case CS_NULL:
            ok = killed_by(st, SIGSEGV);
            want = "SIGSEGV";
            break;
        case FPSTATE_KERNEL:
            ok = killed_by(st, SIGSEGV);
            want = "SIGSEGV (the kernel cannot read the state)";
            break;
        default:
            /* Sanitised (Linux) or refused: either way ring 3 with IOPL 0 and IF set, and the
             * final cli faults; exit statuses 60-64 mean privileged state got through. */
            ok = killed_by(st, SIGSEGV);
            want = "ring 3, IOPL 0, IF 1 afterwards (cli faults) or SIGSEGV at sigreturn";
            break;
        }
        snprintf(what, sizeof what, "rt_sigreturn with %s: %s", edit_names[e], want);
        check(ok, what, "child %s", status_text(st));
    }
}

// ---------------------------------------------------------------------------------------------
// Signal frames the kernel must not write: bad stack pointers, sigaltstack, handler, restorer.

/* A handler that uses no stack: it can only run if the kernel built a frame somewhere. */
__asm__(".text\n"
        ".globl stackless_handler\n"
        "stackless_handler:\n"
        "  mov $60, %eax\n"
        "  mov $77, %edi\n"
        "  syscall\n"
        "  ud2\n");
void stackless_handler(int);

__asm__(".text\n"
        ".globl sigreturn_restorer\n"
        "sigreturn_restorer:\n"
        "  mov $15, %eax\n"
        "  syscall\n"
        "  ud2\n");
void sigreturn_restorer(void);

struct kernel_sigaction {
    uintptr_t handler;
    unsigned long flags;
    uintptr_t restorer;
    uint64_t mask;
};
#define SA_RESTORER_ 0x04000000

static long set_action(int sig, uintptr_t handler, unsigned long flags, uintptr_t restorer)
{
    struct kernel_sigaction ka = {handler, flags | SA_RESTORER_, restorer, 0};
    return raw_syscall4(SYS_rt_sigaction, sig, &ka, 0, 8);
}

static const uintptr_t bad_stacks[] = {
    0xffff800000010000ul, /* ktls's direct map */
    0xffffffff80200000ul, /* kernel image */
    0xfffffffffffff000ul, /* the top page */
    0x8000000000000000ul, /* non-canonical */
    0x800000000080ul,     /* just above user space */
    0x7ffffffff100ul,     /* the frame would straddle TASK_SIZE */
    0x100ul,              /* the frame would wrap below 0 into the kernel half */
};
#define NSTACKS (sizeof bad_stacks / sizeof bad_stacks[0])

/* kill(self, SIGUSR1) from a raw syscall with RSP = the bad address. */
static int bad_rsp_child(long i)
{
    set_action(SIGUSR1, (uintptr_t)stackless_handler, 0, (uintptr_t)sigreturn_restorer);
    long pid = raw_syscall0(SYS_getpid);
    long ret;
    __asm__ volatile("mov %%rsp, %%r12\n"
                     "mov %[bad], %%rsp\n"
                     "syscall\n"
                     "mov %%r12, %%rsp\n"
                     : "=a"(ret)
                     : "a"((long)SYS_kill), "D"(pid), "S"((long)SIGUSR1), [bad] "r"(bad_stacks[i])
                     : "rcx", "r11", "r12", "memory");
    return 70; /* the signal was not delivered at the syscall's return */
}

static int altstack_child(long i)
{
    stack_t ss = {.ss_sp = (void *)bad_stacks[i], .ss_size = 65536, .ss_flags = 0};
    if (raw_syscall2(SYS_sigaltstack, &ss, 0) != 0)
        return EXIT_REFUSED;
    set_action(SIGUSR1, (uintptr_t)stackless_handler, SA_ONSTACK, (uintptr_t)sigreturn_restorer);
    raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), SIGUSR1);
    return 70;
}

static int handler_child(long i)
{
    if (set_action(SIGUSR1, bad_stacks[i], 0, (uintptr_t)sigreturn_restorer) != 0)
        return EXIT_REFUSED;
    raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), SIGUSR1);
    return 70;
}

static void returning_handler(int sig)
{
    (void)sig;
}

static int restorer_child(long i)
{
    if (set_action(SIGUSR1, (uintptr_t)returning_handler, 0, bad_stacks[i]) != 0)
        return EXIT_REFUSED;
    raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), SIGUSR1);
    return 70;
}

static void signal_frames(void)
{
    char what[160];
    for (size_t i = 0; i < NSTACKS; i++) {
        unsigned long a = bad_stacks[i];
        int st = in_child(bad_rsp_child, i);
        snprintf(what, sizeof what, "a signal with RSP %#lx: SIGSEGV, no frame", a);
        check(killed_by(st, SIGSEGV), what, "child %s (77: the handler ran)", status_text(st));

        st = in_child(altstack_child, i);
        snprintf(what, sizeof what,
                 "a signal on a sigaltstack at %#lx: SIGSEGV (or sigaltstack refused)", a);
        check(killed_by(st, SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_REFUSED), what,
              "child %s (77: the handler ran)", status_text(st));

        st = in_child(handler_child, i);
        snprintf(what, sizeof what, "a handler at %#lx: SIGSEGV (or sigaction refused)", a);
        check(killed_by(st, SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_REFUSED), what,
              "child %s", status_text(st));

        st = in_child(restorer_child, i);
        snprintf(what, sizeof what, "a restorer at %#lx: SIGSEGV (or sigaction refused)", a);
        check(killed_by(st, SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_REFUSED), what,
              "child %s", status_text(st));
    }
}

/*
 * A syscall instruction in the last two bytes below 0x800000000000 would make SYSRET return to
 * a non-canonical RIP (a #GP in ring 0 on Intel CPUs). Linux keeps that page out of reach; if a
 * kernel lets it be mapped, the syscall there must still end in a user-mode SIGSEGV.
 */
static int top_page_syscall_child(long unused)
{
    (void)unused;
    uintptr_t page = 0x7ffffffff000ul;
    long m = raw_syscall6(SYS_mmap, page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != (long)page)
        return EXIT_REFUSED;
    uint8_t *p = (uint8_t *)page;
    p[4094] = 0x0f;
    p[4095] = 0x05;
    __asm__ volatile("mov $39, %%eax\n"
                     "jmp *%0\n" ::"r"(page + 4094)
                     : "rax", "memory");
    return 71;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    code_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(code_page != MAP_FAILED, "map a code page");
    if (code_page == MAP_FAILED)
        return finish();

    privileged_instructions();
    interrupt_vectors();
    sigreturn_frames();
    signal_frames();

    int st = in_child(top_page_syscall_child, 0);
    check((WIFEXITED(st) && WEXITSTATUS(st) == EXIT_REFUSED) || killed_by(st, SIGSEGV),
          "a syscall at 0x7ffffffffffe: the page cannot be mapped (or SIGSEGV)", "child %s",
          status_text(st));

    fault_each(supervisor_accesses, sizeof supervisor_accesses / sizeof supervisor_accesses[0]);

    /* Still alive. */
    load_code((const char[]){(char)0x90}, 1);
    st = in_child(run_code, 0);
    CHECK(WIFEXITED(st) || WIFSIGNALED(st), "the kernel still forks afterwards");
    return finish();
}
