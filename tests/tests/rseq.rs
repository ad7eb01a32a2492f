//! rseq (Linux's restartable sequences) conformance programs, `tests/programs/rseq_*.c`, each
//! built with every toolchain and run natively (this host's Linux, whose rseq may be older: the
//! programs adapt to AT_RSEQ_FEATURE_SIZE and AT_RSEQ_ALIGN) and on ktls, with identical output.
//!
//! The programs register rseq themselves, so glibc's own registration is turned off with
//! `GLIBC_TUNABLES=glibc.pthread.rseq=0` (musl registers none).

use ktls_tests::{c_case_including, per_toolchain, run_all_smp, Case, Toolchain};

/// The headers the rseq programs include besides `ktls_test.h`.
pub const HEADERS: &[&str] = &["rseq_util.h"];

/// A self-checking case for `program` built with `tc`, with glibc's rseq registration off.
fn case(program: &str, tc: Toolchain) -> Option<Case> {
    let mut case = c_case_including(program, tc, HEADERS)?;
    case.env
        .push(("GLIBC_TUNABLES".into(), "glibc.pthread.rseq=0".into()));
    Some(case.self_checking())
}

// Registration errors in Linux's order, the fields at registration and unregistration, mm_cid.
per_toolchain!(rseq_register, |tc| {
    if let Some(c) = case("rseq_register", tc) {
        c.run();
    }
});

// Aborts on preemption, signal delivery and migration: needs two CPUs.
per_toolchain!(rseq_abort, |tc| {
    if let Some(c) = case("rseq_abort", tc) {
        run_all_smp(&[c], &[2]);
    }
});

// SIGSEGV for a signature mismatch and for invalid descriptors.
per_toolchain!(rseq_segv, |tc| {
    if let Some(c) = case("rseq_segv", tc) {
        c.run();
    }
});

// Inheritance: clone(CLONE_VM), vfork, fork, execve.
per_toolchain!(rseq_fork, |tc| {
    if let Some(c) = case("rseq_fork", tc) {
        c.run();
    }
});

// A per-CPU counter kept with critical sections by 8 threads: exact on one CPU and on four.
per_toolchain!(rseq_percpu, |tc| {
    if let Some(c) = case("rseq_percpu", tc) {
        run_all_smp(&[c], &[1, 4]);
    }
});
