//! Structure-aware property fuzzing of the loader, as ordinary tests (cargo-fuzz needs a nightly
//! toolchain and its own tool; these run with `cargo test`).
//!
//! * `plan`: random program header tables (overlapping, adjacent, huge, misaligned and
//!   wrapping segments; PT_TLS, PT_INTERP, PT_PHDR, PT_GNU_STACK, PT_DYNAMIC and unknown
//!   entries; ET_EXEC and ET_DYN; entry points in and out of the segments; files cut short) are
//!   given to `plan`, which must never panic; every accepted plan must pass `check_plan` (pages
//!   sorted, page aligned, disjoint, inside user space, exactly the segments' pages with the
//!   union of their protections; copies exactly the segments' file bytes, inside the pages and
//!   the file, disjoint; entry, phdr, TLS and brk consistent) and load into simulated memory
//!   with the file bytes where they belong and zeros elsewhere; the same input gives the same
//!   plan.
//! * `build_stack`/`parse_stack`: random argument vectors, environments, auxiliary vectors and
//!   stack tops round-trip exactly, and images with random corruption never panic the parser.
//!
//! Each runs for about [`BUDGET`]. `KTLS_LOADER_FUZZ_SEED` repeats a run (the seed is printed);
//! `KTLS_LOADER_FUZZ_MS` changes the budget. Inputs that once broke an invariant are kept in
//! `regressions` below.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ktls_abi::auxv::*;
use ktls_abi::mm::MMAP_MIN_ADDR;
use ktls_abi::{Errno, USER_SPACE_END};
use ktls_loader::{
    build_stack_with_limit, parse_stack, plan, LoadError, LoadPlan, StackArgs, MAX_PHDR_TABLE,
};

/// How long each fuzz loop runs by default.
const BUDGET: Duration = Duration::from_millis(2500);

fn budget() -> Duration {
    std::env::var("KTLS_LOADER_FUZZ_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(BUDGET)
}

fn seed(name: &str) -> u64 {
    let s = std::env::var("KTLS_LOADER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("note: {name}: seed {s} (KTLS_LOADER_FUZZ_SEED={s} repeats it)");
    s
}

impl Rng {
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Random ELF files.

const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;

/// Addresses near the interesting edges.
fn edge_addr(r: &mut Rng) -> u64 {
    let edges = [
        0,
        MMAP_MIN_ADDR - PAGE,
        MMAP_MIN_ADDR,
        0x400000,
        USER_SPACE_END - PAGE,
        USER_SPACE_END - 0x10_0000,
        USER_SPACE_END,
        u64::MAX - 0xfff,
        u64::MAX,
        1 << 63,
        PIE_BASE,
    ];
    let base = r.pick(&edges);
    match r.below(3) {
        0 => base,
        1 => base.wrapping_add(r.below(0x4000)),
        _ => base.wrapping_sub(r.below(0x4000)),
    }
}

fn size(r: &mut Rng) -> u64 {
    match r.below(8) {
        0 => 0,
        1 => r.below(16),
        2..=4 => r.below(0x3000),
        5 => r.below(0x10_0000),
        6 => r.pick(&[
            u64::MAX,
            u64::MAX - 0xfff,
            1 << 47,
            1 << 40,
            0x7fff_ffff_ffff,
        ]),
        _ => r.next(),
    }
}

/// A random but mostly plausible executable: a few PT_LOADs laid out upward from a base (with
/// overlaps, gaps, misalignment and edge values mixed in), other headers, and a file long
/// enough for most segments.
fn random_elf(r: &mut Rng) -> Spec {
    let mut s = if r.chance(50) {
        Spec::exec()
    } else {
        Spec::pie()
    };
    s.phdrs.clear();
    let pie = s.e_type == ET_DYN;
    let mut vaddr = if pie {
        if r.chance(80) {
            0
        } else {
            r.below(0x100) * PAGE
        }
    } else if r.chance(85) {
        0x400000
    } else {
        edge_addr(r) & !(PAGE - 1)
    };
    let mut offset = 0u64;
    let nload = r.below(6);
    for i in 0..nload {
        let memsz = if r.chance(90) {
            1 + r.below(0x4000)
        } else {
            size(r)
        };
        let filesz = match r.below(10) {
            0 => 0,
            1 => memsz.wrapping_add(1 + r.below(0x100)), // filesz > memsz
            2 => size(r),
            _ => memsz.min(r.below(memsz.saturating_add(1)).max(1)),
        };
        // p_offset congruent to p_vaddr mod the page size, unless it is not.
        let mut poff = (offset & !(PAGE - 1)) | (vaddr & (PAGE - 1));
        if r.chance(5) {
            poff = poff.wrapping_add(1 + r.below(PAGE - 1));
        }
        if r.chance(3) {
            poff = size(r);
        }
        let flags = if r.chance(90) {
            r.pick(&[PF_R | PF_X, PF_R | PF_W, PF_R, PF_R | PF_W | PF_X])
        } else {
            r.next() as u32
        };
        let align = if r.chance(85) {
            PAGE
        } else {
            r.pick(&[0, 1, 8, 0x20_0000, 0x1001, 3, 1 << 63])
        };
        s.phdrs.push(Phdr {
            p_type: PT_LOAD,
            p_flags: flags,
            p_offset: poff,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: align,
        });
        offset = poff.wrapping_add(filesz.min(0x10_0000));
        // The next segment: after this one (maybe on the same page), overlapping it, or far.
        vaddr = match r.below(10) {
            0 => vaddr.wrapping_add(r.below(memsz.max(1))), // overlap
            1 => edge_addr(r),
            2 => vaddr.wrapping_add(memsz), // exactly adjacent, maybe mid-page
            _ => (vaddr.wrapping_add(memsz).wrapping_add(PAGE - 1) & !(PAGE - 1))
                .wrapping_add(r.below(4) * PAGE)
                .wrapping_add(if r.chance(20) { r.below(PAGE) } else { 0 }),
        };
        let _ = i;
    }
    // Other program headers, inside or outside the loaded memory.
    let loads: Vec<Phdr> = s.phdrs.clone();
    let inside = |r: &mut Rng| -> (u64, u64) {
        if let Some(l) = loads.get(r.below(loads.len().max(1) as u64) as usize) {
            let at = r.below(l.p_filesz.clamp(1, 0x1000));
            (l.p_vaddr.wrapping_add(at), l.p_offset.wrapping_add(at))
        } else {
            (edge_addr(r), size(r))
        }
    };
    for _ in 0..r.below(5) {
        let random_type = r.next() as u32;
        let p_type = r.pick(&[
            PT_TLS,
            PT_TLS,
            PT_PHDR,
            PT_GNU_STACK,
            PT_INTERP,
            PT_DYNAMIC,
            PT_NOTE,
            PT_NULL,
            0x6fff_fff0,
            random_type,
        ]);
        let (va, off) = if r.chance(80) {
            inside(r)
        } else {
            (edge_addr(r), size(r))
        };
        let filesz = if r.chance(80) {
            r.below(0x200)
        } else {
            size(r)
        };
        let memsz = if r.chance(80) {
            filesz + r.below(0x400)
        } else {
            size(r)
        };
        s.phdrs.push(Phdr {
            p_type,
            p_flags: r.pick(&[PF_R, PF_R | PF_W, PF_R | PF_W | PF_X, 0]),
            p_offset: off,
            p_vaddr: va,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: r.pick(&[0, 1, 8, 16, 64, 4096, 3, 1 << 40]),
        });
    }
    // Shuffle a little: PT_PHDR and friends are not always first.
    if s.phdrs.len() > 1 && r.chance(50) {
        let a = r.below(s.phdrs.len() as u64) as usize;
        let b = r.below(s.phdrs.len() as u64) as usize;
        s.phdrs.swap(a, b);
    }
    // Header fields.
    s.entry = match r.below(6) {
        0 => edge_addr(r),
        _ => inside(r).0,
    };
    if r.chance(10) {
        let random_off = size(r);
        s.phoff = r.pick(&[0, 1, 63, 0x1000, u64::MAX - 55, random_off]);
    }
    if r.chance(5) {
        s.phentsize = r.pick(&[0, 32, 55, 57, 64]);
    }
    if r.chance(5) {
        s.phnum = Some(r.pick(&[0, 1, 0xffff, (MAX_PHDR_TABLE / 56) as u16 + 1]));
    }
    // The file: long enough for every segment (capped), else cut somewhere.
    let needed = s
        .phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.p_offset.saturating_add(p.p_filesz))
        .chain([s.phoff.saturating_add(s.phdrs.len() as u64 * 56)])
        .max()
        .unwrap_or(64);
    s.len = if r.chance(85) {
        needed.clamp(64, 1 << 20) as usize
    } else {
        r.below(needed.clamp(1, 1 << 20)) as usize
    };
    s
}

/// Everything a plan promises, and that the file's bytes land where they belong.
fn check_accepted(file: &[u8], p: &LoadPlan, pie_base: u64) {
    check_plan(file, p, pie_base);
    assert!(
        !read_headers(file)
            .unwrap()
            .1
            .iter()
            .any(|ph| ph.p_type == PT_INTERP),
        "a file with PT_INTERP was accepted"
    );
    assert_eq!(plan(file, pie_base).as_ref(), Ok(p), "not deterministic");
    // Simulate small ones: copies land inside pages, and bytes after each copy up to the end
    // of its segment are zero unless another copy covers them.
    let pages: u64 = p.pages.iter().map(|r| (r.end - r.start) / PAGE).sum();
    if pages > 2048 {
        return;
    }
    let mem = Memory::load(file, p);
    for c in &p.copies {
        assert_eq!(
            mem.read(c.dest, c.len.min(4096)),
            file[c.file_offset..c.file_offset + c.len.min(4096)],
            "copy {c:?}"
        );
    }
    // A page no copy touches is all zero.
    for r in &p.pages {
        let mut a = r.start;
        while a < r.end {
            let touched = p
                .copies
                .iter()
                .any(|c| c.dest < a + PAGE && a < c.dest + c.len as u64);
            if !touched {
                assert!(
                    mem.read(a, PAGE as usize).iter().all(|&b| b == 0),
                    "page {a:#x}"
                );
            }
            a += PAGE;
        }
    }
}

fn check_refused(e: &LoadError) {
    let msg = e.to_string();
    // (A PT_INTERP path from the file is quoted in its message; that it stays one line is
    // `regressions::interpreter_cannot_forge_log_lines`, kept out of this loop so that it does
    // not hide what else the loop finds.)
    let one_line = !msg.contains('\n') || matches!(e, LoadError::DynamicallyLinked { .. });
    assert!(!msg.is_empty() && one_line, "{msg:?}");
    assert!(
        matches!(
            e.errno(),
            Errno::ENOEXEC | Errno::ENOMEM | Errno::E2BIG | Errno::EINVAL
        ),
        "{e}: {:?}",
        e.errno()
    );
}

fn run_plan(file: &[u8], pie_base: u64) -> bool {
    match plan(file, pie_base) {
        Ok(p) => {
            check_accepted(file, &p, pie_base);
            true
        }
        Err(e) => {
            check_refused(&e);
            false
        }
    }
}

#[test]
fn random_program_headers() {
    let mut r = Rng(seed("random_program_headers") | 1);
    let start = Instant::now();
    let (mut runs, mut accepted) = (0u64, 0u64);
    while start.elapsed() < budget() || runs < 2000 {
        let spec = random_elf(&mut r);
        let file = spec.bytes();
        let random_base = r.next() & !(PAGE - 1);
        let base = if r.chance(90) {
            PIE_BASE
        } else {
            r.pick(&[0, PAGE, 1 << 46, USER_SPACE_END - PAGE, random_base])
        };
        let pie_base_ok = base % PAGE == 0;
        let outcome = std::panic::catch_unwind(|| run_plan(&file, base));
        match outcome {
            Ok(ok) => accepted += u64::from(ok),
            Err(_) => panic!(
                "plan or an invariant failed (base {base:#x}, pie_base aligned: {pie_base_ok}) \
                 for {spec:#?}"
            ),
        }
        runs += 1;
    }
    eprintln!("note: random_program_headers: {runs} files, {accepted} accepted");
    // The generator must reach both sides, or it tests little.
    assert!(accepted * 50 > runs, "only {accepted} of {runs} accepted");
    assert!(accepted < runs, "nothing refused");
}

/// Mutations of real executables (when a compiler is around): header fields overwritten with
/// edge values, program headers duplicated or dropped, the file cut.
#[test]
fn mutated_real_executables() {
    let src = "__thread int t = 1; int d = 2; char b[5000];\n\
               int main(void) { return t + d + b[4000]; }\n";
    let samples: Vec<Vec<u8>> = [
        ("musl-gcc", &["-static", "-Os"][..], "pfuzz-musl"),
        ("gcc", &["-static-pie", "-Os"][..], "pfuzz-gcc-pie"),
    ]
    .iter()
    .filter_map(|(cc, flags, name)| compile(cc, flags, src, name))
    .map(|p| read(&p))
    .chain([Spec::exec().bytes(), Spec::pie().bytes()])
    .collect();
    let mut r = Rng(seed("mutated_real_executables") | 1);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget() || runs < 2000 {
        let mut file = samples[r.below(samples.len() as u64) as usize].clone();
        let Some((ehdr, phdrs)) = read_headers(&file) else {
            continue;
        };
        let n = phdrs.len() as u64;
        for _ in 0..1 + r.below(3) {
            let i = r.below(n.max(1));
            let at = (ehdr.e_phoff + i * 56) as usize;
            let field = r.pick(&[4usize, 8, 16, 32, 40, 48, 0]);
            let v: u64 = match r.below(4) {
                0 => edge_addr(&mut r),
                1 => size(&mut r),
                2 => r.next(),
                _ => u64::from_le_bytes(file[at + 8..at + 16].try_into().unwrap())
                    .wrapping_add(r.below(0x3000))
                    .wrapping_sub(0x1000),
            };
            let width = if field == 0 || field == 4 { 4 } else { 8 };
            if at + field + width <= file.len() {
                file[at + field..at + field + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            if field == 0 && r.chance(50) && at + 4 <= file.len() {
                let t = r.pick(&[PT_LOAD, PT_TLS, PT_INTERP, PT_PHDR, PT_GNU_STACK, PT_NULL]);
                file[at..at + 4].copy_from_slice(&t.to_le_bytes());
            }
        }
        if r.chance(10) {
            let cut = r.below(file.len() as u64) as usize;
            file.truncate(cut);
        }
        let base = if r.chance(90) { PIE_BASE } else { 1 << 46 };
        if std::panic::catch_unwind(|| run_plan(&file, base)).is_err() {
            let path = tmpdir().join("fuzz_plan-crash.elf");
            std::fs::write(&path, &file).unwrap();
            panic!(
                "plan or an invariant failed on a mutated executable (base {base:#x}), saved \
                 at {}",
                path.display()
            );
        }
        runs += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Stacks.

fn random_bytes(r: &mut Rng, max: u64) -> Vec<u8> {
    let len = match r.below(10) {
        0 => 0,
        1 => max,
        _ => r.below(max + 1),
    };
    // Strings never contain NUL (they are C strings).
    (0..len).map(|_| 1 + (r.next() % 255) as u8).collect()
}

#[test]
fn stack_round_trips() {
    let mut r = Rng(seed("stack_round_trips") | 1);
    let start = Instant::now();
    let (mut runs, mut built) = (0u64, 0u64);
    while start.elapsed() < budget() || runs < 2000 {
        let argv: Vec<Vec<u8>> = (0..r.below(12))
            .map(|_| random_bytes(&mut r, 300))
            .collect();
        let envp: Vec<Vec<u8>> = (0..r.below(12))
            .map(|_| random_bytes(&mut r, 300))
            .collect();
        let execfn = random_bytes(&mut r, 200);
        let platform = if r.chance(80) {
            b"x86_64".to_vec()
        } else {
            random_bytes(&mut r, 40)
        };
        let mut auxv: Vec<(u64, u64)> = (0..r.below(20))
            .map(|_| {
                let random_key = r.below(64) + 1;
                let key = r.pick(&[
                    AT_HWCAP,
                    AT_PAGESZ,
                    AT_PHDR,
                    AT_SECURE,
                    AT_HWCAP2,
                    AT_ENTRY,
                    AT_UID,
                    0x4b54_4c01,
                    random_key,
                ]);
                (key, r.next())
            })
            .filter(|(k, _)| !matches!(*k, AT_NULL | AT_RANDOM | AT_EXECFN | AT_PLATFORM))
            .collect();
        if r.chance(3) {
            auxv.push((r.pick(&[AT_NULL, AT_RANDOM, AT_EXECFN, AT_PLATFORM]), 1));
        }
        let mut random = [0u8; 16];
        random.iter_mut().for_each(|b| *b = r.next() as u8);
        let top = match r.below(6) {
            0 => edge_addr(&mut r) & !15,
            1 => MMAP_MIN_ADDR + r.below(0x4000),
            _ => USER_SPACE_END - r.below(1 << 30) * 16,
        };
        let limit = if r.chance(80) {
            1 << 21
        } else {
            r.below(1 << 14)
        };
        let argv_refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let envp_refs: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
        let args = StackArgs {
            argv: &argv_refs,
            envp: &envp_refs,
            execfn: &execfn,
            platform: &platform,
            random,
            auxv: &auxv,
        };
        runs += 1;
        let img = match build_stack_with_limit(top, &args, limit) {
            Ok(img) => img,
            Err(e) => {
                check_refused(&e);
                continue;
            }
        };
        built += 1;
        let ctx = || format!("top {top:#x}, limit {limit}, argv {argv:?}, envp {envp:?}");
        assert_eq!(img.sp % 16, 0, "{}", ctx());
        assert_eq!(img.sp + img.bytes.len() as u64, top, "{}", ctx());
        assert!(img.sp >= MMAP_MIN_ADDR, "{}", ctx());
        assert!(
            img.arg_start <= img.arg_end
                && img.arg_end == img.env_start
                && img.env_start <= img.env_end
                && img.env_end <= top,
            "{}",
            ctx()
        );
        let parsed =
            parse_stack(&img.bytes, img.sp, top).unwrap_or_else(|e| panic!("{e}: {}", ctx()));
        assert_eq!(parsed.argv, argv, "{}", ctx());
        assert_eq!(parsed.envp, envp, "{}", ctx());
        assert_eq!(parsed.random, Some(random), "{}", ctx());
        assert_eq!(
            parsed.execfn.as_deref(),
            Some(execfn.as_slice()),
            "{}",
            ctx()
        );
        for (k, v) in &auxv {
            assert!(parsed.auxv.contains(&(*k, *v)), "auxv {k} lost: {}", ctx());
        }
        // Corruption never panics the parser.
        let mut b = img.bytes.clone();
        for _ in 0..1 + r.below(4) {
            let i = r.below(b.len() as u64) as usize;
            b[i] = r.next() as u8;
        }
        let _ = parse_stack(&b, img.sp, top);
    }
    eprintln!("note: stack_round_trips: {runs} stacks, {built} built");
    assert!(built * 4 > runs, "only {built} of {runs} built");
}

// ---------------------------------------------------------------------------------------------
// Inputs that broke an invariant, found by the loops above (the hand-written edge cases live in
// malformed.rs). Add each new one here, with what it broke.

mod regressions {
    use super::*;

    /// random_program_headers: a PT_INTERP whose path holds a newline made a two-line message.
    /// The kernel writes exec errors to the log port, where a line starting with `@` is a
    /// control line (spec/boot-protocol.md), so a file could forge `@ktls exit 0` and make the
    /// runner report success for a program that never ran (seen on ktls: runner status 0 for
    /// this file). The path must be quoted so that the message stays one line.
    #[test]
    fn interpreter_cannot_forge_log_lines() {
        let mut s = Spec::exec();
        let path = b"/x\n@ktls exit 0\n\0";
        let at = s.len;
        s.len += path.len();
        s.patches.push((at, path.to_vec()));
        s.phdrs.push(Phdr {
            p_type: PT_INTERP,
            p_flags: PF_R,
            p_offset: at as u64,
            p_filesz: path.len() as u64,
            p_memsz: path.len() as u64,
            p_align: 1,
            ..Phdr::default()
        });
        let e = plan(&s.bytes(), PIE_BASE).expect_err("PT_INTERP is refused");
        assert!(matches!(e, LoadError::DynamicallyLinked { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            !msg.contains('\n') && !msg.contains('\r'),
            "the interpreter path reaches the message unquoted: {msg:?}"
        );
    }
}
