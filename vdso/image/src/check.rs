//! The vDSO image checker: what the kernel maps must be a prelinked shared object it can map
//! as it is, and that glibc and musl can use.
//!
//! The kernel copies the file into memory at a page-aligned address and never relocates it, so
//! the image must have no relocations of any kind, exactly one loadable segment at file offset
//! and address 0 (so memory is the file), nothing writable, and no memory beyond the file
//! (no .bss). The libcs look symbols up by name and version through the dynamic section: glibc
//! with DT_GNU_HASH (or DT_HASH), musl with DT_HASH only, both with DT_VERSYM/DT_VERDEF. Tools
//! want the ELF note Linux's vDSO has and the unwind tables (PT_GNU_EH_FRAME).

use goblin::elf::dynamic::*;
use goblin::elf::header::{EM_X86_64, ET_DYN};
use goblin::elf::program_header::*;
use goblin::elf::section_header::*;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC, STT_NOTYPE};
use goblin::elf::Elf;

/// Relative relocations (SHT_RELR / DT_RELR), which goblin does not name.
const SHT_RELR: u32 = 19;
const DT_RELR: u64 = 36;

/// The version of Linux's x86_64 vDSO symbols.
pub const LINUX: &str = "LINUX_2.6";
/// The version of the KTLS getters.
pub const KTLS: &str = "KTLS_1";

/// Every symbol the vDSO must export, with its version (vdso/vdso.lds, spec/ktls.md section
/// 10), and nothing else.
pub const REQUIRED: &[(&str, &str)] = &[
    ("clock_gettime", LINUX),
    ("__vdso_clock_gettime", LINUX),
    ("gettimeofday", LINUX),
    ("__vdso_gettimeofday", LINUX),
    ("time", LINUX),
    ("__vdso_time", LINUX),
    ("clock_getres", LINUX),
    ("__vdso_clock_getres", LINUX),
    ("getcpu", LINUX),
    ("__vdso_getcpu", LINUX),
    ("__vdso_gettid", KTLS),
    ("__vdso_getpid", KTLS),
    ("__vdso_getuid", KTLS),
    ("__vdso_geteuid", KTLS),
    ("__vdso_getgid", KTLS),
    ("__vdso_getegid", KTLS),
    ("__vdso_ktls_gettid", KTLS),
    ("__vdso_ktls_getpid", KTLS),
    ("__vdso_ktls_getuid", KTLS),
    ("__vdso_ktls_geteuid", KTLS),
    ("__vdso_ktls_getgid", KTLS),
    ("__vdso_ktls_getegid", KTLS),
];

/// What a good image looks like, for reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Bytes of the file (and of the mapping, before rounding up to pages).
    pub size: usize,
    /// Each exported symbol: name, version, address relative to the image.
    pub symbols: Vec<(String, String, u64)>,
    /// The exception table (section `.ktls_extable`), sorted by load address.
    pub extable: Vec<ExtableEntry>,
}

/// The section holding the vDSO's exception table (vdso/src/ktls.rs).
pub const EXTABLE_SECTION: &str = ".ktls_extable";

/// One exception-table entry, as addresses relative to the image: a load that may fault, and
/// where the kernel resumes it when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExtableEntry {
    pub load: u64,
    pub fixup: u64,
}

/// Decodes the exception table of `image`: entries of two little-endian i32s, each relative to
/// its own address. Sorted by load address; every address must be inside an executable
/// section, and a load must not appear twice.
pub fn extable(image: &[u8]) -> Result<Vec<ExtableEntry>, String> {
    let elf = Elf::parse(image).map_err(|e| format!("not a parsable ELF file: {e}"))?;
    extable_of(&elf, image)
}

/// Whether `addr` lies in an executable section.
fn exec_at(elf: &Elf, addr: u64) -> bool {
    elf.section_headers.iter().any(|s| {
        s.sh_flags & SHF_EXECINSTR as u64 != 0 && addr >= s.sh_addr && addr < s.sh_addr + s.sh_size
    })
}

fn extable_of(elf: &Elf, image: &[u8]) -> Result<Vec<ExtableEntry>, String> {
    let s = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(EXTABLE_SECTION))
        .ok_or(format!("no {EXTABLE_SECTION} section"))?;
    if s.sh_size == 0 || s.sh_size % 8 != 0 || s.sh_addr % 4 != 0 {
        return Err(format!(
            "{EXTABLE_SECTION} is {} bytes at {:#x}: want a nonzero multiple of 8, 4-aligned",
            s.sh_size, s.sh_addr
        ));
    }
    let bytes = usize::try_from(s.sh_offset)
        .ok()
        .zip(usize::try_from(s.sh_size).ok())
        .and_then(|(off, len)| image.get(off..off.checked_add(len)?))
        .ok_or(format!("{EXTABLE_SECTION} lies outside the file"))?;
    let mut entries = Vec::new();
    for (i, e) in bytes.chunks_exact(8).enumerate() {
        let at = s.sh_addr + 8 * i as u64;
        let rel = |k: usize, base: u64| {
            let v = i32::from_le_bytes(e[k..k + 4].try_into().expect("4 bytes"));
            base.wrapping_add(v as i64 as u64)
        };
        let entry = ExtableEntry {
            load: rel(0, at),
            fixup: rel(4, at + 4),
        };
        if !exec_at(elf, entry.load) || !exec_at(elf, entry.fixup) {
            return Err(format!(
                "{EXTABLE_SECTION} entry {i} ({:#x} -> {:#x}) points outside the code",
                entry.load, entry.fixup
            ));
        }
        entries.push(entry);
    }
    entries.sort();
    if entries.windows(2).any(|w| w[0].load == w[1].load) {
        return Err(format!("{EXTABLE_SECTION} names a load twice"));
    }
    Ok(entries)
}

/// Checks a vDSO image; `Err` lists every problem found.
pub fn check(image: &[u8]) -> Result<Summary, Vec<String>> {
    let elf = match Elf::parse(image) {
        Ok(elf) => elf,
        Err(e) => return Err(vec![format!("not a parsable ELF file: {e}")]),
    };
    let mut bad = Vec::new();
    let mut fail = |s: String| bad.push(s);

    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
        fail("not a 64-bit little-endian x86_64 file".into());
    }
    if elf.header.e_type != ET_DYN {
        fail(format!("e_type {}, want ET_DYN", elf.header.e_type));
    }

    // Segments.
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .collect();
    if loads.len() != 1 {
        fail(format!(
            "{} PT_LOAD segments, want exactly one",
            loads.len()
        ));
    }
    for p in &elf.program_headers {
        if p.p_flags & PF_W != 0 {
            fail(format!(
                "writable segment {} at {:#x}",
                pt_to_str(p.p_type),
                p.p_vaddr
            ));
        }
        if matches!(p.p_type, PT_INTERP | PT_TLS) {
            fail(format!("segment {} is not allowed", pt_to_str(p.p_type)));
        }
    }
    let load = loads.first().copied();
    if let Some(l) = load {
        if l.p_offset != 0 || l.p_vaddr != 0 {
            fail(format!(
                "PT_LOAD at offset {:#x}, address {:#x}: want both 0 (memory = file)",
                l.p_offset, l.p_vaddr
            ));
        }
        if l.p_flags & (PF_R | PF_X) != PF_R | PF_X {
            fail("PT_LOAD is not readable and executable".into());
        }
        if l.p_memsz != l.p_filesz {
            fail(format!(
                "PT_LOAD has {:#x} bytes in memory but {:#x} in the file (.bss)",
                l.p_memsz, l.p_filesz
            ));
        }
        if l.p_offset.saturating_add(l.p_filesz) > image.len() as u64 {
            fail("PT_LOAD extends past the end of the file".into());
        }
    }
    let in_load = |addr: u64, len: u64| {
        load.is_some_and(|l| addr >= l.p_vaddr && addr + len <= l.p_vaddr + l.p_memsz)
    };
    for (ty, name) in [
        (PT_DYNAMIC, "PT_DYNAMIC"),
        (PT_NOTE, "PT_NOTE"),
        (PT_GNU_EH_FRAME, "PT_GNU_EH_FRAME"),
    ] {
        match elf.program_headers.iter().find(|p| p.p_type == ty) {
            None => fail(format!("no {name} segment")),
            Some(p) if !in_load(p.p_vaddr, p.p_memsz) => {
                fail(format!("{name} lies outside the PT_LOAD"))
            }
            Some(_) => {}
        }
    }
    let linux_note = elf.iter_note_headers(image).is_some_and(|notes| {
        notes
            .filter_map(Result::ok)
            .any(|n| n.name == "Linux" && n.n_type == 0 && n.desc.len() == 4)
    });
    if !linux_note {
        fail("no Linux version note (name \"Linux\", type 0) in PT_NOTE".into());
    }

    // Sections.
    let section = |name: &str| {
        elf.section_headers
            .iter()
            .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
    };
    for name in [
        ".hash",
        ".gnu.hash",
        ".dynsym",
        ".dynstr",
        ".gnu.version",
        ".gnu.version_d",
        ".dynamic",
        ".eh_frame",
        ".eh_frame_hdr",
        ".text",
    ] {
        match section(name) {
            None => fail(format!("no {name} section")),
            Some(s) if s.sh_size == 0 => fail(format!("{name} is empty")),
            Some(_) => {}
        }
    }
    for s in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(s.sh_name).unwrap_or("?");
        if matches!(s.sh_type, SHT_REL | SHT_RELA | SHT_RELR) {
            fail(format!("relocation section {name}"));
        }
        // .dynamic is writable by convention (ld.so may write DT_DEBUG); it sits in the R+X
        // segment, which is what counts.
        if s.sh_flags & SHF_ALLOC as u64 != 0
            && s.sh_flags & SHF_WRITE as u64 != 0
            && s.sh_size != 0
            && name != ".dynamic"
        {
            fail(format!("writable section {name} (data, .bss or a GOT)"));
        }
        if s.sh_flags & SHF_ALLOC as u64 != 0 && !in_load(s.sh_addr, s.sh_size) {
            fail(format!("allocated section {name} lies outside the PT_LOAD"));
        }
    }

    // The dynamic section.
    let tags: Vec<u64> = elf
        .dynamic
        .as_ref()
        .map(|d| d.dyns.iter().map(|d| d.d_tag).collect())
        .unwrap_or_default();
    for (tag, name) in [
        (DT_HASH, "DT_HASH"),
        (DT_GNU_HASH, "DT_GNU_HASH"),
        (DT_SYMTAB, "DT_SYMTAB"),
        (DT_STRTAB, "DT_STRTAB"),
        (DT_VERSYM, "DT_VERSYM"),
        (DT_VERDEF, "DT_VERDEF"),
        (DT_SONAME, "DT_SONAME"),
    ] {
        if !tags.contains(&tag) {
            fail(format!("no {name} in the dynamic section"));
        }
    }
    for (tag, name) in [
        (DT_REL, "DT_REL"),
        (DT_RELA, "DT_RELA"),
        (DT_RELR, "DT_RELR"),
        (DT_JMPREL, "DT_JMPREL"),
        (DT_TEXTREL, "DT_TEXTREL"),
        (DT_NEEDED, "DT_NEEDED"),
        (DT_INIT, "DT_INIT"),
        (DT_FINI, "DT_FINI"),
        (DT_INIT_ARRAY, "DT_INIT_ARRAY"),
        (DT_FINI_ARRAY, "DT_FINI_ARRAY"),
    ] {
        if tags.contains(&tag) {
            fail(format!("{name} in the dynamic section"));
        }
    }
    let relocs = elf.dynrelas.len() + elf.dynrels.len() + elf.pltrelocs.len();
    if relocs != 0 {
        fail(format!("{relocs} dynamic relocation entries"));
    }

    // Symbols and their versions.
    let mut versions = std::collections::HashMap::new();
    if let Some(vd) = &elf.verdef {
        for d in vd.iter() {
            if let Some(aux) = d.iter().next() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vda_name) {
                    versions.insert(d.vd_ndx, name.to_string());
                }
            }
        }
    }
    let mut symbols = Vec::new();
    for (i, sym) in elf.dynsyms.iter().enumerate().skip(1) {
        let name = elf.dynstrtab.get_at(sym.st_name).unwrap_or("?").to_string();
        let versym = elf.versym.as_ref().and_then(|v| v.get_at(i));
        let version = match versym {
            None => {
                fail(format!("{name} has no version entry"));
                continue;
            }
            Some(v) if v.is_local() || v.is_global() => {
                fail(format!("{name} is unversioned"));
                continue;
            }
            Some(v) if v.is_hidden() => {
                fail(format!("{name} has a hidden (non-default) version"));
                continue;
            }
            Some(v) => versions
                .get(&v.version())
                .cloned()
                .unwrap_or_else(|| format!("<undefined version {}>", v.version())),
        };
        if !REQUIRED.iter().any(|&(n, _)| n == name) {
            fail(format!("unexpected exported symbol {name}@{version}"));
        }
        if sym.st_shndx == SHN_UNDEF as usize {
            fail(format!("{name} is undefined"));
        }
        if !matches!(sym.st_bind(), STB_GLOBAL | STB_WEAK)
            || !matches!(sym.st_type(), STT_FUNC | STT_NOTYPE)
        {
            fail(format!("{name} is not a global function"));
        }
        if !exec_at(&elf, sym.st_value) {
            fail(format!(
                "{name} at {:#x} is not in an executable section",
                sym.st_value
            ));
        }
        symbols.push((name, version, sym.st_value));
    }
    for &(name, version) in REQUIRED {
        match symbols.iter().find(|(n, _, _)| n == name) {
            None => fail(format!("missing symbol {name}@{version}")),
            Some((_, v, _)) if v != version => {
                fail(format!("{name} has version {v}, want {version}"))
            }
            Some(_) => {}
        }
    }

    let extable = extable_of(&elf, image).unwrap_or_else(|e| {
        fail(e);
        Vec::new()
    });

    if bad.is_empty() {
        Ok(Summary {
            size: image.len(),
            symbols,
            extable,
        })
    } else {
        Err(bad)
    }
}
