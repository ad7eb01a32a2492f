//! The vDSO, from programs' point of view: `tests/programs/vdso_clock.c` (the libc's clock
//! functions run in the vDSO: on ktls, its strace has no clock system call) and
//! `tests/programs/vdso_ktls.c` (the vDSO's functions found by hand and compared with the
//! system calls: the KTLS getters with and without a KTLS area, at both levels). Each is built
//! with every toolchain and runs natively first.

use ktls_runner::{run_captured, Input, Outcome, RunConfig};
use ktls_tests::{
    all_ok, c_case, c_case_including, identical, native_only, per_toolchain, Case, Toolchain,
    GUEST_TIMEOUT,
};
use std::path::PathBuf;

/// The system call of an strace record (`name(args) = result`).
fn syscall_name(record: &str) -> &str {
    record.split('(').next().unwrap_or("").trim()
}

/// Runs `case` on ktls with `--strace`.
fn run_traced(case: &Case) -> Outcome {
    let mut cfg = RunConfig::default();
    for (k, v) in &case.env {
        cfg.set_env(k, v);
    }
    cfg.kernel_args = case.kernel_args.clone();
    cfg.stdin = Input::Null;
    cfg.cwd = Some(PathBuf::from("/"));
    cfg.strace = true;
    cfg.timeout = Some(GUEST_TIMEOUT);
    run_captured(&cfg, &case.program, &case.args)
        .unwrap_or_else(|e| panic!("{}: the runner failed: {e}", case.name))
}

// The libc's clock functions make no system call on ktls: glibc and musl find the vDSO through
// AT_SYSINFO_EHDR and use it.
per_toolchain!(vdso_clock, |tc| {
    let Some(case) = c_case("vdso_clock", tc) else {
        return;
    };
    let case = case.self_checking();
    let native = case.run_native();
    if native_only() {
        return;
    }
    let out = run_traced(&case);
    let report = |what: &str| {
        format!(
            "{}: {what}\n--- stdout ---\n{}--- strace ---\n{}\n--- kernel log ---\n{}",
            case.name,
            String::from_utf8_lossy(&out.stdout),
            out.strace.join("\n"),
            out.kernel_log
        )
    };
    assert_eq!(out.status, 0, "{}", report("exit status"));
    if let Err(e) = all_ok(&out.stdout) {
        panic!("{}", report(&e));
    }
    if let Err(e) = identical(&native.stdout, &out.stdout) {
        panic!(
            "{}",
            report(&format!("stdout differs from the native run: {e}"))
        );
    }
    let clock_calls: Vec<&String> = out
        .strace
        .iter()
        .filter(|r| {
            matches!(
                syscall_name(r),
                "clock_gettime" | "gettimeofday" | "time" | "clock_getres"
            )
        })
        .collect();
    assert!(
        clock_calls.is_empty(),
        "{}",
        report(&format!(
            "{} clock system calls, want none (the vDSO serves them): {:?}",
            clock_calls.len(),
            clock_calls.iter().take(5).collect::<Vec<_>>()
        ))
    );
    assert!(
        !out.strace.is_empty(),
        "{}",
        report("no strace records at all: was --strace honoured?")
    );
});

/// Lines only a kernel with KTLS prints (`ok ktls: ...`) or that say what the kernel has
/// (`note: ...`); the rest must be the same natively and on ktls.
fn without_ktls_lines(native: &[u8], guest: &[u8]) -> Result<(), String> {
    let keep = |out: &[u8]| {
        String::from_utf8_lossy(out)
            .lines()
            .filter(|l| !l.starts_with("ok ktls:") && !l.starts_with("note:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    identical(keep(native).as_bytes(), keep(guest).as_bytes())
}

/// The `ok ktls:` lines every ktls run must have, besides the level-dependent one.
const KTLS_LINES: &[&str] = &[
    "ok ktls: the KTLS_1 getters resolve",
    "ok ktls: without a registration, the system calls",
    "ok ktls: registered a KTLS area",
    "ok ktls: with a live area, equal to the system calls",
    "ok ktls: __vdso_gettid reads the area",
    "ok ktls: a dead area is not read",
    "ok ktls: a null area: the system calls",
    "ok ktls: an area in the kernel half: the system call",
    "ok ktls: a non-canonical area: the system call",
    "ok ktls: with FS base 0, the system calls",
    "ok ktls: __vdso_getcpu gives the area's cpu_id and node_id",
    "ok ktls: a thread without an area gets the system calls",
    "ok ktls: the thread registers its own area",
    "ok ktls: then its getters read its own area",
    "ok ktls: a fork child's getters read its own area",
    "ok ktls: unregistered",
    "ok ktls: after unregistering, the system calls",
];

/// vdso_ktls with `kernel_args`, expecting the KTLS lines and `level_line`.
fn vdso_ktls(tc: Toolchain, kernel_args: &[&str], level_line: &str) {
    let Some(mut case) = c_case_including("vdso_ktls", tc, &["rseq_util.h"]) else {
        return;
    };
    // The program registers its own area: glibc must not register rseq first.
    case.env
        .push(("GLIBC_TUNABLES".into(), "glibc.pthread.rseq=0".into()));
    for a in kernel_args {
        case = case.kernel_arg(a);
    }
    let case = case.self_checking().compare(without_ktls_lines);
    let native = case.run_native();
    if native_only() {
        return;
    }
    let out = case.run_guest(&native).unwrap_or_else(|r| panic!("{r}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = KTLS_LINES
        .iter()
        .copied()
        .chain([level_line])
        .filter(|want| !stdout.lines().any(|l| l == *want))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: missing lines {missing:?}\n--- stdout ---\n{stdout}",
        case.name
    );
}

per_toolchain!(vdso_ktls_level2, |tc| vdso_ktls(
    tc,
    &[],
    "ok ktls: __vdso_getuid reads the area (level 2)"
));

per_toolchain!(vdso_ktls_level1, |tc| vdso_ktls(
    tc,
    &["ktls_level=1"],
    "ok ktls: __vdso_getuid makes the system call (level 1: uid is not filled)"
));

// Without FSGSBASE: the getters read through FS all the same; only the kernel's FS switch differs.
per_toolchain!(vdso_ktls_nofsgsbase, |tc| vdso_ktls(
    tc,
    &["nofsgsbase"],
    "ok ktls: __vdso_getuid reads the area (level 2)"
));
