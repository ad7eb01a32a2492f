//! Threads, processes and signals: `tests/programs/threads_*.c`, `signals_*.c` and
//! `job_control.c` built with every toolchain (the libcs' own pthreads, glibc with its rseq
//! registration on; the longer `job_control` with two), run natively and on ktls with one and
//! several CPUs, plus a busybox shell pipeline.

use ktls_tests::{
    add_same_path, busybox, c_case_including, files_fixture, per_toolchain, run_all_smp,
    two_toolchains, Case, Toolchain,
};

fn case(program: &str, tc: Toolchain) -> Option<Case> {
    Some(c_case_including(program, tc, &[])?.self_checking())
}

/// Runs `program`'s case on ktls with each CPU count in `smps`.
fn run_smps(program: &str, tc: Toolchain, smps: &[u32]) {
    if let Some(c) = case(program, tc) {
        run_all_smp(&[c], smps);
    }
}

// 8 threads x 100000 mutex-protected increments, a condvar start gate, a pipe channel.
per_toolchain!(threads_pthread, |tc| run_smps(
    "threads_pthread",
    tc,
    &[1, 2, 4]
));

// 1000 threads created and joined, 200 fork + exit + wait cycles.
per_toolchain!(threads_many, |tc| run_smps("threads_many", tc, &[1, 4]));

// Alternate stack, SA_RESTART, SIGSEGV + siglongjmp, tgkill between threads, registers.
per_toolchain!(signals_basic, |tc| run_smps("signals_basic", tc, &[1, 2]));

// Job control: SIGSTOP/SIGTSTP stop a child (all its threads, one in a pipe read too), SIGCONT
// continues it, SIGKILL ends it stopped; wait4/waitid and SIGCHLD report stops and continues.
two_toolchains!(job_control, |tc| run_smps("job_control", tc, &[1, 2]));

/// `busybox sh -c 'echo a | cat; ls DIR | wc -l; exit 3'`: a pipeline of two builtins-or-applets,
/// a pipeline into wc, and the exit status; DIR is the files fixture's `dir` (4 entries).
#[test]
fn busybox_sh_pipeline() {
    let Some(exe) = busybox() else {
        return;
    };
    let dir = files_fixture().join("dir");
    let script = format!("echo a | cat; ls {} | wc -l; exit 3", dir.display());
    Case::new("busybox sh pipeline", exe)
        .arg("sh")
        .arg("-c")
        .arg(script)
        .guest_add(add_same_path(&dir))
        .status(3)
        .stdout_is("a\n4\n")
        .run();
}

// A thread pins itself to each CPU in turn; sched_getcpu, getcpu and rseq agree every time.
per_toolchain!(smp_affinity, |tc| run_smps("smp_affinity", tc, &[1, 2, 4]));

// munmap/mprotect/mremap seen at once by threads on other CPUs (TLB shootdowns).
per_toolchain!(smp_tlb, |tc| run_smps("smp_tlb", tc, &[2, 4]));
