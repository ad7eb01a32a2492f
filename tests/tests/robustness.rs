//! Robustness: nothing user space does can crash the kernel or reach what is not its own.
//!
//! * `fuzz_syscalls`: the syscall fuzzer (`tests/programs/fuzz_syscalls.c`), a few seconds
//!   natively, then [`FUZZ_SECONDS`] on ktls with `--smp 2`: the kernel must neither panic nor
//!   hang (the runner's status is the program's, never 124 or 125), the fuzzer must end clean,
//!   and the free memory the fuzzer measures before and after must agree (see
//!   [`FUZZ_MEMFREE_TOLERANCE_KIB`]). `KTLS_FUZZ_SEED` and `KTLS_FUZZ_SECONDS` override the
//!   seed (default: a new one every run, printed in every report) and the ktls duration.
//! * `fuzz_regressions`: every kernel crash or hang the fuzzer found, minimized to a few calls.
//! * `wake_races`: signals sent while a thread is on its way to sleep (pause, nanosleep, a pipe
//!   read, a futex wait) wake it, SIGKILL included; two CPUs.
//! * `isolation_*`: kernel memory, the vDSO, other processes, rseq/KTLS areas, privileged CPU
//!   state; natively and on ktls, every toolchain.
//! * `exhaust_*`: fork and thread bombs under RLIMIT_NPROC, an mmap bomb under RLIMIT_AS,
//!   RLIMIT_NOFILE, a pipe flood, and (ktls only) the out-of-memory killer; the free memory
//!   must come back after each (see [`MEMFREE_TOLERANCE_KIB`]).
//! * `hang_report`: when a run times out, the kernel's hang report (which the runner asks for
//!   with an NMI) names every blocked thread's syscall and wait site (ktls only).
//!
//! Kernel panics themselves cannot be forced from user space (that is the point); the runner's
//! handling of a panic report is covered by `runner/src/status.rs`
//! (`panic_beats_exit_and_timeout_beats_all`) and every ktls run here fails on status 125.
//!
//! `KTLS_TESTS_NATIVE_ONLY=1` runs only the native halves (the programs themselves).

use ktls_runner::{run_captured, Input, Outcome, RunConfig};
use ktls_tests::{
    c_case, c_case_including, native_only, note, per_toolchain, report_head, report_tail,
    two_toolchains, Case, Toolchain, GUEST_TIMEOUT,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How long the fuzzer runs on ktls (seconds).
const FUZZ_SECONDS: u64 = 30;
/// How long it runs natively: enough to show the program itself is sound.
const FUZZ_NATIVE_SECONDS: u64 = 3;
const FUZZ_THREADS: u32 = 4;

/// How much less free memory (KiB) the fuzzer may see after its run than before.
///
/// The supervisor that measures is the same process before and after and only forks, waits
/// and reads /proc/meminfo; everything the fuzz process made (its memory, its files in /tmp,
/// its children and their children) is gone by the second reading. What may legitimately
/// stay is a few page-table or stack pages of the supervisor and whatever the kernel grows
/// once and keeps (tables sized by the highest pid or fd seen). 256 KiB is 64 pages: room for
/// that, while a leak of one page per chaos child (hundreds in 30 s) or per few thousand
/// calls (about a million in 30 s) is far above it.
const FUZZ_MEMFREE_TOLERANCE_KIB: i64 = 256;

/// How much less free memory (KiB) the exhaust programs may see after each bomb than at their
/// start: they warm up (stdio, a fork, a pipe, /proc/meminfo) before the first reading, so only
/// a few pages of their own stack or page tables may differ; 128 KiB (32 pages) is well below
/// a one-page-per-process leak of a 64-process fork bomb (256 KiB).
const MEMFREE_TOLERANCE_KIB: i64 = 128;

/// How much the kernel heap (ktls's KernelHeapUsed) may grow over a fuzz run (KiB). The heap is
/// not part of MemFree; the kernel keeps a few things there for good (the names of
/// unimplemented syscalls it has logged once, sets sized by the highest id seen), so the bound
/// is generous, but a leak of a small object per call or per process is far above it.
const FUZZ_HEAP_TOLERANCE_KIB: i64 = 1024;

// ---------------------------------------------------------------------------------------------
// Output helpers.

/// `info <key> <label> <value>` lines: (label, value).
fn info_values(stdout: &[u8], key: &str) -> Vec<(String, i64)> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next() != Some("info") || w.next() != Some(key) {
                return None;
            }
            let label = w.next()?.to_string();
            let value = w.next()?.parse().ok()?;
            Some((label, value))
        })
        .collect()
}

/// The lines both runs must agree on: all but `info` and `skip` lines and checks tagged
/// `[opt]` (those depend on the host: a vDSO, a free top page, a second CPU).
fn comparable(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with("info ") && !l.starts_with("skip ") && !l.contains("[opt]"))
        .map(str::to_owned)
        .collect()
}

fn same_checks(native: &[u8], guest: &[u8]) -> Result<(), String> {
    let (n, g) = (comparable(native), comparable(guest));
    if n == g {
        return Ok(());
    }
    let i = n.iter().zip(&g).take_while(|(a, b)| a == b).count();
    Err(format!(
        "first difference at comparable line {}: native {:?}, ktls {:?} ({} vs {} lines)",
        i + 1,
        n.get(i),
        g.get(i),
        n.len(),
        g.len()
    ))
}

/// Every `info memfree <label>` after the first is at least the first minus `tolerance`.
fn memory_comes_back(stdout: &[u8], tolerance: i64) -> Result<(), String> {
    let values = info_values(stdout, "memfree");
    let Some((first_label, start)) = values.first().cloned() else {
        return Err("no `info memfree` line".into());
    };
    if start <= 0 {
        return Err(format!(
            "MemFree {first_label} is {start}: no /proc/meminfo?"
        ));
    }
    let short: Vec<String> = values[1..]
        .iter()
        .filter(|(_, v)| *v < start - tolerance)
        .map(|(l, v)| format!("{l}: {v} KiB ({} KiB less)", start - v))
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "free memory did not come back: MemFree {first_label} {start} KiB, tolerance \
             {tolerance} KiB; {}",
            short.join("; ")
        ))
    }
}

/// The ktls comparison for the exhaust programs: the same checks, and the memory back.
fn exhaust_compare(native: &[u8], guest: &[u8]) -> Result<(), String> {
    let errors: Vec<String> = [
        same_checks(native, guest),
        memory_comes_back(guest, MEMFREE_TOLERANCE_KIB),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; and "))
    }
}

// ---------------------------------------------------------------------------------------------
// Running on ktls with our own settings (CPUs, timeout) and checks that see the whole outcome.

struct Guest<'a> {
    case: &'a Case,
    smp: u32,
    timeout: Duration,
}

impl Guest<'_> {
    fn config(&self) -> RunConfig {
        let mut cfg = RunConfig::default();
        for (k, v) in &self.case.env {
            cfg.set_env(k, v);
        }
        cfg.adds = self.case.adds.clone();
        cfg.kernel_args = self.case.kernel_args.clone();
        cfg.stdin = Input::Null;
        cfg.cwd = Some(PathBuf::from("/"));
        cfg.strace = std::env::var_os("KTLS_TESTS_STRACE").is_some_and(|v| v != "0");
        cfg.smp = self.smp;
        cfg.timeout = Some(self.timeout);
        cfg
    }

    /// Runs the case on ktls; `Err` is a full report. `extra` adds problems from the outcome.
    fn run(
        &self,
        native_stdout: Option<&[u8]>,
        extra: impl Fn(&Outcome) -> Vec<String>,
    ) -> Result<Outcome, String> {
        let case = self.case;
        let out = run_captured(&self.config(), &case.program, &case.args)
            .map_err(|e| format!("{}: the runner failed: {e}", case.name))?;
        let mut problems = Vec::new();
        match out.status {
            125 => problems.push("the kernel panicked (runner status 125)".to_string()),
            124 => problems.push(format!(
                "the kernel hung: no exit within {} s (runner status 124)",
                self.timeout.as_secs()
            )),
            s if s != case.status => {
                problems.push(format!("exit status {s}, expected {}", case.status))
            }
            _ => {}
        }
        for c in &case.checks {
            if let Err(e) = c.as_ref()(&out.stdout) {
                problems.push(e);
            }
        }
        if let Some(native) = native_stdout {
            if let Err(e) = (case.compare)(native, &out.stdout) {
                problems.push(format!("stdout differs from the native run: {e}"));
            }
        }
        problems.extend(extra(&out));
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(report(&case.name, self.smp, &out, &problems))
        }
    }
}

fn report(name: &str, smp: u32, out: &Outcome, problems: &[String]) -> String {
    let mut r = report_head(&format!("{name} on ktls (--smp {smp})"), out, problems);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let skip = lines.len().saturating_sub(120);
    let _ = writeln!(
        r,
        "--- ktls stdout ({} lines{}) ---",
        lines.len(),
        if skip > 0 { ", last 120" } else { "" }
    );
    for l in &lines[skip..] {
        let _ = writeln!(r, "{l}");
    }
    let _ = write!(
        r,
        "--- ktls stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report_tail(&mut r, out, &summarize_log(&out.kernel_log, 60));
    r
}

/// The tail of the kernel log, `keep` lines, except that a line repeated more than 100 times
/// (a kernel looping in its panic path) is shown once with its count, after the lines that led
/// up to its first occurrence.
fn summarize_log(log: &str, keep: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut counts = std::collections::HashMap::new();
    for l in &lines {
        *counts.entry(*l).or_insert(0usize) += 1;
    }
    let flood = lines
        .iter()
        .position(|l| !l.trim().is_empty() && counts[l] > 100);
    let mut r = String::new();
    let end = flood.unwrap_or(lines.len());
    let start = end.saturating_sub(keep);
    let _ = writeln!(
        r,
        "--- kernel log ({} lines{}) ---",
        lines.len(),
        if start > 0 || flood.is_some() {
            format!(", lines {}..{}", start + 1, end)
        } else {
            String::new()
        }
    );
    for l in &lines[start..end] {
        let _ = writeln!(r, "{l}");
    }
    if let Some(i) = flood {
        let _ = writeln!(
            r,
            "[from line {}: {:?} repeated {} times, with the lines between them]",
            i + 1,
            lines[i],
            counts[lines[i]]
        );
    }
    r
}

/// Native run (must pass), then the ktls run with `smp` CPUs and `extra` checks.
fn run_case(case: &Case, smp: u32, extra: impl Fn(&Outcome) -> Vec<String>) {
    run_cases(std::slice::from_ref(case), smp, extra);
}

/// [`run_case`] for several cases, each in its own boot; fails at the end with every report,
/// so that a case that panics or hangs the kernel does not hide the others.
fn run_cases(cases: &[Case], smp: u32, extra: impl Fn(&Outcome) -> Vec<String>) {
    let mut reports = Vec::new();
    for case in cases {
        let native = case.run_native();
        if native_only() {
            continue;
        }
        let guest = Guest {
            case,
            smp,
            timeout: GUEST_TIMEOUT,
        };
        if let Err(r) = guest.run(Some(&native.stdout), &extra) {
            reports.push(r);
        }
    }
    match reports.len() {
        0 => {}
        1 => panic!("{}", reports[0]),
        n => panic!(
            "{n} of {} case(s) failed on ktls:\n\n{}",
            cases.len(),
            reports.join("\n")
        ),
    }
}

fn no_extra(_: &Outcome) -> Vec<String> {
    Vec::new()
}

/// A case whose program's rseq registrations must not meet glibc's own.
fn without_glibc_rseq(mut case: Case) -> Case {
    case.env
        .push(("GLIBC_TUNABLES".into(), "glibc.pthread.rseq=0".into()));
    case
}

// ---------------------------------------------------------------------------------------------
// The fuzzer.

fn fuzz_seed() -> u64 {
    if let Some(s) = std::env::var("KTLS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
        .unwrap_or(1)
        % 1_000_000_007
}

fn fuzz_seconds() -> u64 {
    std::env::var("KTLS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FUZZ_SECONDS)
}

/// The fuzzer's own verdict: no FAIL line, and a clean summary.
fn fuzz_clean(stdout: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(stdout);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    if !fails.is_empty() {
        return Err(format!("the fuzzer reports:\n    {}", fails.join("\n    ")));
    }
    if !text.lines().any(|l| l.starts_with("fuzz summary: clean")) {
        return Err("no `fuzz summary: clean` line (did it stop early?)".into());
    }
    Ok(())
}

fn fuzz_memory(out: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let free = info_values(&out.stdout, "memfree");
    let get = |v: &[(String, i64)], l: &str| v.iter().find(|(k, _)| k == l).map(|(_, v)| *v);
    match (get(&free, "before"), get(&free, "after")) {
        (Some(b), Some(a)) if b > 0 => {
            if a < b - FUZZ_MEMFREE_TOLERANCE_KIB {
                problems.push(format!(
                    "memory leaked: MemFree {b} KiB before the fuzz run, {a} KiB after \
                     ({} KiB less; tolerance {FUZZ_MEMFREE_TOLERANCE_KIB} KiB)",
                    b - a
                ));
            }
        }
        _ => {
            if out.status != 124 && out.status != 125 {
                problems.push("no `info memfree before/after` lines".into());
            }
        }
    }
    let heap = info_values(&out.stdout, "heapused");
    if let (Some(b), Some(a)) = (get(&heap, "before"), get(&heap, "after")) {
        if a > b + FUZZ_HEAP_TOLERANCE_KIB {
            problems.push(format!(
                "the kernel heap grew by {} KiB over the run (KernelHeapUsed {b} -> {a} KiB; \
                 tolerance {FUZZ_HEAP_TOLERANCE_KIB} KiB)",
                a - b
            ));
        }
    }
    problems
}

fn fuzz_case(tc: Toolchain, seconds: u64, seed: u64) -> Option<Case> {
    let case = without_glibc_rseq(c_case_including("fuzz_syscalls", tc, &["meminfo.h"])?)
        .arg(seconds.to_string())
        .arg(seed.to_string())
        .arg(FUZZ_THREADS.to_string())
        .status(0)
        .check(fuzz_clean);
    Some(case)
}

/// Natively (every toolchain that is here) for a few seconds, then on ktls for
/// [`FUZZ_SECONDS`] with two CPUs.
#[test]
fn fuzz_syscalls() {
    let seed = fuzz_seed();
    note(&format!(
        "fuzz_syscalls: seed {seed} (KTLS_FUZZ_SEED={seed} repeats this run)"
    ));
    for tc in Toolchain::ALL {
        if let Some(case) = fuzz_case(tc, FUZZ_NATIVE_SECONDS, seed) {
            case.run_native();
        }
    }
    if native_only() {
        return;
    }
    let Some(case) = fuzz_case(Toolchain::MuslStatic, fuzz_seconds(), seed) else {
        return;
    };
    let guest = Guest {
        case: &case,
        smp: 2,
        timeout: Duration::from_secs(fuzz_seconds() + 60),
    };
    if let Err(r) = guest.run(None, fuzz_memory) {
        panic!("fuzz_syscalls with seed {seed} (KTLS_FUZZ_SEED={seed} repeats it):\n{r}");
    }
}

/// The cases of `fuzz_regressions.c`, each run in its own boot.
const REGRESSIONS: [&str; 6] = [
    "lengths",
    "settid",
    "pidfd",
    "group_kill",
    "vfork_thread",
    "vfork_kill",
];

// Crashes and hangs the fuzzer found, each minimized to a few calls, each case in its own boot
// (one that panics or hangs the kernel would hide the rest).
two_toolchains!(fuzz_regressions, |tc| {
    let Some(case) = c_case("fuzz_regressions", tc) else {
        return;
    };
    let cases: Vec<Case> = REGRESSIONS
        .iter()
        .map(|r| {
            let mut c = case.clone().arg(*r).self_checking().compare(same_checks);
            c.name = format!("{} {r}", c.name);
            c
        })
        .collect();
    run_cases(&cases, 1, no_extra);
});

// Signals that land between a sleeper's last look and its sleep: the fuzzer's rare hang (a
// SIGKILL lost that way left a process that never died). Two CPUs, or the kernel never lets
// sender and sleeper overlap.
two_toolchains!(wake_races, |tc| {
    let Some(case) = c_case("wake_races", tc) else {
        return;
    };
    run_case(&case.self_checking().compare(same_checks), 2, no_extra);
});

// ---------------------------------------------------------------------------------------------
// Isolation.

per_toolchain!(isolation_memory, |tc| {
    let Some(case) = c_case("isolation_memory", tc) else {
        return;
    };
    run_case(&case.self_checking().compare(same_checks), 1, no_extra);
});

per_toolchain!(isolation_cpu, |tc| {
    let Some(case) = c_case_including("isolation_cpu", tc, &["child.h"]) else {
        return;
    };
    run_case(&case.self_checking().compare(same_checks), 1, no_extra);
});

/// A kernel that answers process_vm_readv/writev with ENOSYS must say so in its log (it logs
/// every unimplemented syscall once, by name or number: 310 and 311).
fn enosys_logged(out: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let text = String::from_utf8_lossy(&out.stdout);
    for (call, nr) in [("process_vm_readv", 310), ("process_vm_writev", 311)] {
        if text.lines().any(|l| l == format!("info {call}: ENOSYS")) {
            let logged = out.kernel_log.lines().any(|l| {
                l.contains("not implemented")
                    && (l.contains(call) || l.contains(&format!("({nr})")))
            });
            if logged {
                note(&format!(
                    "isolation_process: ktls answers {call} with ENOSYS (logged)"
                ));
            } else {
                problems.push(format!(
                    "{call} returned ENOSYS but the kernel log does not name it"
                ));
            }
        }
    }
    problems
}

per_toolchain!(isolation_process, |tc| {
    let Some(case) = c_case("isolation_process", tc) else {
        return;
    };
    run_case(&case.self_checking().compare(same_checks), 1, enosys_logged);
});

// Two CPUs, so that an rseq area made read-only can be caught at a cpu_id store.
per_toolchain!(isolation_rseq, |tc| {
    let Some(case) = c_case_including("isolation_rseq", tc, &["child.h"]) else {
        return;
    };
    run_case(
        &without_glibc_rseq(case)
            .self_checking()
            .compare(same_checks),
        2,
        no_extra,
    );
});

// ---------------------------------------------------------------------------------------------
// Exhaustion.

two_toolchains!(exhaust_procs, |tc| {
    let Some(case) = c_case_including("exhaust_procs", tc, &["meminfo.h"]) else {
        return;
    };
    run_case(&case.self_checking().compare(exhaust_compare), 1, no_extra);
});

two_toolchains!(exhaust_memory, |tc| {
    let Some(case) = c_case_including("exhaust_memory", tc, &["meminfo.h"]) else {
        return;
    };
    run_case(&case.self_checking().compare(exhaust_compare), 1, no_extra);
});

two_toolchains!(exhaust_files, |tc| {
    let Some(case) = c_case_including("exhaust_files", tc, &["meminfo.h"]) else {
        return;
    };
    run_case(&case.self_checking().compare(exhaust_compare), 1, no_extra);
});

/// The out-of-memory killer, on ktls only: natively the child would touch twice the host's
/// memory and Linux's OOM killer could pick any process of the host, not just the test's.
#[test]
fn exhaust_memory_oom_ktls_only() {
    if native_only() {
        note("skipping exhaust_memory oom: ktls only (natively it would exhaust the host)");
        return;
    }
    let Some(case) = c_case_including("exhaust_memory", Toolchain::MuslStatic, &["meminfo.h"])
    else {
        return;
    };
    let case = case.arg("oom").self_checking();
    let guest = Guest {
        case: &case,
        smp: 1,
        timeout: GUEST_TIMEOUT,
    };
    if let Err(r) = guest.run(None, |out| {
        memory_comes_back(&out.stdout, MEMFREE_TOLERANCE_KIB)
            .err()
            .into_iter()
            .collect()
    }) {
        panic!("{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// The hang report.

/// How long `hang_forever` runs before the runner asks for the hang report.
const HANG_TIMEOUT: Duration = Duration::from_secs(3);

/// A program whose two threads block forever (a futex wait; a read of an empty pipe) times out
/// (status 124), and the hang report names each thread's syscall and the kernel code it waits
/// in. ktls only: natively the program would just hang.
#[test]
fn hang_report() {
    if native_only() {
        note("skipping hang_report: ktls only (natively the program hangs)");
        return;
    }
    let Some(case) = c_case("hang_forever", Toolchain::MuslStatic) else {
        return;
    };
    let smp = 2;
    let guest = Guest {
        case: &case,
        smp,
        timeout: HANG_TIMEOUT,
    };
    let out = run_captured(&guest.config(), &case.program, &case.args)
        .unwrap_or_else(|e| panic!("{}: the runner failed: {e}", case.name));
    let problems = hang_report_problems(&out);
    if !problems.is_empty() {
        panic!("{}", report(&case.name, smp, &out, &problems));
    }
}

/// What is wrong with `hang_forever`'s outcome (nothing: empty).
fn hang_report_problems(out: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if out.status != 124 || !out.timed_out {
        problems.push(format!("status {}, expected 124 (timeout)", out.status));
    }
    let Some(report) = &out.hang_report else {
        problems.push("no hang report".into());
        return problems;
    };
    if report.contains("(the report ends here") {
        problems.push("the hang report has no `@ktls end`".into());
    }
    for cpu in ["cpu 0: ", "cpu 1: "] {
        if !report.lines().any(|l| l.starts_with(cpu)) {
            problems.push(format!("no `{cpu}` part in the hang report"));
        }
    }
    let threads = [
        (
            "the futex waiter",
            " syscall=202(futex) ",
            " wait=kernel/src/futex.rs:",
        ),
        (
            "the pipe reader",
            " syscall=0(read) ",
            " wait=kernel/src/syscall/fs.rs:",
        ),
    ];
    for (who, syscall, site) in threads {
        let listed = report.lines().any(|l| {
            l.contains(" comm=\"hang_forever")
                && l.contains(" state=Blocked ")
                && l.contains(syscall)
                && l.contains(site)
        });
        if !listed {
            problems.push(format!(
                "the thread table has no line for {who} with `{}` and `{}`",
                syscall.trim(),
                site.trim()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod helpers {
    use super::*;

    #[test]
    fn comparable_lines() {
        let n = b"ok a\ninfo memfree start 5\nok [opt] vdso\nskip x\nall checks passed\n";
        let g = b"ok a\ninfo memfree start 7\nskip [opt] vdso\nall checks passed\n";
        assert!(same_checks(n, g).is_ok());
        assert!(same_checks(b"ok a\n", b"ok b\n").is_err());
    }

    #[test]
    fn memory_lines() {
        let ok = b"info memfree start 1000\ninfo memfree after-x 900\n";
        assert!(memory_comes_back(ok, 128).is_ok());
        let leak = b"info memfree start 1000\ninfo memfree after-x 800\n";
        assert!(memory_comes_back(leak, 128).is_err());
        assert!(memory_comes_back(b"", 128).is_err());
        assert_eq!(
            info_values(b"info heapused before 12\nnoise\n", "heapused"),
            vec![("before".to_string(), 12)]
        );
    }

    #[test]
    fn log_summary() {
        let mut log = String::from("boot\nstarting\n");
        for _ in 0..200 {
            log.push_str("\n(nested fault)\n@ktls end\n");
        }
        let s = summarize_log(&log, 60);
        assert!(s.contains("boot\nstarting\n"), "{s}");
        assert!(s.contains("repeated 200 times"), "{s}");
        assert!(s.lines().count() < 10, "{s}");
        assert!(summarize_log("a\nb\n", 60).contains("a\nb\n"));
    }

    #[test]
    fn fuzz_verdict() {
        assert!(fuzz_clean(b"seed 1\nfuzz summary: clean (seed 1)\n").is_ok());
        assert!(fuzz_clean(b"seed 1\nFAIL x\nfuzz summary: clean\n").is_err());
        assert!(fuzz_clean(b"seed 1\n").is_err());
    }
}
