//! The results: rows, ratios, targets, and the text table, JSON and SVG made from them.

use crate::json::Json;
use crate::kvm::KvmRuns;
use crate::parse::{GuestRun, NativeRun, NativeStats};
use crate::stats::{Cell, Stats};
use std::fmt::Write;

/// Facts about the run that make the figures comparable across commits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub commit: String,
    pub date: String,
    pub host_cpu: String,
    pub host_kernel: String,
    pub host_load: String,
    pub qemu: String,
    /// The extra QEMU arguments of the instruction-count runs.
    pub icount: String,
    pub linux_kernel: String,
    /// The vDSO image the native half loaded, if any.
    pub vdso_image: String,
}

/// Everything one `ktls-bench` invocation measured (`Err`: why a half did not run).
#[derive(Clone, Debug)]
pub struct Results {
    pub meta: Meta,
    pub ktls: Result<GuestRun, String>,
    pub ktls_nofsgsbase: Result<GuestRun, String>,
    pub linux: Result<GuestRun, String>,
    pub native: Result<NativeRun, String>,
    /// The KVM runs, or why there are none (`skipped (--no-kvm)`, `kvm-pvm detected: ...`).
    pub kvm: Result<KvmRuns, String>,
}

/// A row of the instruction table: ktls against Linux.
#[derive(Clone, Debug, PartialEq)]
pub struct InsnRow {
    pub id: &'static str,
    pub label: &'static str,
    pub ktls: Cell,
    pub linux: Cell,
}

impl InsnRow {
    /// ktls / Linux, when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.ktls, &self.linux) {
            (Ok(k), Ok(l)) if l.median > 0.0 => Some(k.median / l.median),
            _ => None,
        }
    }
}

/// A row of the native table.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeRow {
    pub id: &'static str,
    pub label: &'static str,
    pub cell: Result<NativeStats, String>,
}

/// Which run a figure comes from.
#[derive(Clone, Copy)]
enum Src {
    Ktls(&'static str),
    KtlsNoFsgsbase(&'static str),
    Linux(&'static str),
    KtlsBoot,
    LinuxBoot,
}

fn guest_cell(run: &Result<GuestRun, String>, name: &str) -> Cell {
    match run {
        Ok(r) => r.get(name).map_err(|e| explain(&e)),
        Err(e) => Err(e.clone()),
    }
}

fn boot_cell(run: &Result<GuestRun, String>) -> Cell {
    match run {
        Ok(r) => match r.boot_tsc {
            Some(t) => Ok(Stats {
                median: t as f64,
                min: t as f64,
                max: t as f64,
                reps: 1,
            }),
            None => Err("no boot figure".into()),
        },
        Err(e) => Err(e.clone()),
    }
}

/// The guest's reasons, in words.
fn explain(reason: &str) -> String {
    match reason {
        "no_vdso" => "n/a (not built)".into(),
        "no_symbol" => "n/a (no such vDSO call)".into(),
        "no_ktls" => "n/a (no KTLS)".into(),
        "no_rseq" => "n/a (no rseq)".into(),
        "no_fsgsbase" => "n/a (no FSGSBASE)".into(),
        "ENOSYS" => "n/a (ENOSYS)".into(),
        "not_built" => "n/a (not built)".into(),
        other => format!("n/a ({})", other.replace('_', " ")),
    }
}

/// The three guest runs of one accelerator.
struct Runs<'a> {
    ktls: &'a Result<GuestRun, String>,
    ktls_nofsgsbase: &'a Result<GuestRun, String>,
    linux: &'a Result<GuestRun, String>,
}

fn cell(r: &Runs, src: Src) -> Cell {
    match src {
        Src::Ktls(n) => guest_cell(r.ktls, n),
        Src::KtlsNoFsgsbase(n) => guest_cell(r.ktls_nofsgsbase, n),
        Src::Linux(n) => guest_cell(r.linux, n),
        Src::KtlsBoot => boot_cell(r.ktls),
        Src::LinuxBoot => boot_cell(r.linux),
    }
}

/// The rows of the instruction table, in order.
pub fn insn_rows(r: &Results) -> Vec<InsnRow> {
    guest_rows(&Runs {
        ktls: &r.ktls,
        ktls_nofsgsbase: &r.ktls_nofsgsbase,
        linux: &r.linux,
    })
}

/// The same rows under KVM, in nanoseconds (TSC cycles divided by the TSC rate), or why there
/// are none.
pub fn kvm_rows(r: &Results) -> Result<Vec<InsnRow>, String> {
    let k = r.kvm.as_ref().map_err(|e| e.clone())?;
    let ns = |c: Cell| {
        c.map(|s| Stats {
            median: s.median / k.tsc.ghz,
            min: s.min / k.tsc.ghz,
            max: s.max / k.tsc.ghz,
            reps: s.reps,
        })
    };
    Ok(guest_rows(&Runs {
        ktls: &k.ktls,
        ktls_nofsgsbase: &k.ktls_nofsgsbase,
        linux: &k.linux,
    })
    .into_iter()
    .map(|row| InsnRow {
        ktls: ns(row.ktls),
        linux: ns(row.linux),
        ..row
    })
    .collect())
}

fn guest_rows(r: &Runs) -> Vec<InsnRow> {
    use Src::*;
    let rows: &[(&str, &str, Src, Src)] = &[
        (
            "gettid_load",
            "gettid: KTLS load",
            Ktls("ktls_load_tid"),
            Linux("ktls_load_tid"),
        ),
        (
            "gettid_vdso",
            "gettid: vDSO",
            Ktls("vdso_gettid"),
            Linux("vdso_gettid"),
        ),
        (
            "gettid_vdso_area",
            "gettid: vDSO __vdso_ktls_gettid(area)",
            Ktls("vdso_ktls_gettid"),
            Linux("vdso_ktls_gettid"),
        ),
        (
            "gettid_syscall",
            "gettid: syscall",
            Ktls("sys_gettid"),
            Linux("sys_gettid"),
        ),
        (
            "getpid_load",
            "getpid: KTLS load",
            Ktls("ktls_load_pid"),
            Linux("ktls_load_pid"),
        ),
        (
            "getpid_vdso",
            "getpid: vDSO",
            Ktls("vdso_getpid"),
            Linux("vdso_getpid"),
        ),
        (
            "getpid_syscall",
            "getpid: syscall",
            Ktls("sys_getpid"),
            Linux("sys_getpid"),
        ),
        (
            "getuid_load",
            "getuid: KTLS load",
            Ktls("ktls_load_uid"),
            Linux("ktls_load_uid"),
        ),
        (
            "getuid_vdso",
            "getuid: vDSO",
            Ktls("vdso_getuid"),
            Linux("vdso_getuid"),
        ),
        (
            "getuid_syscall",
            "getuid: syscall",
            Ktls("sys_getuid"),
            Linux("sys_getuid"),
        ),
        (
            "getcpu_load",
            "getcpu: KTLS/rseq cpu_id load",
            Ktls("rseq_load_cpu"),
            Linux("rseq_load_cpu"),
        ),
        (
            "getcpu_vdso",
            "getcpu: vDSO",
            Ktls("vdso_getcpu"),
            Linux("vdso_getcpu"),
        ),
        (
            "getcpu_syscall",
            "getcpu: syscall",
            Ktls("sys_getcpu"),
            Linux("sys_getcpu"),
        ),
        (
            "tls_load",
            "plain __thread load",
            Ktls("tls_load"),
            Linux("tls_load"),
        ),
        (
            "call_empty",
            "call + ret of an empty function (floor)",
            Ktls("call_empty"),
            Linux("call_empty"),
        ),
        (
            "noop_syscall",
            "no-op syscall round trip (getppid)",
            Ktls("sys_getppid"),
            Linux("sys_getppid"),
        ),
        (
            "set_fs",
            "arch_prctl(ARCH_SET_FS)",
            Ktls("arch_prctl_set_fs"),
            Linux("arch_prctl_set_fs"),
        ),
        (
            "set_fs_nofsgsbase",
            "arch_prctl(ARCH_SET_FS), ktls nofsgsbase",
            KtlsNoFsgsbase("arch_prctl_set_fs"),
            Linux("arch_prctl_set_fs"),
        ),
        (
            "wrfsbase",
            "wrfsbase (user mode)",
            Ktls("wrfsbase"),
            Linux("wrfsbase"),
        ),
        (
            "page_fault",
            "page fault (first touch, anonymous)",
            Ktls("page_fault"),
            Linux("page_fault"),
        ),
        (
            "pingpong",
            "futex ping-pong, 1 CPU, per switch",
            Ktls("futex_pingpong"),
            Linux("futex_pingpong"),
        ),
        (
            "pingpong_nofsgsbase",
            "futex ping-pong, ktls nofsgsbase (wrmsr)",
            KtlsNoFsgsbase("futex_pingpong"),
            Linux("futex_pingpong"),
        ),
        (
            "thread_ktls",
            "thread create+join: CLONE_RSEQ_KTLS (Linux: +rseq)",
            Ktls("thread_ktls_clone"),
            Linux("thread_register"),
        ),
        (
            "thread_register",
            "thread create+join: clone3 + registration",
            Ktls("thread_register"),
            Linux("thread_register"),
        ),
        (
            "thread_bare",
            "thread create+join: clone3 alone",
            Ktls("thread_bare"),
            Linux("thread_bare"),
        ),
        (
            "boot",
            "boot: reset to first user instruction",
            KtlsBoot,
            LinuxBoot,
        ),
    ];
    rows.iter()
        .map(|&(id, label, k, l)| InsnRow {
            id,
            label,
            ktls: cell(r, k),
            linux: cell(r, l),
        })
        .collect()
}

/// The rows of the native table, in order.
pub fn native_rows(r: &Results) -> Vec<NativeRow> {
    let rows: &[(&str, &str)] = &[
        ("tls_load", "plain __thread load"),
        ("call_empty", "call + ret of an empty function (floor)"),
        ("ktls_load_tid", "KTLS load (tid, via __ktls_offset)"),
        ("rseq_load_cpu", "rseq cpu_id load (glibc __rseq_offset)"),
        ("vdso_gettid", "ktls vDSO gettid"),
        ("vdso_ktls_gettid", "ktls vDSO __vdso_ktls_gettid(area)"),
        ("vdso_getpid", "ktls vDSO getpid"),
        ("vdso_getuid", "ktls vDSO getuid"),
        ("vdso_getcpu", "ktls vDSO getcpu"),
        ("host_vdso_getcpu", "host vDSO getcpu"),
        (
            "host_vdso_clock_gettime",
            "host vDSO clock_gettime(MONOTONIC)",
        ),
        ("sys_getppid", "host syscall getppid"),
        ("sys_gettid", "host syscall gettid"),
        ("sys_getpid", "host syscall getpid"),
        ("sys_getuid", "host syscall getuid"),
        ("sys_getcpu", "host syscall getcpu"),
        ("empty_loop", "empty loop (dec/jnz), for reference"),
    ];
    rows.iter()
        .map(|&(id, label)| NativeRow {
            id,
            label,
            cell: match &r.native {
                Ok(n) => n.get(id).map_err(|e| explain(&e)),
                Err(e) => Err(e.clone()),
            },
        })
        .collect()
}

/// Whether a target was met.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Met,
    Missed,
    NotMeasured(String),
}

/// One of the issue's targets, evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub id: &'static str,
    pub text: &'static str,
    pub status: Status,
    /// The figures behind the verdict, in words.
    pub detail: String,
}

fn median(c: &Cell) -> Result<f64, String> {
    c.as_ref().map(|s| s.median).map_err(|e| e.clone())
}

fn native_ns(r: &Results, id: &str) -> Result<f64, String> {
    native_rows(r)
        .into_iter()
        .find(|row| row.id == id)
        .map(|row| row.cell.map(|c| c.ns.median))
        .unwrap_or_else(|| Err("no such row".into()))
}

fn verdict(
    id: &'static str,
    text: &'static str,
    figures: Result<(bool, String), String>,
) -> Target {
    match figures {
        Ok((met, detail)) => Target {
            id,
            text,
            status: if met { Status::Met } else { Status::Missed },
            detail,
        },
        Err(why) => Target {
            id,
            text,
            status: Status::NotMeasured(why),
            detail: String::new(),
        },
    }
}

/// The issue's targets (read from the output, never asserted).
pub fn targets(r: &Results) -> Vec<Target> {
    let rows = insn_rows(r);
    let row = |id: &str| rows.iter().find(|x| x.id == id).expect("known row").clone();
    let mut out = Vec::new();
    for (id, text, vdso) in [
        (
            "vdso_gettid_insns",
            "vDSO gettid <= 12 instructions incl. call/ret",
            "gettid_vdso",
        ),
        (
            "vdso_getuid_insns",
            "vDSO getuid <= 12 instructions incl. call/ret",
            "getuid_vdso",
        ),
    ] {
        out.push(verdict(
            id,
            text,
            median(&row(vdso).ktls).map(|v| (v <= 12.0, format!("{} instructions", num(v)))),
        ));
    }
    for (id, text, vdso) in [
        (
            "vdso_gettid_ns",
            "vDSO gettid within 3x of a __thread load (ns, host)",
            "vdso_gettid",
        ),
        (
            "vdso_getuid_ns",
            "vDSO getuid within 3x of a __thread load (ns, host)",
            "vdso_getuid",
        ),
    ] {
        let floor = native_ns(r, "call_empty")
            .ok()
            .zip(native_ns(r, "tls_load").ok())
            .map(|(c, t)| {
                format!(
                    " (an empty call + ret alone: {} ns, {}x)",
                    num(c),
                    num(c / t)
                )
            })
            .unwrap_or_default();
        let f = native_ns(r, vdso).and_then(|v| {
            native_ns(r, "tls_load").map(|t| {
                (
                    v <= 3.0 * t,
                    format!("{} ns vs {} ns: {}x{floor}", num(v), num(t), num(v / t)),
                )
            })
        });
        out.push(verdict(id, text, f));
    }
    for (id, text, vdso) in [
        (
            "vdso_gettid_vs_syscall",
            "vDSO gettid >= 20x fewer instructions than our getuid syscall",
            "gettid_vdso",
        ),
        (
            "vdso_getuid_vs_syscall",
            "vDSO getuid >= 20x fewer instructions than our getuid syscall",
            "getuid_vdso",
        ),
    ] {
        let f = median(&row(vdso).ktls).and_then(|v| {
            median(&row("getuid_syscall").ktls).map(|s| {
                (
                    s >= 20.0 * v,
                    format!("{} vs {}: {}x fewer", num(v), num(s), num(s / v)),
                )
            })
        });
        out.push(verdict(id, text, f));
    }
    for (id, text, rid, limit) in [
        (
            "noop_syscall",
            "our no-op syscall <= 1/3 of Linux's instructions",
            "noop_syscall",
            1.0 / 3.0,
        ),
        (
            "pingpong",
            "same-CPU futex ping-pong <= 1/2 of Linux's",
            "pingpong",
            0.5,
        ),
        (
            "pingpong_nofsgsbase",
            "same-CPU futex ping-pong, nofsgsbase, <= 1/2 of Linux's",
            "pingpong_nofsgsbase",
            0.5,
        ),
        (
            "boot",
            "boot to first user instruction <= 1/10 of Linux's",
            "boot",
            0.1,
        ),
    ] {
        let x = row(rid);
        let f = median(&x.ktls).and_then(|k| {
            median(&x.linux).map(|l| {
                (
                    k <= limit * l,
                    format!("{} vs {}: ratio {}", num(k), num(l), num(k / l)),
                )
            })
        });
        out.push(verdict(id, text, f));
    }
    out
}

/// A number for people: integers as integers; otherwise one decimal from 10 up, two from 1 up,
/// and two significant digits below 1; no trailing zeros.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "?".into();
    }
    let a = x.abs();
    let s = if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{x:.2}")
    } else {
        let digits = (1 - a.log10().floor() as i32).max(2) as usize;
        format!("{x:.digits$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `median` or `median [min-max]` when the repetitions differ.
fn stats_text(s: &Stats) -> String {
    let (m, lo, hi) = (num(s.median), num(s.min), num(s.max));
    if lo == hi {
        m
    } else {
        format!("{m} [{lo}-{hi}]")
    }
}

fn cell_text(c: &Cell) -> String {
    match c {
        Ok(s) => stats_text(s),
        Err(e) if e.starts_with("n/a") => e.clone(),
        Err(e) => format!("n/a ({e})"),
    }
}

/// The median alone (the KVM columns; the JSON has the spread).
fn median_text(c: &Cell) -> String {
    match c {
        Ok(s) => num(s.median),
        Err(_) => cell_text(c),
    }
}

/// What the KVM columns are, or why there are none.
pub fn kvm_line(r: &Results) -> String {
    match &r.kvm {
        Ok(k) => format!(
            "KVM columns: the same program under QEMU {} (no -icount), median ns per operation \
             = TSC cycles / {:.4} GHz (from {}); ktls/Linux of those",
            crate::kvm::KVM_ARGS.join(" "),
            k.tsc.ghz,
            k.tsc.source
        ),
        Err(why) => format!("KVM: not measured ({why})"),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i > 0 {
                l.push_str("  ");
            }
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(
        &mut out,
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    line(
        &mut out,
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    );
    for r in rows {
        line(&mut out, r);
    }
    out
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Met => "met".into(),
        Status::Missed => "MISSED".into(),
        Status::NotMeasured(why) => format!("not measured ({why})"),
    }
}

fn linux_name(r: &Results) -> String {
    match &r.linux {
        Ok(l) => match l.info.get("release") {
            Some(rel) => format!("Linux {rel}"),
            None => "Linux".into(),
        },
        Err(_) => "Linux".into(),
    }
}

/// The whole report as text.
pub fn text(r: &Results) -> String {
    let m = &r.meta;
    let mut out = String::new();
    let _ = writeln!(out, "ktls benchmarks: commit {}, {}", m.commit, m.date);
    let _ = writeln!(
        out,
        "host: {}; Linux {}; load average {}",
        m.host_cpu, m.host_kernel, m.host_load
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Instructions per operation (QEMU {} TCG, {}, microvm, -cpu max, 1 CPU): median of the \
         repetitions [min-max]",
        m.qemu, m.icount
    );
    let _ = writeln!(out, "{}", kvm_line(r));
    let kvm = kvm_rows(r).ok();
    let rows: Vec<Vec<String>> = insn_rows(r)
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut cells = vec![
                row.label.to_string(),
                cell_text(&row.ktls),
                cell_text(&row.linux),
                row.ratio().map(num).unwrap_or_default(),
            ];
            if let Some(k) = kvm.as_ref().map(|k| &k[i]) {
                cells.push(median_text(&k.ktls));
                cells.push(median_text(&k.linux));
                cells.push(k.ratio().map(num).unwrap_or_default());
            }
            cells
        })
        .collect();
    let linux = linux_name(r);
    let mut headers = vec!["operation", "ktls", &linux, "ktls/Linux"];
    if kvm.is_some() {
        headers.extend(["KVM ktls ns", "KVM Linux ns", "KVM ktls/Linux"]);
    }
    out.push_str(&table(
        &headers,
        &rows,
        &[false, true, true, true, true, true, true],
    ));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ring 3 on the host, ns per loop iteration (body + dec/jnz): median [min-max] of the \
         repetitions; TSC ticks; x a __thread load"
    );
    let nrows = native_rows(r);
    let tls = nrows
        .iter()
        .find(|x| x.id == "tls_load")
        .and_then(|x| x.cell.as_ref().ok().map(|c| c.ns.median));
    let rows: Vec<Vec<String>> = nrows
        .iter()
        .map(|row| match &row.cell {
            Ok(c) => vec![
                row.label.to_string(),
                stats_text(&c.ns),
                num(c.tsc.median),
                tls.map(|t| num(c.ns.median / t)).unwrap_or_default(),
            ],
            Err(e) => vec![
                row.label.to_string(),
                cell_text(&Err(e.clone())),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    out.push_str(&table(
        &["operation", "ns", "TSC", "x __thread"],
        &rows,
        &[false, true, true, true],
    ));
    let _ = writeln!(out);
    let _ = writeln!(out, "Targets");
    for t in targets(r) {
        let detail = if t.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", t.detail)
        };
        let _ = writeln!(out, "  [{}] {}{}", status_text(&t.status), t.text, detail);
    }
    let _ = writeln!(out);
    out.push_str(NOTES);
    if r.kvm.is_ok() {
        out.push_str(KVM_NOTES);
    }
    out
}

/// What the figures include; printed under the tables.
pub const NOTES: &str = "\
Notes: under -icount shift=0 the guest TSC counts executed instructions (plus idle time, which
sleep=off skips to the next timer); rdtsc deltas are exact instruction counts. TCG does not see
what syscall/sysret, swapgs, wrmsr, iretq, CR3 writes or serializing instructions cost on real
hardware: each counts as one instruction. Loop figures subtract the empty loop; syscall figures
exclude the `mov` of the number (they run from `syscall` to the instruction after it); vDSO
figures include call and ret. Ping-pong is per context switch (half a round trip: one futex
wake, one wait, one switch). Thread create+join includes the caller's clone3 wrapper, a 16-store
zeroing of the new thread's area and the futex join. Boot counts from reset: firmware (qboot),
for Linux the bzImage decompressor, and the kernels' own boot up to the program's first
instruction.
";

/// What the KVM figures include; printed under the notes when there are KVM figures.
pub const KVM_NOTES: &str = "\
Under KVM the rdtsc deltas are TSC cycles of real time, divided by the TSC rate: they include
what the hardware charges for syscall, swapgs, wrmsr, CR3 writes and VM exits, and whatever
interrupts arrived (the median of the repetitions); figures include their set-up instructions
(the `mov` of a syscall number), which the -icount figures subtract. Boot counts from the
vCPU's reset, including QEMU's exits while booting.
";

fn stats_json(s: &Stats) -> Json {
    Json::obj([
        ("median", Json::Num(s.median)),
        ("min", Json::Num(s.min)),
        ("max", Json::Num(s.max)),
        ("reps", Json::Num(s.reps as f64)),
    ])
}

fn cell_json(c: &Cell) -> Json {
    match c {
        Ok(s) => stats_json(s),
        Err(e) => Json::obj([("na", Json::str(e.clone()))]),
    }
}

fn info_json(run: &Result<GuestRun, String>) -> Json {
    match run {
        Ok(g) => Json::obj(
            g.info
                .iter()
                .map(|(k, v)| (k.clone(), Json::str(v.clone())))
                .chain(std::iter::once((
                    "completed".to_string(),
                    Json::Bool(g.done),
                )))
                .chain(std::iter::once((
                    "notes".to_string(),
                    Json::Arr(g.notes.iter().map(|n| Json::str(n.clone())).collect()),
                ))),
        ),
        Err(e) => Json::obj([("error", Json::str(e.clone()))]),
    }
}

/// The results as JSON (schema 1), for comparing commits.
pub fn json(r: &Results) -> Json {
    let m = &r.meta;
    let kvm = kvm_rows(r).ok();
    let insns = insn_rows(r)
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let kvm_row = match kvm.as_ref().map(|k| &k[i]) {
                Some(k) => Json::obj([
                    ("ktls_ns", cell_json(&k.ktls)),
                    ("linux_ns", cell_json(&k.linux)),
                    ("ratio", k.ratio().map(Json::Num).unwrap_or(Json::Null)),
                ]),
                None => Json::Null,
            };
            Json::obj([
                ("id", Json::str(row.id)),
                ("label", Json::str(row.label)),
                ("ktls", cell_json(&row.ktls)),
                ("linux", cell_json(&row.linux)),
                ("ratio", row.ratio().map(Json::Num).unwrap_or(Json::Null)),
                ("kvm", kvm_row),
            ])
        })
        .collect();
    let kvm = match &r.kvm {
        Ok(k) => Json::obj([
            ("measured", Json::Bool(true)),
            (
                "method",
                Json::str(format!(
                    "QEMU {} on microvm, 1 CPU, no -icount; rdtsc deltas in the guest are TSC \
                     cycles, divided by tsc_ghz",
                    crate::kvm::KVM_ARGS.join(" ")
                )),
            ),
            ("tsc_ghz", Json::Num(k.tsc.ghz)),
            ("tsc_source", Json::str(k.tsc.source.clone())),
            ("host_tsc_ghz", Json::Num(k.tsc.host_ghz)),
            (
                "ktls_tsc_mhz",
                k.tsc
                    .ktls_mhz
                    .map(|m| Json::Num(m as f64))
                    .unwrap_or(Json::Null),
            ),
            (
                "runs",
                Json::obj([
                    ("ktls", info_json(&k.ktls)),
                    ("ktls_nofsgsbase", info_json(&k.ktls_nofsgsbase)),
                    ("linux", info_json(&k.linux)),
                ]),
            ),
        ]),
        Err(why) => Json::obj([
            ("measured", Json::Bool(false)),
            ("why", Json::str(why.clone())),
        ]),
    };
    let native = native_rows(r)
        .iter()
        .map(|row| {
            let (ns, tsc) = match &row.cell {
                Ok(c) => (stats_json(&c.ns), stats_json(&c.tsc)),
                Err(e) => (
                    Json::obj([("na", Json::str(e.clone()))]),
                    Json::obj([("na", Json::str(e.clone()))]),
                ),
            };
            Json::obj([
                ("id", Json::str(row.id)),
                ("label", Json::str(row.label)),
                ("ns", ns),
                ("tsc", tsc),
            ])
        })
        .collect();
    let targets = targets(r)
        .iter()
        .map(|t| {
            let (status, why) = match &t.status {
                Status::Met => ("met", None),
                Status::Missed => ("missed", None),
                Status::NotMeasured(w) => ("not measured", Some(w.clone())),
            };
            let mut pairs = vec![
                ("id", Json::str(t.id)),
                ("text", Json::str(t.text)),
                ("status", Json::str(status)),
                ("detail", Json::str(t.detail.clone())),
            ];
            if let Some(w) = why {
                pairs.push(("why", Json::str(w)));
            }
            Json::obj(pairs)
        })
        .collect();
    Json::obj([
        ("schema", Json::Num(1.0)),
        ("commit", Json::str(m.commit.clone())),
        ("date", Json::str(m.date.clone())),
        (
            "machine",
            Json::obj([
                ("cpu", Json::str(m.host_cpu.clone())),
                ("kernel", Json::str(m.host_kernel.clone())),
                ("load", Json::str(m.host_load.clone())),
                ("qemu", Json::str(m.qemu.clone())),
            ]),
        ),
        (
            "method",
            Json::obj([
                ("instructions", Json::str(format!(
                    "QEMU TCG {} on microvm, -cpu max, 1 CPU; rdtsc deltas in the guest",
                    m.icount
                ))),
                ("native", Json::str("host process, ns from CLOCK_MONOTONIC and TSC ticks from rdtsc around each repetition")),
                ("linux_kernel", Json::str(m.linux_kernel.clone())),
                ("vdso_image", Json::str(m.vdso_image.clone())),
            ]),
        ),
        (
            "runs",
            Json::obj([
                ("ktls", info_json(&r.ktls)),
                ("ktls_nofsgsbase", info_json(&r.ktls_nofsgsbase)),
                ("linux", info_json(&r.linux)),
            ]),
        ),
        ("kvm", kvm),
        ("instructions", Json::Arr(insns)),
        ("native", Json::Arr(native)),
        ("targets", Json::Arr(targets)),
    ])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const SVG_W: f64 = 980.0;
const SVG_LABEL_W: f64 = 330.0;
const SVG_BAR_W: f64 = SVG_W - SVG_LABEL_W - 110.0;
const SVG_ROW_H: f64 = 30.0;

/// Pairs of bars (ktls, Linux) for `rows` on a log scale from 1 to the largest value; `unit`
/// follows each number. Returns the new `y`.
fn svg_pairs(s: &mut String, rows: &[InsnRow], mut y: f64, unit: &str) -> f64 {
    let max = rows
        .iter()
        .flat_map(|x| [&x.ktls, &x.linux])
        .filter_map(|c| c.as_ref().ok().map(|s| s.median))
        .fold(10.0f64, f64::max);
    let scale = |v: f64| -> f64 {
        if v <= 1.0 {
            2.0
        } else {
            (v.log10() / max.log10() * SVG_BAR_W).max(2.0)
        }
    };
    for row in rows {
        let _ = writeln!(
            s,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"##,
            SVG_LABEL_W - 8.0,
            y + 16.0,
            esc(row.label)
        );
        for (i, (c, color)) in [(&row.ktls, "#1f77b4"), (&row.linux, "#888")]
            .iter()
            .enumerate()
        {
            let by = y + 3.0 + i as f64 * 12.0;
            match c {
                Ok(st) => {
                    let w = scale(st.median);
                    let _ = writeln!(
                        s,
                        r##"<rect x="{SVG_LABEL_W}" y="{by:.0}" width="{w:.1}" height="10" fill="{color}"/><text x="{:.1}" y="{:.0}" font-size="10">{}{unit}</text>"##,
                        SVG_LABEL_W + w + 4.0,
                        by + 9.0,
                        num(st.median)
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        r##"<text x="{SVG_LABEL_W}" y="{:.0}" font-size="10" fill="{color}">{}</text>"##,
                        by + 9.0,
                        esc(e)
                    );
                }
            }
        }
        y += SVG_ROW_H;
    }
    y
}

/// A bar chart of the tables (log scale), as a standalone SVG.
pub fn svg(r: &Results) -> String {
    let measured = |x: &InsnRow| x.ktls.is_ok() || x.linux.is_ok();
    let insn: Vec<InsnRow> = insn_rows(r).into_iter().filter(measured).collect();
    let kvm: Vec<InsnRow> = kvm_rows(r)
        .map(|k| k.into_iter().filter(measured).collect())
        .unwrap_or_default();
    let native: Vec<NativeRow> = native_rows(r)
        .into_iter()
        .filter(|x| x.cell.is_ok())
        .collect();
    let kvm_h = if r.kvm.is_ok() {
        40.0 + kvm.len() as f64 * SVG_ROW_H
    } else {
        20.0
    };
    let h = 90.0
        + insn.len() as f64 * SVG_ROW_H
        + kvm_h
        + 70.0
        + native.len() as f64 * (SVG_ROW_H * 0.6)
        + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{h:.0}" viewBox="0 0 {SVG_W} {h:.0}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="10" y="20" font-size="15" font-weight="bold">ktls benchmarks, commit {}</text>"##,
        esc(&r.meta.commit)
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="40">Instructions per operation (QEMU TCG {}, log scale): <tspan fill="#1f77b4">ktls</tspan> vs <tspan fill="#888">{}</tspan></text>"##,
        esc(&r.meta.icount),
        esc(&linux_name(r))
    );
    let mut y = svg_pairs(&mut s, &insn, 60.0, "");
    y += 20.0;
    match &r.kvm {
        Ok(k) => {
            let _ = writeln!(
                s,
                r##"<text x="10" y="{y:.0}">ns per operation under KVM ({}, TSC at {:.4} GHz, log scale): <tspan fill="#1f77b4">ktls</tspan> vs <tspan fill="#888">Linux</tspan></text>"##,
                esc(&crate::kvm::KVM_ARGS.join(" ")),
                k.tsc.ghz
            );
            y = svg_pairs(&mut s, &kvm, y + 20.0, " ns");
        }
        Err(why) => {
            let _ = writeln!(
                s,
                r##"<text x="10" y="{y:.0}" fill="#555">KVM: not measured ({})</text>"##,
                esc(why)
            );
        }
    }
    y += 30.0;
    let _ = writeln!(
        s,
        r##"<text x="10" y="{y:.0}">Ring 3 on the host: ns per loop iteration (log scale, median)</text>"##
    );
    y += 12.0;
    let max_ns = native
        .iter()
        .filter_map(|x| x.cell.as_ref().ok().map(|c| c.ns.median))
        .fold(10.0f64, f64::max);
    // Native values go below 1 ns: scale from 0.1 ns.
    let nscale = |v: f64| -> f64 {
        ((v * 10.0).max(1.0).log10() / (max_ns * 10.0).log10() * SVG_BAR_W).max(2.0)
    };
    for row in &native {
        let c = row.cell.as_ref().expect("filtered");
        let w = nscale(c.ns.median);
        let _ = writeln!(
            s,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text><rect x="{SVG_LABEL_W}" y="{:.0}" width="{w:.1}" height="12" fill="#2ca02c"/><text x="{:.1}" y="{:.0}" font-size="10">{} ns</text>"##,
            SVG_LABEL_W - 8.0,
            y + 12.0,
            esc(row.label),
            y + 2.0,
            SVG_LABEL_W + w + 4.0,
            y + 12.0,
            num(c.ns.median)
        );
        y += SVG_ROW_H * 0.6;
    }
    let _ = writeln!(
        s,
        r##"<text x="10" y="{:.0}" font-size="10" fill="#555">{}; host {}</text>"##,
        y + 20.0,
        esc(&r.meta.date),
        esc(&r.meta.host_cpu)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let ktls = GuestRun::parse(
            "@kb boot 10000000\n@kb info release=6.12.0-ktls\n\
             @kb m base:10 10 0 20 20 20\n@kb m sys_getppid 10 1 1490 1490 1490\n\
             @kb m sys_getuid 10 1 1710 1710 1710\n@kb m vdso_gettid 10 0 100 100 100\n\
             @kb na vdso_getuid no_vdso\n@kb t futex_pingpong 10 0 28000 28000 29000\n@kb done\n",
        );
        let linux = GuestRun::parse(
            "@kb boot 2000000000\n@kb info release=6.12.117\n\
             @kb m base:10 10 0 20 20 20\n@kb m sys_getppid 10 1 3230 3230 3230\n\
             @kb t futex_pingpong 10 0 42000 42000 42000\n@kb done\n",
        );
        let native = NativeRun::parse(
            "@nb m tls_load 100 30:90 30:90 31:93\n@nb m vdso_gettid 100 100:300 100:300 110:330\n\
             @nb na vdso_getuid not_built\n@nb done\n",
        );
        Results {
            meta: Meta {
                commit: "abc".into(),
                icount: "-icount shift=0,sleep=off".into(),
                ..Meta::default()
            },
            ktls: Ok(ktls),
            ktls_nofsgsbase: Err("skipped".into()),
            linux: Ok(linux),
            native: Ok(native),
            kvm: Err("kvm-pvm detected: it cannot run ring-0 guests correctly".into()),
        }
    }

    /// `sample()` with a synthetic KVM run (as parsed from the guest under KVM, in TSC cycles
    /// at 2.5 GHz): getppid 250 cycles on ktls and 1000 on Linux, 100 ns and 400 ns.
    fn sample_kvm() -> Results {
        use crate::kvm::TscRate;
        use crate::parse::Counter;
        let ktls = GuestRun::parse_as(
            "@kb boot 250000000\n@kb info release=6.12.0-ktls\n\
             @kb m base:10 10 0 20 20 20\n@kb m sys_getppid 10 1 2520 2520 2770\n\
             @kb m vdso_gettid 10 0 95 95 95\n@kb t futex_pingpong 10 0 5000 5000 5000\n\
             @kb done\n",
            Counter::TscCycles,
        );
        let linux = GuestRun::parse_as(
            "@kb boot 2500000000\n@kb info release=6.12.117\n\
             @kb m base:10 10 0 20 20 20\n@kb m sys_getppid 10 1 10020 10020 10020\n\
             @kb t futex_pingpong 10 0 20000 20000 20000\n@kb done\n",
            Counter::TscCycles,
        );
        Results {
            kvm: Ok(KvmRuns {
                ktls: Ok(ktls),
                ktls_nofsgsbase: Err("exit status 125".into()),
                linux: Ok(linux),
                tsc: TscRate::choose(2.5, Some(2499)),
            }),
            ..sample()
        }
    }

    #[test]
    fn kvm_rows_are_nanoseconds() {
        let r = sample_kvm();
        let rows = kvm_rows(&r).unwrap();
        let get = |id: &str| rows.iter().find(|x| x.id == id).unwrap().clone();
        let noop = get("noop_syscall");
        // (2520 - 20) / 10 = 250 cycles (the `mov` of the number kept), / 2.5 GHz = 100 ns.
        let k = noop.ktls.as_ref().unwrap();
        assert_eq!((k.median, k.min, k.max), (100.0, 100.0, 110.0));
        assert_eq!(noop.linux.as_ref().unwrap().median, 400.0);
        assert_eq!(noop.ratio(), Some(0.25));
        assert_eq!(get("gettid_vdso").ktls.unwrap().median, 3.0);
        assert_eq!(get("pingpong").ratio(), Some(0.25));
        assert_eq!(get("boot").ktls.unwrap().median, 100_000_000.0);
        assert_eq!(
            get("set_fs_nofsgsbase").ktls,
            Err("exit status 125".to_string())
        );
        // The TCG rows are untouched.
        assert_eq!(insn_rows(&r), insn_rows(&sample()));
        assert_eq!(kvm_rows(&sample()), Err(sample().kvm.unwrap_err()));
    }

    #[test]
    fn kvm_outputs_render() {
        let r = sample_kvm();
        let t = text(&r);
        assert!(
            t.contains("KVM ktls ns") && t.contains("KVM Linux ns"),
            "{t}"
        );
        assert!(t.contains("KVM ktls/Linux"));
        assert!(
            t.contains(
                "TSC cycles / 2.5000 GHz (from the host's TSC against CLOCK_MONOTONIC over the \
                 KVM runs; ktls calibrates 2499 MHz)"
            ),
            "{t}"
        );
        assert!(t.contains(KVM_NOTES));
        assert!(!t.contains("KVM: not measured"));
        let noop = t
            .lines()
            .find(|l| l.starts_with("no-op syscall round trip"))
            .unwrap();
        // TCG: 146 vs 320 instructions; KVM: 100 vs 400 ns, ratio 0.25.
        let cols: Vec<&str> = noop.split_whitespace().collect();
        assert_eq!(
            cols[cols.len() - 6..],
            ["146", "320", "0.46", "100", "400", "0.25"]
        );
        let j = json(&r).pretty();
        assert!(j.contains("\"measured\": true"), "{j}");
        assert!(j.contains("\"tsc_ghz\": 2.5"));
        assert!(j.contains("\"ktls_tsc_mhz\": 2499"));
        // The noop_syscall row's KVM object.
        let Json::Obj(top) = json(&r) else { panic!() };
        let insns = top.iter().find(|(k, _)| k == "instructions").unwrap();
        let Json::Arr(rows) = &insns.1 else { panic!() };
        let field = |o: &Json, name: &str| match o {
            Json::Obj(p) => p.iter().find(|(k, _)| k == name).unwrap().1.clone(),
            _ => panic!("{o:?}"),
        };
        let noop = rows
            .iter()
            .find(|x| field(x, "id") == Json::str("noop_syscall"))
            .unwrap();
        let kvm = field(noop, "kvm");
        assert_eq!(field(&field(&kvm, "ktls_ns"), "median"), Json::Num(100.0));
        assert_eq!(field(&field(&kvm, "ktls_ns"), "max"), Json::Num(110.0));
        assert_eq!(field(&field(&kvm, "linux_ns"), "median"), Json::Num(400.0));
        assert_eq!(field(&kvm, "ratio"), Json::Num(0.25));
        assert_eq!(field(noop, "ratio"), Json::Num(146.0 / 320.0));
        assert!(j.contains("\"ratio\": 0.25"));
        let s = svg(&r);
        assert!(s.contains("ns per operation under KVM"));
        assert!(s.contains(">100 ns<") && s.contains(">400 ns<"), "{s}");
    }

    #[test]
    fn kvm_not_measured() {
        let r = sample();
        let t = text(&r);
        assert!(
            t.contains(
                "KVM: not measured (kvm-pvm detected: it cannot run ring-0 guests correctly)"
            ),
            "{t}"
        );
        assert!(!t.contains("KVM ktls ns") && !t.contains(KVM_NOTES));
        let j = json(&r).pretty();
        assert!(j.contains(
            "\"kvm\": {\n    \"measured\": false,\n    \"why\": \"kvm-pvm detected: it cannot run ring-0 guests correctly\"\n  }"
        ), "{j}");
        assert!(j.contains("\"kvm\": null"));
        assert!(!j.contains("ktls_ns"));
        let s = svg(&r);
        assert!(s.contains("KVM: not measured (kvm-pvm detected"));
        let skipped = Results {
            kvm: Err("skipped (--no-kvm)".into()),
            ..sample()
        };
        assert!(text(&skipped).contains("KVM: not measured (skipped (--no-kvm))"));
    }

    #[test]
    fn rows_ratios_and_targets() {
        let r = sample();
        let rows = insn_rows(&r);
        let noop = rows.iter().find(|x| x.id == "noop_syscall").unwrap();
        assert_eq!(noop.ktls.as_ref().unwrap().median, 146.0);
        assert_eq!(noop.linux.as_ref().unwrap().median, 320.0);
        assert!((noop.ratio().unwrap() - 146.0 / 320.0).abs() < 1e-9);
        let vdso = rows.iter().find(|x| x.id == "getuid_vdso").unwrap();
        assert_eq!(vdso.ktls, Err("n/a (not built)".to_string()));
        let t = targets(&r);
        let get = |id: &str| t.iter().find(|x| x.id == id).unwrap().status.clone();
        assert_eq!(get("vdso_gettid_insns"), Status::Met); // 8 instructions
        assert_eq!(get("vdso_gettid_vs_syscall"), Status::Met); // 169 / 8
        assert_eq!(get("vdso_gettid_ns"), Status::Missed); // 1.0 vs 0.3 ns
        assert_eq!(get("noop_syscall"), Status::Missed);
        assert_eq!(get("pingpong"), Status::Missed); // 2800 vs 4200
        assert_eq!(get("boot"), Status::Met);
        assert!(matches!(get("vdso_getuid_insns"), Status::NotMeasured(_)));
        assert!(matches!(get("pingpong_nofsgsbase"), Status::NotMeasured(_)));
    }

    #[test]
    fn outputs_render() {
        let r = sample();
        let t = text(&r);
        assert!(t.contains("no-op syscall round trip (getppid)"), "{t}");
        assert!(t.contains("n/a (not built)"));
        assert!(t.contains("[MISSED] our no-op syscall"));
        let j = json(&r).pretty();
        assert!(j.contains("\"id\": \"noop_syscall\""));
        assert!(j.contains("\"status\": \"missed\""));
        let s = svg(&r);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("no-op syscall round trip (getppid)"));
    }

    #[test]
    fn numbers() {
        assert_eq!(num(146.0), "146");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.31), "0.31");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(2829.5), "2830");
        assert_eq!(num(36.04), "36");
        assert_eq!(num(2.06), "2.06");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(0.31), "0.31");
        assert_eq!(num(0.00496), "0.005");
        assert_eq!(num(0.0), "0");
    }
}
