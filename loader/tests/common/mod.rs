//! Test helpers: an independent little ELF reader and writer, plan invariant checks, a
//! simulated user memory built from a plan, and C compilation.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ktls_abi::mm::MMAP_MIN_ADDR;
use ktls_abi::{PAGE_SIZE, USER_SPACE_END};
use ktls_loader::{LoadPlan, Prot};

/// Roughly where Linux puts a PIE (ELF_ET_DYN_BASE on x86_64).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
pub const PAGE: u64 = PAGE_SIZE as u64;

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PT_TLS: u32 = 7;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;

// ---------------------------------------------------------------------------------------------
// Independent ELF reading (deliberately not goblin, not the crate under test).

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Ehdr {
    pub e_type: u16,
    pub e_entry: u64,
    pub e_phoff: u64,
    pub e_phnum: u16,
}

fn rd<const N: usize>(b: &[u8], off: u64) -> Option<[u8; N]> {
    let off = usize::try_from(off).ok()?;
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
pub fn rd16(b: &[u8], off: u64) -> Option<u16> {
    rd(b, off).map(u16::from_le_bytes)
}
pub fn rd32(b: &[u8], off: u64) -> Option<u32> {
    rd(b, off).map(u32::from_le_bytes)
}
pub fn rd64(b: &[u8], off: u64) -> Option<u64> {
    rd(b, off).map(u64::from_le_bytes)
}

/// Reads the ELF header fields and program headers, with no validation beyond bounds.
pub fn read_headers(file: &[u8]) -> Option<(Ehdr, Vec<Phdr>)> {
    let ehdr = Ehdr {
        e_type: rd16(file, 16)?,
        e_entry: rd64(file, 24)?,
        e_phoff: rd64(file, 32)?,
        e_phnum: rd16(file, 56)?,
    };
    let mut phdrs = Vec::new();
    for i in 0..u64::from(ehdr.e_phnum) {
        let o = ehdr.e_phoff.checked_add(i * 56)?;
        phdrs.push(Phdr {
            p_type: rd32(file, o)?,
            p_flags: rd32(file, o + 4)?,
            p_offset: rd64(file, o + 8)?,
            p_vaddr: rd64(file, o + 16)?,
            p_filesz: rd64(file, o + 32)?,
            p_memsz: rd64(file, o + 40)?,
            p_align: rd64(file, o + 48)?,
        });
    }
    Some((ehdr, phdrs))
}

pub fn prot_of(p_flags: u32) -> Prot {
    let mut p = Prot::empty();
    if p_flags & PF_R != 0 {
        p |= Prot::READ;
    }
    if p_flags & PF_W != 0 {
        p |= Prot::WRITE;
    }
    if p_flags & PF_X != 0 {
        p |= Prot::EXEC;
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Hand-made ELF files.

/// A description of an ELF64 file; `bytes()` writes it. Program headers go at `phoff`.
#[derive(Debug, Clone)]
pub struct Spec {
    pub class: u8,
    pub data: u8,
    pub e_type: u16,
    pub machine: u16,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    /// Overrides the e_phnum written (default: phdrs.len()).
    pub phnum: Option<u16>,
    pub phdrs: Vec<Phdr>,
    pub len: usize,
    /// (offset, bytes) patches applied last.
    pub patches: Vec<(usize, Vec<u8>)>,
}

impl Spec {
    /// A valid static ET_EXEC: text at 0x400000 (file 0..0x1000, R+X, headers included),
    /// data at 0x401000 (file 0x1000..0x1010, memsz 0x2000, RW) with a PT_TLS inside, and
    /// PT_GNU_STACK RW.
    pub fn exec() -> Spec {
        Spec {
            class: 2,
            data: 1,
            e_type: ET_EXEC,
            machine: 62,
            entry: 0x400100,
            phoff: 64,
            phentsize: 56,
            phnum: None,
            phdrs: vec![
                Phdr {
                    p_type: PT_LOAD,
                    p_flags: PF_R | PF_X,
                    p_offset: 0,
                    p_vaddr: 0x400000,
                    p_filesz: 0x1000,
                    p_memsz: 0x1000,
                    p_align: 0x1000,
                },
                Phdr {
                    p_type: PT_LOAD,
                    p_flags: PF_R | PF_W,
                    p_offset: 0x1000,
                    p_vaddr: 0x401000,
                    p_filesz: 0x10,
                    p_memsz: 0x2000,
                    p_align: 0x1000,
                },
                Phdr {
                    p_type: PT_TLS,
                    p_flags: PF_R,
                    p_offset: 0x1000,
                    p_vaddr: 0x401000,
                    p_filesz: 0x8,
                    p_memsz: 0x20,
                    p_align: 8,
                },
                Phdr {
                    p_type: PT_GNU_STACK,
                    p_flags: PF_R | PF_W,
                    p_align: 16,
                    ..Phdr::default()
                },
            ],
            len: 0x1010,
            patches: vec![],
        }
    }

    /// The same layout as a static PIE linked at 0.
    pub fn pie() -> Spec {
        let mut s = Spec::exec();
        s.e_type = ET_DYN;
        s.entry -= 0x400000;
        for ph in &mut s.phdrs {
            if ph.p_vaddr != 0 {
                ph.p_vaddr -= 0x400000;
            }
        }
        s
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.len];
        let mut put = |off: u64, v: &[u8]| {
            let Ok(off) = usize::try_from(off) else {
                return;
            };
            for (i, b) in v.iter().enumerate() {
                if let Some(slot) = off.checked_add(i).and_then(|o| f.get_mut(o)) {
                    *slot = *b;
                }
            }
        };
        put(0, b"\x7fELF");
        put(4, &[self.class, self.data, 1]);
        put(16, &self.e_type.to_le_bytes());
        put(18, &self.machine.to_le_bytes());
        put(20, &1u32.to_le_bytes());
        put(24, &self.entry.to_le_bytes());
        put(32, &self.phoff.to_le_bytes());
        put(52, &64u16.to_le_bytes());
        put(54, &self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        put(56, &phnum.to_le_bytes());
        put(58, &64u16.to_le_bytes());
        for (i, ph) in self.phdrs.iter().enumerate() {
            // Headers that would wrap around are not written at all.
            if self.phoff.checked_add(i as u64 * 56 + 56).is_none() {
                continue;
            }
            let at = |k: u64| self.phoff + i as u64 * 56 + k;
            put(at(0), &ph.p_type.to_le_bytes());
            put(at(4), &ph.p_flags.to_le_bytes());
            put(at(8), &ph.p_offset.to_le_bytes());
            put(at(16), &ph.p_vaddr.to_le_bytes());
            put(at(24), &ph.p_vaddr.to_le_bytes());
            put(at(32), &ph.p_filesz.to_le_bytes());
            put(at(40), &ph.p_memsz.to_le_bytes());
            put(at(48), &ph.p_align.to_le_bytes());
        }
        for (off, b) in &self.patches {
            put(*off as u64, b);
        }
        f
    }
}

// ---------------------------------------------------------------------------------------------
// Plan checks.

/// Checks everything a plan promises, against an independent reading of `file`:
/// pages aligned, sorted, disjoint, exactly the union of the segments' pages, each range's
/// protection the union of the PF flags of the segments touching it; copies exactly the
/// segments' file bytes, inside pages, disjoint; entry, brk, bias, phent/phnum, stack flag.
/// Cheap enough for the fuzz loops (no per-page work).
pub fn check_plan(file: &[u8], plan: &LoadPlan, pie_base: u64) {
    let (ehdr, phdrs) = read_headers(file).expect("a planned file has readable headers");
    let loads: Vec<&Phdr> = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .collect();
    assert!(!loads.is_empty());
    let min_page = loads.iter().map(|p| p.p_vaddr & !(PAGE - 1)).min().unwrap();
    let bias = if ehdr.e_type == ET_DYN {
        pie_base.wrapping_sub(min_page)
    } else {
        0
    };
    assert_eq!(plan.load_bias, bias);
    assert_eq!(plan.is_pie, ehdr.e_type == ET_DYN);
    assert_eq!(plan.phent, 56);
    assert_eq!(plan.phnum, u64::from(ehdr.e_phnum));

    // Page extents per segment.
    let extents: Vec<(u64, u64, Prot)> = loads
        .iter()
        .map(|p| {
            let s = p.p_vaddr.wrapping_add(bias);
            let e = s + p.p_memsz;
            (
                s & !(PAGE - 1),
                (e + PAGE - 1) & !(PAGE - 1),
                prot_of(p.p_flags),
            )
        })
        .collect();

    // Pages: aligned, sorted, disjoint, inside user space.
    for r in &plan.pages {
        assert!(r.start < r.end, "{r:?}");
        assert_eq!(r.start % PAGE, 0, "{r:?}");
        assert_eq!(r.end % PAGE, 0, "{r:?}");
        assert!(r.start >= MMAP_MIN_ADDR && r.end <= USER_SPACE_END, "{r:?}");
    }
    for w in plan.pages.windows(2) {
        assert!(w[0].end <= w[1].start, "{:?}", w);
        if w[0].end == w[1].start {
            assert_ne!(w[0].prot, w[1].prot, "adjacent equal ranges not merged");
        }
    }
    // Coalesced pages == union of extents.
    assert_eq!(coalesce(plan.pages.iter().map(|r| (r.start, r.end))), {
        let mut v: Vec<(u64, u64)> = extents.iter().map(|e| (e.0, e.1)).collect();
        v.sort();
        coalesce(v.into_iter())
    });
    // Each range's protection is the union of the segments touching it.
    for r in &plan.pages {
        let want = extents
            .iter()
            .filter(|e| e.0 < r.end && r.start < e.1)
            .fold(Prot::empty(), |a, e| a | e.2);
        assert_eq!(r.prot, want, "{r:?}");
    }

    // Copies: exactly the file parts of the segments.
    let mut want: Vec<(u64, usize, usize)> = loads
        .iter()
        .filter(|p| p.p_filesz > 0)
        .map(|p| {
            (
                p.p_vaddr.wrapping_add(bias),
                p.p_offset as usize,
                p.p_filesz as usize,
            )
        })
        .collect();
    want.sort();
    let got: Vec<(u64, usize, usize)> = plan
        .copies
        .iter()
        .map(|c| (c.dest, c.file_offset, c.len))
        .collect();
    assert_eq!(got, want);
    for c in &plan.copies {
        assert!(c.file_offset + c.len <= file.len());
        assert!(covered(plan, c.dest, c.dest + c.len as u64), "{c:?}");
    }
    for w in plan.copies.windows(2) {
        assert!(
            w[0].dest + w[0].len as u64 <= w[1].dest,
            "copies overlap: {w:?}"
        );
    }

    // Entry, brk, TLS, stack.
    assert_eq!(plan.entry, ehdr.e_entry.wrapping_add(bias));
    assert!(covered(plan, plan.entry, plan.entry + 1));
    assert_eq!(plan.brk_start, plan.pages.last().unwrap().end);
    assert!(covered(
        plan,
        plan.phdr_addr,
        plan.phdr_addr + plan.phnum * 56
    ));
    if let Some(tls) = plan.tls {
        let ph = phdrs.iter().find(|p| p.p_type == PT_TLS).expect("PT_TLS");
        assert_eq!(tls.vaddr, ph.p_vaddr.wrapping_add(bias));
        assert_eq!((tls.filesz, tls.memsz), (ph.p_filesz, ph.p_memsz));
        assert!(tls.align.is_power_of_two());
        assert!(covered(plan, tls.vaddr, tls.vaddr + tls.filesz));
    } else {
        assert!(!phdrs.iter().any(|p| p.p_type == PT_TLS));
    }
    let gnu_stack = phdrs.iter().rev().find(|p| p.p_type == PT_GNU_STACK);
    assert_eq!(
        plan.stack_executable,
        gnu_stack.is_some_and(|p| p.p_flags & PF_X != 0)
    );
}

fn coalesce(ranges: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `[start, end)` lies inside the plan's pages (which may be several adjacent ranges).
pub fn covered(plan: &LoadPlan, start: u64, end: u64) -> bool {
    let mut at = start;
    for r in &plan.pages {
        if r.start <= at && at < r.end {
            at = r.end;
        }
        if at >= end {
            return true;
        }
    }
    start == end
        && plan
            .pages
            .iter()
            .any(|r| r.start <= start && start <= r.end)
}

// ---------------------------------------------------------------------------------------------
// Simulated user memory.

/// User memory after the kernel carried out a plan: the pages, zeroed, plus the copies.
pub struct Memory {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl Memory {
    pub fn load(file: &[u8], plan: &LoadPlan) -> Memory {
        let mut pages = BTreeMap::new();
        for r in &plan.pages {
            assert!(r.end - r.start <= 1 << 30, "too large to simulate");
            let mut p = r.start;
            while p < r.end {
                pages.insert(p, vec![0u8; PAGE_SIZE]);
                p += PAGE;
            }
        }
        let mut mem = Memory { pages };
        for c in &plan.copies {
            mem.write(c.dest, &file[c.file_offset..c.file_offset + c.len]);
        }
        mem
    }

    pub fn write(&mut self, addr: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = addr + i as u64;
            let page = self
                .pages
                .get_mut(&(a & !(PAGE - 1)))
                .expect("write to unmapped");
            page[(a % PAGE) as usize] = *b;
        }
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = addr + i;
                self.pages
                    .get(&(a & !(PAGE - 1)))
                    .expect("read of unmapped")[(a % PAGE) as usize]
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Building test programs.

pub fn tmpdir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ktls-loader-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles `src` with `cc flags`; None (with a printed note) if the compiler is missing or
/// cannot produce this kind of executable here.
pub fn compile(cc: &str, flags: &[&str], src: &str, name: &str) -> Option<PathBuf> {
    if !have(cc) {
        eprintln!("note: {cc} not found, skipping {name}");
        return None;
    }
    let dir = tmpdir();
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let res = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .output()
        .unwrap();
    if !res.status.success() {
        eprintln!(
            "note: `{cc} {}` failed, skipping {name}: {}",
            flags.join(" "),
            String::from_utf8_lossy(&res.stderr)
        );
        return None;
    }
    Some(out)
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
