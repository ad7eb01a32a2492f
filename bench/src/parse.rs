//! Parsing what the guest program (`c/guest.c`, `@kb` lines) and the native harness
//! (`c/native.c`, `@nb` lines) print.

use crate::stats::{Cell, Stats};
use std::collections::BTreeMap;

/// One run of the guest program on a kernel: instructions per operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuestRun {
    /// The TSC at the program's first instruction (instructions since reset under -icount).
    pub boot_tsc: Option<u64>,
    /// `@kb info` pairs (sysname, release, hwcap2, ktls, vdso...).
    pub info: BTreeMap<String, String>,
    /// Instructions per operation, or why the guest did not measure it.
    pub results: BTreeMap<String, Cell>,
    /// `@kb note` lines and lines that did not parse.
    pub notes: Vec<String>,
    /// `@kb done` was seen: the program ran to its end.
    pub done: bool,
}

/// One `@kb m|t` line before the arithmetic.
#[derive(Clone, Debug, PartialEq)]
struct Raw {
    asm_loop: bool,
    n: u64,
    extra: u64,
    deltas: Vec<u64>,
}

fn numbers(words: &[&str]) -> Option<Vec<u64>> {
    words.iter().map(|w| w.parse().ok()).collect()
}

/// The `@kb`/`@nb` payload of a line: consoles add `\r`, and on Linux a kernel message may
/// precede the marker on the same line.
fn payload<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let line = line.trim_end_matches(['\r', '\n']);
    let at = line.find(marker)?;
    Some(line[at + marker.len()..].trim())
}

/// What the guest's TSC counts, which decides how `@kb m` lines are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Counter {
    /// QEMU TCG with `-icount shift=0`: one tick per instruction, so a line's EXTRA set-up
    /// instructions per operation are subtracted.
    #[default]
    Instructions,
    /// KVM: TSC cycles of real time. An instruction costs no fixed number of cycles (the set-up
    /// `mov`s issue alongside the operation), so EXTRA is not subtracted: a figure includes its
    /// few set-up instructions.
    TscCycles,
}

impl GuestRun {
    /// Parses the guest's output under TCG `-icount` (other lines are ignored).
    pub fn parse(text: &str) -> GuestRun {
        GuestRun::parse_as(text, Counter::Instructions)
    }

    /// Parses the guest's output, reading its TSC deltas as `counter` says.
    pub fn parse_as(text: &str, counter: Counter) -> GuestRun {
        let mut run = GuestRun::default();
        let mut raws: Vec<(String, Raw)> = Vec::new();
        for line in text.lines() {
            let Some(p) = payload(line, "@kb ") else {
                continue;
            };
            let words: Vec<&str> = p.split_whitespace().collect();
            let bad = |run: &mut GuestRun| run.notes.push(format!("unparsed: {p}"));
            match words.as_slice() {
                ["boot", tsc] => match tsc.parse() {
                    Ok(t) => run.boot_tsc = Some(t),
                    Err(_) => bad(&mut run),
                },
                ["info", pairs @ ..] => {
                    for pair in pairs {
                        if let Some((k, v)) = pair.split_once('=') {
                            run.info.insert(k.to_string(), v.to_string());
                        }
                    }
                }
                [kind @ ("m" | "t"), name, rest @ ..] if rest.len() >= 3 => match numbers(rest) {
                    Some(v) if v[0] > 0 => raws.push((
                        name.to_string(),
                        Raw {
                            asm_loop: *kind == "m",
                            n: v[0],
                            extra: v[1],
                            deltas: v[2..].to_vec(),
                        },
                    )),
                    _ => bad(&mut run),
                },
                ["na", name, why @ ..] => {
                    let why = if why.is_empty() {
                        "not measured".to_string()
                    } else {
                        why.join(" ")
                    };
                    run.results.insert(name.to_string(), Err(why));
                }
                ["note", rest @ ..] => run.notes.push(rest.join(" ")),
                ["done"] => run.done = true,
                _ => bad(&mut run),
            }
        }
        // The empty loops, by N.
        let mut base: BTreeMap<u64, f64> = BTreeMap::new();
        for (name, raw) in &raws {
            if name.starts_with("base:") {
                let d: Vec<f64> = raw.deltas.iter().map(|&d| d as f64).collect();
                if let Some(s) = Stats::of(&d) {
                    base.insert(raw.n, s.median);
                }
            }
        }
        for (name, raw) in raws {
            if name.starts_with("base:") {
                continue;
            }
            let n = raw.n as f64;
            let extra = match counter {
                Counter::Instructions => raw.extra as f64,
                Counter::TscCycles => 0.0,
            };
            let cell = if raw.asm_loop {
                match base.get(&raw.n) {
                    Some(&b) => {
                        let per_op: Vec<f64> = raw
                            .deltas
                            .iter()
                            .map(|&d| (d as f64 - b) / n - extra)
                            .collect();
                        Stats::of(&per_op).ok_or_else(|| "no repetitions".to_string())
                    }
                    None => Err(format!("no empty loop of N={} to subtract", raw.n)),
                }
            } else {
                let per_op: Vec<f64> = raw.deltas.iter().map(|&d| d as f64 / n).collect();
                Stats::of(&per_op).ok_or_else(|| "no repetitions".to_string())
            };
            run.results.insert(name, cell);
        }
        run
    }

    /// The result called `name`; a missing one says the run did not get there.
    pub fn get(&self, name: &str) -> Cell {
        match self.results.get(name) {
            Some(c) => c.clone(),
            None if self.done => Err("not reported".into()),
            None => Err("run ended early".into()),
        }
    }
}

/// The native harness's run: nanoseconds and TSC ticks per loop iteration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeRun {
    pub info: BTreeMap<String, String>,
    pub results: BTreeMap<String, Result<NativeStats, String>>,
    pub done: bool,
}

/// Time per iteration of a native loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeStats {
    pub ns: Stats,
    pub tsc: Stats,
}

impl NativeRun {
    pub fn parse(text: &str) -> NativeRun {
        let mut run = NativeRun::default();
        for line in text.lines() {
            let Some(p) = payload(line, "@nb ") else {
                continue;
            };
            let words: Vec<&str> = p.split_whitespace().collect();
            match words.as_slice() {
                ["info", pairs @ ..] => {
                    for pair in pairs {
                        if let Some((k, v)) = pair.split_once('=') {
                            run.info.insert(k.to_string(), v.to_string());
                        }
                    }
                }
                ["m", name, n, reps @ ..] => {
                    let cell = parse_native_reps(n, reps);
                    run.results.insert(name.to_string(), cell);
                }
                ["na", name, why @ ..] => {
                    run.results.insert(name.to_string(), Err(why.join(" ")));
                }
                ["done"] => run.done = true,
                _ => {}
            }
        }
        run
    }

    pub fn get(&self, name: &str) -> Result<NativeStats, String> {
        match self.results.get(name) {
            Some(c) => c.clone(),
            None if self.done => Err("not reported".into()),
            None => Err("run ended early".into()),
        }
    }
}

fn parse_native_reps(n: &str, reps: &[&str]) -> Result<NativeStats, String> {
    let n: f64 = match n.parse::<u64>() {
        Ok(n) if n > 0 => n as f64,
        _ => return Err(format!("bad iteration count {n:?}")),
    };
    let mut ns = Vec::new();
    let mut tsc = Vec::new();
    for r in reps {
        let (a, b) = r
            .split_once(':')
            .ok_or_else(|| format!("bad repetition {r:?}"))?;
        let a: u64 = a.parse().map_err(|_| format!("bad repetition {r:?}"))?;
        let b: u64 = b.parse().map_err(|_| format!("bad repetition {r:?}"))?;
        ns.push(a as f64 / n);
        tsc.push(b as f64 / n);
    }
    match (Stats::of(&ns), Stats::of(&tsc)) {
        (Some(ns), Some(tsc)) => Ok(NativeStats { ns, tsc }),
        _ => Err("no repetitions".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: &str = "\
[    1.0] some kernel line\r
@kb boot 10171059\r
@kb info sysname=Linux release=6.12.0-ktls hwcap2=0x2 ktls=1 vdso=0\r
@kb m base:100 100 0 205 205 205\r
@kb m base:10 10 0 25 26 25\r
@kb m tls_load 100 0 305 305 405\r
@kb m sys_getppid 10 1 1500 1525 1500\r
@kb t futex_pingpong 4 0 400 404 800\r
@kb na vdso_gettid no_vdso\r
@kb note ktls_register_failed 22\r
@kb m bogus x\r
[    2.0] a message @kb done\r
";

    #[test]
    fn guest_output() {
        let r = GuestRun::parse(GUEST);
        assert!(r.done);
        assert_eq!(r.boot_tsc, Some(10171059));
        assert_eq!(r.info["release"], "6.12.0-ktls");
        // (305 - 205) / 100 = 1 instruction per load.
        let tls = r.get("tls_load").unwrap();
        assert_eq!((tls.median, tls.min, tls.max), (1.0, 1.0, 2.0));
        // (1500 - 25) / 10 - 1 = 146.5.
        assert_eq!(r.get("sys_getppid").unwrap().median, 146.5);
        assert_eq!(r.get("futex_pingpong").unwrap().median, 101.0);
        assert_eq!(r.get("vdso_gettid"), Err("no_vdso".to_string()));
        assert_eq!(r.get("missing"), Err("not reported".to_string()));
        assert!(!r.results.contains_key("base:100"));
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        let early = GuestRun::parse("@kb boot 5\n");
        assert_eq!(early.get("tls_load"), Err("run ended early".to_string()));
    }

    #[test]
    fn tsc_cycles_keep_the_set_up_instructions() {
        let r = GuestRun::parse_as(GUEST, Counter::TscCycles);
        // (1500 - 25) / 10, the `mov` of the number not subtracted.
        assert_eq!(r.get("sys_getppid").unwrap().median, 147.5);
        assert_eq!(r.get("tls_load").unwrap().median, 1.0);
        assert_eq!(r.get("futex_pingpong").unwrap().median, 101.0);
        assert_eq!(r.boot_tsc, Some(10171059));
    }

    #[test]
    fn asm_loop_without_base_is_an_error() {
        let r = GuestRun::parse("@kb m x 7 0 14 14 14\n@kb done\n");
        assert!(r.get("x").unwrap_err().contains("N=7"));
    }

    #[test]
    fn native_output() {
        let r = NativeRun::parse(
            "@nb info hwcap2=0x2\n@nb m tls_load 1000 300:900 310:930 290:870\n\
             @nb na vdso_gettid not_built\n@nb m bad 0 1:1\n@nb done\n",
        );
        assert!(r.done);
        let t = r.get("tls_load").unwrap();
        assert_eq!((t.ns.median, t.ns.min, t.ns.max), (0.3, 0.29, 0.31));
        assert_eq!(t.tsc.median, 0.9);
        assert_eq!(r.get("vdso_gettid"), Err("not_built".to_string()));
        assert!(r.get("bad").is_err());
    }
}
