/* The KTLS demo (issue 5): tid, uid and cpu read three ways (a raw %fs-relative load from the
 * thread's KTLS area, the vDSO, the system call) in the main thread and four threads, checked
 * equal, saying where each value came from.
 *
 * Build: libc-shim/ktls-cc -O2 -o demo libc-shim/examples/demo.c
 * Run:   cargo run --release -- run ./demo          (ktls)
 *        ./demo                                      (Linux: no KTLS, so the raw way is
 *                                                     unavailable and the readers fall back)
 * Exit status 0 when every available way agreed. */
#include "ktls.h"

#define NTHREADS 4

typedef unsigned int (*id_fn)(void);
typedef long (*getcpu_fn)(unsigned int *cpu, unsigned int *node, void *unused);

struct report {
	char text[2048];
	size_t len;
	int mismatches;
	int tid;
};

static void add(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (r->len < sizeof r->text)
		r->len += ktls_vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
	va_end(ap);
	if (r->len > sizeof r->text)
		r->len = sizeof r->text;
}

static const char *registration(int reg)
{
	switch (reg) {
	case KTLS_REG_KTLS_CLONE3:
		return "KTLS area registered by the kernel at clone3(CLONE_RSEQ_KTLS)";
	case KTLS_REG_KTLS_RSEQ:
		return "KTLS area registered with rseq(2) and RSEQ_FLAG_KTLS";
	case KTLS_REG_RSEQ:
		return "plain rseq area (no KTLS on this kernel)";
	default:
		return "no rseq registration";
	}
}

/* Why the raw KTLS load of a field ending at `end` is unavailable. */
static const char *raw_missing(size_t end)
{
	if (__ktls_size == 0)
		return "unavailable (no KTLS: __ktls_size = 0)";
	if (__ktls_size < end)
		return "unavailable (the kernel does not fill this field)";
	return "unavailable (this thread's area is not live)";
}

/* One quantity three ways. `raw_ok`/`raw` from the KTLS area, `vdso_ok`/`vdso` from the vDSO,
 * `sys` from the system call. Returns whether every available way agreed. */
static int line(struct report *r, const char *who, const char *what, const char *reader,
		int raw_ok, unsigned raw, size_t end, const char *vdso_name, int vdso_ok,
		unsigned vdso, unsigned sys)
{
	int equal = (!raw_ok || raw == sys) && (!vdso_ok || vdso == sys);
	add(r, "[%s] %s: ", who, what);
	if (raw_ok)
		add(r, "raw KTLS load %u", raw);
	else
		add(r, "raw KTLS load %s", raw_missing(end));
	if (vdso_ok)
		add(r, " | vDSO %s %u", vdso_name, vdso);
	else
		add(r, " | vDSO %s unavailable", vdso_name);
	/* ktls_gettid()/ktls_getuid(): raw load, else syscall; ktls_cpu(): raw load, else
	 * sched_getcpu(), which is the vDSO when there, else the syscall. */
	add(r, " | syscall %u -> %s; %s came from the %s\n", sys,
	    equal ? "equal" : "DIFFERENT", reader,
	    raw_ok ? "raw KTLS load" : (vdso_ok && what[0] == 'c') ? "vDSO" : "syscall");
	return equal;
}

static void *vdso(const char *name, const char *version)
{
	return ktls_vdso_sym(name, version);
}

static void report_ids(struct report *r, const char *who)
{
	uint32_t raw = 0;
	int raw_ok;
	id_fn f;

	add(r, "[%s] %s\n", who, registration(ktls_thread_registration()));

	/* tid */
	raw_ok = KTLS_TRY(tid, &raw);
	f = (id_fn)vdso("__vdso_gettid", "KTLS_1");
	unsigned tid = (unsigned)ktls_syscall0(KTLS_SYS_gettid);
	r->tid = (int)tid;
	if (!line(r, who, "tid", "ktls_gettid()", raw_ok, raw, KTLS_FIELD_END(tid), "__vdso_gettid", f != 0,
		  f ? f() : 0, tid) ||
	    (unsigned)ktls_gettid() != tid || (unsigned)gettid() != tid)
		r->mismatches++;

	/* uid */
#if KTLS_LEVEL_BUILT_WITH >= 2
	raw_ok = KTLS_TRY(uid, &raw);
	size_t uid_end = KTLS_FIELD_END(uid);
#else
	raw_ok = 0; /* a level-1 program does not know the uid field */
	size_t uid_end = KTLS_FEATURE_SIZE_LEVEL_2;
#endif
	f = (id_fn)vdso("__vdso_getuid", "KTLS_1");
	unsigned uid = (unsigned)ktls_syscall0(KTLS_SYS_getuid);
	if (!line(r, who, "uid", "ktls_getuid()", raw_ok, raw, uid_end, "__vdso_getuid", f != 0, f ? f() : 0,
		  uid) ||
	    ktls_getuid() != uid || getuid() != uid)
		r->mismatches++;

	/* cpu: the thread may migrate between the reads, so retry until they agree. */
	getcpu_fn g = (getcpu_fn)vdso("__vdso_getcpu", "LINUX_2.6");
	struct report tmp;
	int ok = 0;
	for (int attempt = 0; attempt < 100 && !ok; attempt++) {
		unsigned vcpu = 0, scpu = 0, node;
		tmp.len = 0;
		raw_ok = KTLS_TRY(cpu_id, &raw);
		int vdso_ok = g && g(&vcpu, &node, 0) == 0;
		ktls_syscall3(KTLS_SYS_getcpu, (long)&scpu, (long)&node, 0);
		ok = line(&tmp, who, "cpu", "ktls_cpu()", raw_ok, raw, KTLS_FIELD_END(cpu_id), "__vdso_getcpu",
			  vdso_ok, vcpu, scpu);
	}
	add(r, "%.*s", (int)tmp.len, tmp.text);
	if (!ok)
		r->mismatches++;
}

static struct report reports[NTHREADS];

static void *worker(void *arg)
{
	long i = (long)arg;
	char who[16];
	ktls_snprintf(who, sizeof who, "thread %ld", i + 1);
	report_ids(&reports[i], who);
	return &reports[i];
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	unsigned long fsz = getauxval(AT_KTLS_FEATURE_SIZE), align = getauxval(AT_KTLS_ALIGN);
	ktls_printf("ktls libc shim demo: built for KTLS level %d (library %u)\n",
		    KTLS_LEVEL_BUILT_WITH, ktls_level_built_with());
	if (fsz)
		ktls_printf("kernel: AT_KTLS_FEATURE_SIZE %lu, AT_KTLS_ALIGN %lu\n", fsz, align);
	else
		ktls_printf("kernel: no AT_KTLS_* keys in the auxiliary vector (no KTLS)\n");
	ktls_printf("__ktls_offset %ld, __ktls_size %u, __rseq_offset %ld, __rseq_size %u, vDSO %s\n",
		    (long)__ktls_offset, __ktls_size, (long)__rseq_offset, __rseq_size,
		    getauxval(AT_SYSINFO_EHDR) ? "present" : "absent");

	struct report main_report = {0};
	report_ids(&main_report, "main");
	ktls_printf("%s", main_report.text);
	int mismatches = main_report.mismatches;

	ktls_thread_t t[NTHREADS];
	for (long i = 0; i < NTHREADS; i++) {
		int e = ktls_thread_create(&t[i], worker, (void *)i);
		if (e) {
			ktls_printf("ktls_thread_create: error %d\n", e);
			return 1;
		}
	}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		ktls_thread_join(t[i], &ret);
		struct report *r = ret;
		ktls_printf("%s", r->text);
		mismatches += r->mismatches;
		if (r->tid == main_report.tid)
			mismatches++;
		for (int j = 0; j < i; j++)
			if (reports[j].tid == r->tid)
				mismatches++;
	}
	if (mismatches) {
		ktls_printf("MISMATCH: %d value(s) differed between the ways\n", mismatches);
		return 1;
	}
	ktls_printf("all equal: main thread and %d threads, each way that is available agrees\n",
		    NTHREADS);
	return 0;
}
