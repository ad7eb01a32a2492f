//! spec/ktls.md and the ktls-abi crate must say the same thing: the KTLS field table, the
//! numbers table, the vvar table, the errors quoted in the registration tables, and the
//! numbers in the C examples. Any difference fails here.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use ktls_abi::clone::{CloneFlags, CLONE_RSEQ_KTLS};
use ktls_abi::ktls::{self, KtlsArea, FIELDS};
use ktls_abi::rseq::{self, RseqFlags};
use ktls_abi::vvar::{self, Vvar};
use ktls_abi::{auxv, syscall, Errno};

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/ktls.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Splits a Markdown table row into trimmed cells; `\|` is a literal bar inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line
        .trim()
        .strip_prefix('|')
        .and_then(|l| l.strip_suffix('|'));
    let inner = inner.unwrap_or_else(|| panic!("not a table row: {line}"));
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

/// The body rows of every table whose header row is exactly `header` (there must be one).
fn table(spec: &str, header: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = spec.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == header)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "spec must have exactly one table headed {header:?}"
    );
    let width = cells(header).len();
    let start = starts[0];
    assert!(
        lines[start + 1].starts_with("|---"),
        "{header}: no separator row"
    );
    let rows: Vec<Vec<String>> = lines[start + 2..]
        .iter()
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| cells(l))
        .collect();
    for r in &rows {
        assert_eq!(
            r.len(),
            width,
            "{header}: row {r:?} has the wrong number of cells"
        );
    }
    assert!(!rows.is_empty(), "{header}: empty table");
    rows
}

fn unquote(cell: &str) -> String {
    cell.replace('`', "")
}

fn number(text: &str) -> i128 {
    let t = text
        .trim()
        .trim_end_matches("ULL")
        .trim_end_matches("UL")
        .trim_end_matches('U');
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = match t.strip_prefix("0x") {
        Some(hex) => i128::from_str_radix(hex, 16),
        None => t.parse::<i128>(),
    };
    let v = v.unwrap_or_else(|e| panic!("not a number: {text:?}: {e}"));
    if neg {
        -v
    } else {
        v
    }
}

/// Every number the spec may quote by name, from the crate.
fn crate_numbers() -> BTreeMap<&'static str, i128> {
    let f = |level| ktls::feature_size(level) as i128;
    BTreeMap::from([
        ("KTLS_ABI_VERSION", ktls::KTLS_ABI_VERSION as i128),
        ("SYS_rseq", syscall::SYS_RSEQ as i128),
        ("SYS_clone3", syscall::SYS_CLONE3 as i128),
        ("AT_RSEQ_FEATURE_SIZE", auxv::AT_RSEQ_FEATURE_SIZE as i128),
        ("AT_RSEQ_ALIGN", auxv::AT_RSEQ_ALIGN as i128),
        ("AT_KTLS_FEATURE_SIZE", auxv::AT_KTLS_FEATURE_SIZE as i128),
        ("AT_KTLS_ALIGN", auxv::AT_KTLS_ALIGN as i128),
        ("AT_HWCAP2", auxv::AT_HWCAP2 as i128),
        ("HWCAP2_FSGSBASE", auxv::HWCAP2_FSGSBASE as i128),
        ("RSEQ_SIG", rseq::RSEQ_SIG as i128),
        ("ORIG_RSEQ_SIZE", rseq::ORIG_RSEQ_SIZE as i128),
        ("RSEQ_FEATURE_SIZE", rseq::RSEQ_FEATURE_SIZE as i128),
        ("RSEQ_ALLOC_ALIGN", rseq::RSEQ_ALLOC_ALIGN as i128),
        (
            "RSEQ_CPU_ID_UNINITIALIZED",
            rseq::RSEQ_CPU_ID_UNINITIALIZED as i128,
        ),
        ("RSEQ_FLAG_UNREGISTER", RseqFlags::UNREGISTER.bits() as i128),
        (
            "RSEQ_FLAG_SLICE_EXT_DEFAULT_ON",
            RseqFlags::SLICE_EXT_DEFAULT_ON.bits() as i128,
        ),
        ("RSEQ_FLAG_KTLS", ktls::RSEQ_FLAG_KTLS as i128),
        ("CLONE_THREAD", CloneFlags::THREAD.bits() as i128),
        ("CLONE_SETTLS", CloneFlags::SETTLS.bits() as i128),
        ("CLONE_VFORK", CloneFlags::VFORK.bits() as i128),
        ("CLONE_RSEQ_KTLS", CLONE_RSEQ_KTLS as i128),
        ("KTLS_ALIGN", ktls::KTLS_ALIGN as i128),
        ("KTLS_BASE", ktls::KTLS_BASE as i128),
        ("KTLS_MAX_LEVEL", ktls::MAX_LEVEL as i128),
        ("KTLS_FEATURE_SIZE_LEVEL_1", f(1)),
        ("KTLS_FEATURE_SIZE_LEVEL_2", f(2)),
        ("KTLS_AREA_SIZE", size_of::<KtlsArea>() as i128),
        ("KTLS_LIVE", ktls::KTLS_LIVE as i128),
        ("VVAR_SIZE", vvar::VVAR_SIZE as i128),
        ("VVAR_OFFSET_FROM_VDSO", vvar::VVAR_OFFSET_FROM_VDSO as i128),
    ])
}

#[test]
fn field_table_matches_the_crate() {
    let rows = table(
        &spec(),
        "| field | offset | size | level | written by kernel when |",
    );
    let spec_fields: Vec<(String, u32, u32, u32, String)> = rows
        .iter()
        .map(|r| {
            (
                unquote(&r[0]),
                number(&r[1]) as u32,
                number(&r[2]) as u32,
                number(&r[3]) as u32,
                unquote(&r[4]),
            )
        })
        .collect();
    let crate_fields: Vec<(String, u32, u32, u32, String)> = FIELDS
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                f.offset,
                f.size,
                f.level,
                f.when.to_string(),
            )
        })
        .collect();
    assert_eq!(spec_fields, crate_fields);
}

#[test]
fn numbers_table_matches_the_crate() {
    let known = crate_numbers();
    let rows = table(&spec(), "| constant | value |");
    let mut seen = BTreeMap::new();
    for r in &rows {
        let name = unquote(&r[0]);
        let Some(&want) = known.get(name.as_str()) else {
            panic!("spec quotes {name}, which the test does not know: add it to crate_numbers");
        };
        assert_eq!(number(&r[1]), want, "{name}");
        assert!(seen.insert(name.clone(), ()).is_none(), "{name} twice");
    }
    for name in known.keys() {
        assert!(seen.contains_key(*name), "the numbers table lacks {name}");
    }
}

#[test]
fn c_examples_use_the_crate_numbers() {
    let spec = spec();
    let known = crate_numbers();
    let mut defines = 0;
    for line in spec.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some(&want) = known.get(name) {
            assert_eq!(number(value), want, "#define {name}");
            defines += 1;
        }
    }
    assert!(
        defines >= 5,
        "the C examples should define the KTLS numbers"
    );

    let mut offsets = 0;
    for line in spec.lines() {
        let Some(rest) = line.trim().strip_prefix("_Static_assert(") else {
            continue;
        };
        if let Some(rest) = rest.strip_prefix("offsetof(struct ktls_area, ") {
            let (name, rest) = rest.split_once(')').unwrap();
            let value = rest
                .trim()
                .strip_prefix("==")
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            let field = ktls::field(name).unwrap_or_else(|| panic!("no KTLS field {name}"));
            assert_eq!(number(value), field.offset as i128, "offsetof {name}");
            offsets += 1;
        } else if let Some(rest) = rest.strip_prefix("sizeof(struct ktls_area)") {
            let value = rest
                .trim()
                .strip_prefix("==")
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            assert_eq!(number(value), size_of::<KtlsArea>() as i128, "sizeof");
        }
    }
    assert!(
        offsets >= 5,
        "the C struct should be checked against the field offsets"
    );
}

#[test]
fn vvar_table_matches_the_crate() {
    let rows = table(&spec(), "| field | offset | size | meaning |");
    let want: Vec<(&str, usize, usize)> = vec![
        ("seq", offset_of!(Vvar, seq), 4),
        ("version", offset_of!(Vvar, version), 4),
        ("clock_mode", offset_of!(Vvar, clock_mode), 4),
        ("tsc_shift", offset_of!(Vvar, tsc_shift), 4),
        ("tsc_mult", offset_of!(Vvar, tsc_mult), 8),
        ("base_tsc", offset_of!(Vvar, base_tsc), 8),
        ("base_mono_ns", offset_of!(Vvar, base_mono_ns), 8),
        (
            "realtime_offset_ns",
            offset_of!(Vvar, realtime_offset_ns),
            8,
        ),
        ("ktls_offset", offset_of!(Vvar, ktls_offset), 8),
        ("ktls_feature_size", offset_of!(Vvar, ktls_feature_size), 4),
        ("ktls_enabled", offset_of!(Vvar, ktls_enabled), 4),
        ("ktls_level", offset_of!(Vvar, ktls_level), 4),
        ("hwcap2", offset_of!(Vvar, hwcap2), 4),
    ];
    let got: Vec<(String, usize, usize)> = rows
        .iter()
        .map(|r| {
            (
                unquote(&r[0]),
                number(&r[1]) as usize,
                number(&r[2]) as usize,
            )
        })
        .collect();
    let want: Vec<(String, usize, usize)> = want
        .into_iter()
        .map(|(n, o, s)| (n.to_string(), o, s))
        .collect();
    assert_eq!(got, want);
}

fn errno_named(name: &str) -> Errno {
    (1..200)
        .map(Errno)
        .find(|e| e.name() == Some(name))
        .unwrap_or_else(|| panic!("{name} is not an errno the crate knows"))
}

#[test]
fn error_tables_name_real_errnos() {
    let spec = spec();
    let reg = table(&spec, "| step | condition | error |");
    for (i, r) in reg.iter().enumerate() {
        assert_eq!(number(&r[0]), i as i128 + 1, "steps are numbered in order");
        let name = unquote(&r[2]);
        errno_named(&name);
    }
    let clone = table(&spec, "| condition | error |");
    for r in &clone {
        let name = unquote(&r[1]);
        let name = name.split_whitespace().next().unwrap();
        errno_named(name);
    }
}

/// The registration table's steps, replayed against the crate's checker: each step's error is
/// the one `check_rseq_call` gives for a call that fails exactly there.
#[test]
fn registration_table_matches_the_checker() {
    use ktls::{check_rseq_call, Caller, ProcessKtls, ThreadReg};
    use rseq::Registration;

    let spec = spec();
    let errors: Vec<Errno> = table(&spec, "| step | condition | error |")
        .iter()
        .map(|r| errno_named(&unquote(&r[2])))
        .collect();

    const TP: u64 = 0x7f00_0000_1000;
    const AREA: u64 = TP - 128;
    const K: u32 = ktls::RSEQ_FLAG_KTLS;
    const U: u32 = 1;
    let sig = rseq::RSEQ_SIG;
    let one = Caller {
        fs_base: TP,
        threads: 1,
    };
    let many = Caller {
        fs_base: TP,
        threads: 2,
    };
    let p = Some(ProcessKtls {
        offset: -128,
        len: 128,
        sig,
    });
    let live = Some(ThreadReg {
        reg: Registration {
            addr: AREA,
            len: 128,
            sig,
        },
        ktls: true,
    });
    let no_tp = Caller {
        fs_base: 0,
        threads: 1,
    };
    // (step, result); steps 6, 17 and 18 are the kernel's memory accesses.
    let cases = [
        (1, check_rseq_call(AREA, 128, K | 4, sig, None, None, one)),
        (2, check_rseq_call(AREA, 128, K | U | 2, sig, live, p, one)),
        (3, check_rseq_call(AREA, 128, K | U, sig, None, p, one)),
        (4, check_rseq_call(AREA, 76, K | U, sig, live, p, one)),
        (5, check_rseq_call(AREA, 128, K | U, 0, live, p, one)),
        (7, check_rseq_call(AREA + 64, 128, K, sig, live, p, one)),
        (8, check_rseq_call(AREA, 128, K, 0, live, p, one)),
        (9, check_rseq_call(AREA, 128, K, sig, live, p, one)),
        (10, check_rseq_call(AREA, 75, K, sig, None, None, one)),
        (11, check_rseq_call(AREA + 32, 128, K, sig, None, None, one)),
        (12, check_rseq_call(AREA, 128, K, sig, None, None, no_tp)),
        (13, check_rseq_call(AREA - 64, 128, K, sig, None, p, many)),
        (14, check_rseq_call(AREA, 192, K, sig, None, p, many)),
        (15, check_rseq_call(AREA, 128, K, 0, None, p, many)),
        (16, check_rseq_call(AREA, 128, K, sig, None, None, many)),
    ];
    for (step, result) in cases {
        assert_eq!(result, Err(errors[step - 1]), "step {step}");
    }
    assert_eq!(errors[5], Errno::EFAULT);
    assert_eq!(errors[16], Errno::EFAULT);
    assert_eq!(errors[17], Errno::EFAULT);
    assert!(!rseq::access_ok(rseq::TASK_SIZE - 64, 128));
}
