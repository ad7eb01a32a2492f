/*
 * The vDSO's functions, found by hand from AT_SYSINFO_EHDR (a tiny ELF lookup through DT_HASH
 * with symbol versions, as musl does it), called next to the system calls they replace.
 *
 * Everywhere (Linux and ktls): __vdso_clock_gettime@LINUX_2.6 resolves and reads a time that
 * lies between two clock_gettime system calls; __vdso_getcpu@LINUX_2.6 gives a CPU.
 *
 * On ktls (AT_KTLS_FEATURE_SIZE is not 0; those lines start with "ok ktls:", which the harness
 * leaves out of its comparison with the native run): the KTLS_1 getters resolve and equal the
 * system calls without a KTLS registration, with a live area (and read it: a value written into
 * the area shows), in a thread that has no area and then registers one, after unregistering,
 * with FS base 0, and in a fork child. With ktls_level=1 the credentials are not in the area
 * and come from the system calls.
 *
 * glibc's own rseq registration must be off (GLIBC_TUNABLES=glibc.pthread.rseq=0) so that the
 * program can register its KTLS area.
 */
#include "rseq_util.h"

#include <elf.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#ifndef SYS_rseq
#define SYS_rseq 334
#endif

/* Each thread's KTLS area, in its static TLS block, zeroed by the libc. */
static __thread struct ktls_area area;

/* ---- A tiny vDSO symbol lookup ---- */

static uintptr_t vdso_base;
static const Elf64_Sym *vdso_syms;
static const char *vdso_strs;
static const Elf32_Word *vdso_hash;
static const Elf64_Half *vdso_versym;
static const Elf64_Verdef *vdso_verdef;

static int vdso_init(void)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
    if (!eh)
        return 0;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)((const char *)eh + eh->e_phoff);
    const Elf64_Dyn *dyn = NULL;
    int have_base = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_base) {
            vdso_base = (uintptr_t)eh + ph[i].p_offset - ph[i].p_vaddr;
            have_base = 1;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const Elf64_Dyn *)((const char *)eh + ph[i].p_offset);
        }
    }
    if (!dyn || !have_base)
        return 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        void *p = (void *)(vdso_base + dyn->d_un.d_ptr);
        switch (dyn->d_tag) {
        case DT_SYMTAB: vdso_syms = p; break;
        case DT_STRTAB: vdso_strs = p; break;
        case DT_HASH: vdso_hash = p; break;
        case DT_VERSYM: vdso_versym = p; break;
        case DT_VERDEF: vdso_verdef = p; break;
        }
    }
    return vdso_syms && vdso_strs && vdso_hash && vdso_versym && vdso_verdef;
}

/* Whether dynamic symbol i has version `version`. */
static int vdso_version_is(size_t i, const char *version)
{
    unsigned ndx = vdso_versym[i] & 0x7fff;
    const Elf64_Verdef *d = vdso_verdef;
    for (;;) {
        if (!(d->vd_flags & VER_FLG_BASE) && d->vd_ndx == ndx) {
            const Elf64_Verdaux *aux = (const Elf64_Verdaux *)((const char *)d + d->vd_aux);
            return strcmp(vdso_strs + aux->vda_name, version) == 0;
        }
        if (!d->vd_next)
            return 0;
        d = (const Elf64_Verdef *)((const char *)d + d->vd_next);
    }
}

/* The address of name@version in the vDSO, or NULL. */
static void *vdso_sym(const char *version, const char *name)
{
    size_t nsyms = vdso_hash[1]; /* nchain: the number of symbols */
    for (size_t i = 1; i < nsyms; i++) {
        const Elf64_Sym *s = &vdso_syms[i];
        int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
        if (s->st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_NOTYPE) ||
            (bind != STB_GLOBAL && bind != STB_WEAK))
            continue;
        if (strcmp(vdso_strs + s->st_name, name) == 0 && vdso_version_is(i, version))
            return (void *)(vdso_base + s->st_value);
    }
    return NULL;
}

/* ---- The functions ---- */

typedef int (*id_fn)(void);
typedef int (*area_id_fn)(const void *);

static const char *const names[6] = {"gettid", "getpid", "getuid", "geteuid", "getgid", "getegid"};
static const long sysnos[6] = {SYS_gettid, SYS_getpid, SYS_getuid, SYS_geteuid, SYS_getgid,
                               SYS_getegid};
static id_fn own[6];
static area_id_fn named[6];
static int (*vdso_clock_gettime)(clockid_t, struct timespec *);
static int (*vdso_getcpu)(unsigned *, unsigned *, void *);

static int resolve_ktls(void)
{
    char name[64];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "__vdso_%s", names[i]);
        own[i] = (id_fn)vdso_sym("KTLS_1", name);
        snprintf(name, sizeof name, "__vdso_ktls_%s", names[i]);
        named[i] = (area_id_fn)vdso_sym("KTLS_1", name);
        if (!own[i] || !named[i])
            return 0;
    }
    return 1;
}

/* Every getter, both forms (the explicit one with `a`), equals its system call. */
static int all_equal_syscalls(const void *a)
{
    for (int i = 0; i < 6; i++) {
        long want = raw_syscall0(sysnos[i]);
        if (own[i]() != want || named[i](a) != want) {
            printf("  %s: vdso %d / %d, system call %ld\n", names[i], own[i](), named[i](a),
                   want);
            return 0;
        }
    }
    return 1;
}

static long long ts_ns(struct timespec t)
{
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The vDSO's clock lies between two system calls of the same clock. */
static int clock_between_syscalls(clockid_t clk)
{
    for (int i = 0; i < 1000; i++) {
        struct timespec a, b, c;
        if (raw_syscall2(SYS_clock_gettime, clk, &a) != 0 || vdso_clock_gettime(clk, &b) != 0 ||
            raw_syscall2(SYS_clock_gettime, clk, &c) != 0)
            return 0;
        if (ts_ns(a) > ts_ns(b) || ts_ns(b) > ts_ns(c)) {
            printf("  clock %d: %lld, vdso %lld, %lld\n", (int)clk, ts_ns(a), ts_ns(b), ts_ns(c));
            return 0;
        }
    }
    return 1;
}

static long ktls_rseq(struct ktls_area *a, int flags)
{
    return raw_syscall4(SYS_rseq, a, sizeof *a, RSEQ_FLAG_KTLS | flags, RSEQ_SIG);
}

/* A thread created without CLONE_RSEQ_KTLS: no live area until it registers its own. */
static void *thread_main(void *arg)
{
    (void)arg;
    long tid = raw_syscall0(SYS_gettid);
    int ok = area.ktls_live == 0 && all_equal_syscalls(&area) && own[0]() == tid;
    CHECK(ok, "ktls: a thread without an area gets the system calls");
    CHECK(ktls_rseq(&area, 0) == 0, "ktls: the thread registers its own area");
    ok = area.ktls_live == 1 && area.tid == tid && own[0]() == tid && named[0](&area) == tid &&
         all_equal_syscalls(&area);
    CHECK(ok, "ktls: then its getters read its own area");
    return NULL;
}

/*
 * FS base 0: no TLS from here until it is restored, so no errno, no stack protector, only the
 * vDSO and raw system calls. The getters' loads through FS fault, and the kernel resumes them
 * at the system call (spec section 10, step 4).
 */
__attribute__((noinline, optimize("no-stack-protector"))) static int
getters_with_fs_base_zero(long *vdso_tid, long *sys_tid, long *vdso_uid)
{
    unsigned long fs;
    if (raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &fs) != 0)
        return 0;
    id_fn gettid = own[0], getuid = own[2];
    raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, 0);
    *vdso_tid = gettid();
    *sys_tid = raw_syscall0(SYS_gettid);
    *vdso_uid = getuid();
    raw_syscall2(SYS_arch_prctl, ARCH_SET_FS, fs);
    return 1;
}

static void ktls_checks(unsigned long fsz)
{
    CHECK(resolve_ktls(), "ktls: the KTLS_1 getters resolve");
    if (!own[0])
        return;
    unsigned filled = sizeof area < fsz ? sizeof area : fsz;

    CHECK(all_equal_syscalls(&area), "ktls: without a registration, the system calls");
    CHECK(ktls_rseq(&area, 0) == 0, "ktls: registered a KTLS area");
    CHECK(area.ktls_live == 1, "ktls: the area is live");
    CHECK(all_equal_syscalls(&area), "ktls: with a live area, equal to the system calls");

    /* The getters read the area: a value written into it shows (level 1 always has tid). */
    long tid = raw_syscall0(SYS_gettid), uid = raw_syscall0(SYS_getuid);
    area.tid = 4343;
    area.uid = 4242;
    CHECK(own[0]() == 4343 && named[0](&area) == 4343, "ktls: __vdso_gettid reads the area");
    if (filled >= offsetof(struct ktls_area, uid) + sizeof area.uid)
        CHECK(own[2]() == 4242 && named[2](&area) == 4242,
              "ktls: __vdso_getuid reads the area (level 2)");
    else
        CHECK(own[2]() == uid && named[2](&area) == uid,
              "ktls: __vdso_getuid makes the system call (level 1: uid is not filled)");
    /* A dead area is not read. A null, kernel or non-canonical one faults in the vDSO, and
     * the kernel's fixup for the vDSO's loads makes the system call: no signal. */
    area.ktls_live = 0;
    CHECK(own[0]() == tid && named[0](&area) == tid, "ktls: a dead area is not read");
    area.ktls_live = 1;
    CHECK(named[0](NULL) == tid && named[2](NULL) == uid, "ktls: a null area: the system calls");
    CHECK(named[0]((const void *)0xffff800000000000ul) == tid &&
              named[0]((const void *)0xffffffff80000000ul) == tid,
          "ktls: an area in the kernel half: the system call");
    CHECK(named[0]((const void *)0x8000000000000000ul) == tid,
          "ktls: a non-canonical area: the system call");
    area.tid = tid;
    area.uid = uid;

    /* getcpu: the area's cpu_id and node_id. */
    unsigned cpu = 99, node = 99;
    CHECK(vdso_getcpu(&cpu, &node, NULL) == 0 && cpu == area.cpu_id && node == area.node_id,
          "ktls: __vdso_getcpu gives the area's cpu_id and node_id");

    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, NULL) == 0)
        pthread_join(th, NULL);
    else
        CHECK(0, "ktls: pthread_create");

    {
        long vtid = 0, stid = 0, vuid = 0;
        int ran = getters_with_fs_base_zero(&vtid, &stid, &vuid);
        CHECK(ran && vtid == stid && vtid == tid && vuid == uid,
              "ktls: with FS base 0, the system calls");
    }

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        long pid = raw_syscall0(SYS_getpid);
        int ok = area.ktls_live == 1 && own[1]() == pid && own[0]() == pid &&
                 all_equal_syscalls(&area);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "ktls: a fork child's getters read its own area");

    CHECK(ktls_rseq(&area, RSEQ_FLAG_UNREGISTER) == 0 && area.ktls_live == 0,
          "ktls: unregistered");
    CHECK(all_equal_syscalls(&area), "ktls: after unregistering, the system calls");
}

int main(void)
{
    CHECK(vdso_init(), "the vDSO has a symbol table, DT_HASH and versions");
    if (!vdso_syms)
        return finish();
    vdso_clock_gettime = vdso_sym("LINUX_2.6", "__vdso_clock_gettime");
    vdso_getcpu = vdso_sym("LINUX_2.6", "__vdso_getcpu");
    CHECK(vdso_clock_gettime && vdso_getcpu, "__vdso_clock_gettime and __vdso_getcpu resolve");
    CHECK(vdso_sym("LINUX_2.6", "__vdso_no_such_function") == NULL &&
              vdso_sym("KTLS_0", "__vdso_clock_gettime") == NULL,
          "the lookup checks names and versions");
    if (!vdso_clock_gettime || !vdso_getcpu)
        return finish();
    CHECK(clock_between_syscalls(CLOCK_MONOTONIC),
          "vDSO CLOCK_MONOTONIC lies between two system calls");
    CHECK(clock_between_syscalls(CLOCK_REALTIME),
          "vDSO CLOCK_REALTIME lies between two system calls");
    unsigned cpu = 99999;
    CHECK(vdso_getcpu(&cpu, NULL, NULL) == 0 && cpu < 4096, "__vdso_getcpu gives a CPU");

    unsigned long fsz = getauxval(AT_KTLS_FEATURE_SIZE);
    if (fsz && getauxval(AT_KTLS_ALIGN))
        ktls_checks(fsz);
    else
        printf("note: no KTLS on this kernel (AT_KTLS_FEATURE_SIZE is 0)\n");
    return finish();
}
