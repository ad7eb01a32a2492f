//! KTLS conformance programs, `tests/programs/ktls_*.c` (spec/ktls.md), each built with every
//! toolchain. On ktls they check the real thing; natively (Linux has no KTLS) they check the
//! fallback a KTLS libc relies on (the flags are refused with EINVAL, areas never become live).
//! Each program's first line says which it checked, "mode ktls" or "mode fallback"; the two
//! stdouts differ by design, so instead of comparing them the harness requires "mode fallback"
//! natively and "mode ktls" on ktls, and both runs to pass their own checks.
//!
//! The programs register their areas themselves, so glibc's own rseq registration (which would
//! be the thread's registration already) is turned off with `GLIBC_TUNABLES=glibc.pthread.rseq=0`.

use ktls_tests::{c_case_including, per_toolchain, run_all, run_all_smp, Case, Toolchain};

const HEADERS: &[&str] = &["rseq_util.h"];

/// Native stdout says "mode fallback", ktls stdout says "mode ktls".
fn fallback_natively_ktls_on_ktls(native: &[u8], guest: &[u8]) -> Result<(), String> {
    let has = |out: &[u8], line: &str| String::from_utf8_lossy(out).lines().any(|l| l == line);
    if !has(native, "mode fallback") {
        return Err("the native run did not check the fallback (no line \"mode fallback\")".into());
    }
    if !has(guest, "mode ktls") {
        return Err("the ktls run did not find KTLS (no line \"mode ktls\")".into());
    }
    Ok(())
}

/// A self-checking KTLS case for `program` built with `tc`, with glibc's rseq off.
fn case(program: &str, tc: Toolchain) -> Option<Case> {
    let mut case = c_case_including(program, tc, HEADERS)?;
    case.env
        .push(("GLIBC_TUNABLES".into(), "glibc.pthread.rseq=0".into()));
    Some(case.self_checking().compare(fallback_natively_ktls_on_ktls))
}

// Every registration and clone3 error of spec/ktls.md sections 6 and 7, in order.
per_toolchain!(ktls_register, |tc| {
    if let Some(c) = case("ktls_register", tc) {
        c.run();
    }
});

// 16 clone3(CLONE_RSEQ_KTLS) threads live from their first instruction, a self-registering
// thread, fork and vfork children: on one CPU and on four.
per_toolchain!(ktls_threads, |tc| {
    if let Some(c) = case("ktls_threads", tc) {
        run_all_smp(&[c], &[1, 4]);
    }
});

// setresgid/setresuid in one thread shows in every thread's area.
per_toolchain!(ktls_creds, |tc| {
    if let Some(c) = case("ktls_creds", tc) {
        run_all_smp(&[c], &[2]);
    }
});

// Programs for field sets 1 (76 bytes) and 2 (100 bytes) on kernel levels 2 and 1.
per_toolchain!(ktls_compat, |tc| {
    let Some(c) = case("ktls_compat", tc) else {
        return;
    };
    let run = |set: &str, level: u32, size: &str| {
        let mut c = c.clone().arg(set).arg(size);
        c.name = format!("{} set {set} on level {level}", c.name);
        if level == 1 {
            c = c.kernel_arg("ktls_level=1");
        }
        c
    };
    run_all(&[
        run("1", 2, "100"),
        run("2", 2, "100"),
        run("1", 1, "76"),
        run("2", 1, "76"),
    ]);
});
