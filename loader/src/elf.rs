//! ELF executable -> [`LoadPlan`].

use alloc::string::String;
use alloc::vec::Vec;

use goblin::container::Endian;
use goblin::elf::header::{
    EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_DYN, ET_EXEC, SELFMAG,
};
use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_PHDR, PT_TLS,
};
use goblin::elf64::header::{Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, SIZEOF_PHDR};
use ktls_abi::mm::{MMAP_MIN_ADDR, PROT_EXEC, PROT_READ, PROT_WRITE};
use ktls_abi::{PAGE_SIZE, USER_SPACE_END};

use crate::LoadError;

const PAGE: u64 = PAGE_SIZE as u64;

/// Size of one program header (AT_PHENT; the only e_phentsize accepted).
pub const PHDR_SIZE: usize = SIZEOF_PHDR;

/// Largest program header table accepted, in bytes. Linux's load_elf_phdrs refuses tables
/// above ELF_MIN_ALIGN (the page size) or 64 KiB, whichever is smaller: 73 headers.
pub const MAX_PHDR_TABLE: usize = if PAGE_SIZE < 65536 { PAGE_SIZE } else { 65536 };

/// How much of a PT_INTERP path is quoted in [`LoadError::DynamicallyLinked`].
const MAX_INTERP_QUOTE: usize = 256;

bitflags::bitflags! {
    /// Page protection of a mapped range. The bit values are Linux's PROT_* (mman-common.h),
    /// so `bits()` can be handed to anything that speaks mmap.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Prot: u64 {
        const READ = PROT_READ;
        const WRITE = PROT_WRITE;
        const EXEC = PROT_EXEC;
    }
}

impl Prot {
    /// The protection a segment with ELF `p_flags` asks for (PF_R/PF_W/PF_X; other bits
    /// ignored), as Linux's make_prot does without READ_IMPLIES_EXEC.
    pub fn from_elf_flags(p_flags: u32) -> Prot {
        let mut prot = Prot::empty();
        if p_flags & PF_R != 0 {
            prot |= Prot::READ;
        }
        if p_flags & PF_W != 0 {
            prot |= Prot::WRITE;
        }
        if p_flags & PF_X != 0 {
            prot |= Prot::EXEC;
        }
        prot
    }
}

/// A page-aligned range `[start, end)` of user memory to map with `prot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
}

/// `len` bytes of the file, starting at `file_offset`, belong at user address `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCopy {
    pub dest: u64,
    pub file_offset: usize,
    pub len: usize,
}

/// The PT_TLS segment: the initialization image of every thread's static TLS block.
///
/// `vaddr` is the image's user address (load bias applied); its first `filesz` bytes are
/// copied from there, the rest of `memsz` is zero. `align` is p_align with 0 normalized to 1;
/// it is always a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsTemplate {
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// What the kernel must do to load an executable. All addresses have the load bias applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    /// Where execution starts (AT_ENTRY and the initial RIP).
    pub entry: u64,
    /// Added (modulo 2^64) to every p_vaddr: 0 for ET_EXEC; for a static PIE,
    /// `pie_base - page_start(lowest p_vaddr)`.
    pub load_bias: u64,
    /// The file is a static PIE (ET_DYN).
    pub is_pie: bool,
    /// The memory to map: page aligned, sorted, non-overlapping; adjacent ranges with the same
    /// protection are merged. A page shared by two segments gets the union of their
    /// protections. Everything in these ranges is zero except what `copies` fills.
    pub pages: Vec<PageRange>,
    /// The file bytes to copy into `pages`, one per PT_LOAD with p_filesz > 0, sorted by
    /// `dest`, never overlapping. The rest of each segment (bss, including the tail of the last
    /// file page) is the zero fill of `pages`.
    pub copies: Vec<FileCopy>,
    /// AT_PHDR: the user address of the program header table.
    pub phdr_addr: u64,
    /// AT_PHENT.
    pub phent: u64,
    /// AT_PHNUM.
    pub phnum: u64,
    /// The PT_TLS segment, if any.
    pub tls: Option<TlsTemplate>,
    /// PT_GNU_STACK has PF_X. Without PT_GNU_STACK the stack is not executable (Linux's
    /// default for 64-bit programs on x86_64).
    pub stack_executable: bool,
    /// The initial program break: the page-aligned end of the highest segment.
    pub brk_start: u64,
}

/// A validated PT_LOAD with p_memsz > 0.
#[derive(Clone, Copy)]
struct Segment {
    index: usize,
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    prot: Prot,
}

impl Segment {
    /// End of the segment's memory (no overflow: checked when the segment was accepted).
    fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

fn page_down(v: u64) -> u64 {
    v & !(PAGE - 1)
}

fn page_up(v: u64) -> Option<u64> {
    Some(v.checked_add(PAGE - 1)? & !(PAGE - 1))
}

/// Validates an ELF executable and computes how to load it.
///
/// `pie_base` is where the lowest page of a static PIE (ET_DYN without PT_INTERP) goes; it
/// must be page aligned and is ignored for ET_EXEC. Never panics: every malformed input is a
/// [`LoadError`].
pub fn plan(file: &[u8], pie_base: u64) -> Result<LoadPlan, LoadError> {
    let hdr = parse_header(file)?;
    let phdrs = parse_phdrs(file, &hdr)?;

    // Refuse dynamically linked programs before anything else: that is the useful message.
    if let Some(ph) = phdrs.iter().find(|ph| ph.p_type == PT_INTERP) {
        return Err(LoadError::DynamicallyLinked {
            interpreter: interp_name(file, ph),
        });
    }

    let mut segments: Vec<Segment> = Vec::new();
    let mut tls_ph: Option<(usize, &ProgramHeader)> = None;
    let mut phdr_ph: Option<&ProgramHeader> = None;
    let mut stack_executable = false;
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type {
            PT_LOAD => {
                if let Some(seg) = check_load(file, index, ph)? {
                    segments.push(seg);
                }
            }
            PT_TLS => {
                if tls_ph.is_some() {
                    return Err(LoadError::BadTls {
                        reason: "more than one PT_TLS",
                    });
                }
                tls_ph = Some((index, ph));
            }
            PT_PHDR => phdr_ph = Some(ph),
            // As Linux: the last PT_GNU_STACK wins.
            PT_GNU_STACK => stack_executable = ph.p_flags & PF_X != 0,
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(LoadError::NoLoadSegment);
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].end() > pair[1].vaddr {
            let (a, b) = (pair[0].index, pair[1].index);
            return Err(LoadError::OverlappingSegments {
                first: a.min(b),
                second: a.max(b),
            });
        }
    }

    // Relocation: ET_EXEC stays where it is; a static PIE's lowest page moves to pie_base.
    let is_pie = hdr.e_type == ET_DYN;
    let (min_page, base) = if is_pie {
        if pie_base % PAGE != 0 {
            return Err(LoadError::BadPieBase { base: pie_base });
        }
        (page_down(segments[0].vaddr), pie_base)
    } else {
        (0, 0)
    };
    let load_bias = base.wrapping_sub(min_page);
    // Every address relocated below is >= min_page (it lies in or at the end of a segment).
    let reloc = |v: u64| v.checked_sub(min_page)?.checked_add(base);

    // Final page extents of each segment, checked against user space.
    let mut extents: Vec<(u64, u64, Prot)> = Vec::with_capacity(segments.len());
    for seg in &segments {
        let overflow = LoadError::AddressOverflow { index: seg.index };
        let start = reloc(seg.vaddr).ok_or(overflow.clone())?;
        let end = reloc(seg.end()).ok_or(overflow.clone())?;
        let end_page = page_up(end).ok_or(overflow)?;
        if start < MMAP_MIN_ADDR {
            return Err(LoadError::SegmentBelowMinAddr {
                index: seg.index,
                vaddr: start,
            });
        }
        if end_page > USER_SPACE_END {
            return Err(LoadError::SegmentOutsideUserSpace {
                index: seg.index,
                start,
                end,
            });
        }
        extents.push((page_down(start), end_page, seg.prot));
    }
    let pages = merge_pages(&extents);
    let brk_start = extents.iter().map(|e| e.1).max().unwrap_or(0);

    let mut copies = Vec::new();
    for seg in segments.iter().filter(|s| s.filesz > 0) {
        // reloc cannot fail here (checked above), and offset + filesz <= file.len().
        if let (Some(dest), Ok(file_offset), Ok(len)) = (
            reloc(seg.vaddr),
            usize::try_from(seg.offset),
            usize::try_from(seg.filesz),
        ) {
            copies.push(FileCopy {
                dest,
                file_offset,
                len,
            });
        }
    }

    let entry = segments
        .iter()
        .find(|s| s.vaddr <= hdr.e_entry && hdr.e_entry < s.end())
        .and_then(|_| reloc(hdr.e_entry))
        .ok_or(LoadError::EntryNotLoaded { entry: hdr.e_entry })?;

    let phdr_vaddr = phdr_vaddr(&hdr, phdr_ph, &segments)?;
    let phdr_addr = reloc(phdr_vaddr).ok_or(LoadError::PhdrsNotMapped)?;

    let tls = match tls_ph {
        None => None,
        Some((index, ph)) => Some(check_tls(index, ph, &segments, &reloc)?),
    };

    Ok(LoadPlan {
        entry,
        load_bias,
        is_pie,
        pages,
        copies,
        phdr_addr,
        phent: PHDR_SIZE as u64,
        phnum: u64::from(hdr.e_phnum),
        tls,
        stack_executable,
        brk_start,
    })
}

/// Checks e_ident, e_type, e_machine and the program header table's shape and position.
fn parse_header(file: &[u8]) -> Result<Header, LoadError> {
    if file.len() < SELFMAG || &file[..SELFMAG] != ELFMAG {
        return Err(LoadError::NotElf);
    }
    if file.len() < SIZEOF_EHDR {
        return Err(LoadError::Truncated {
            what: "the ELF header",
            needed: SIZEOF_EHDR as u64,
            file_len: file.len(),
        });
    }
    if file[EI_CLASS] != ELFCLASS64 {
        return Err(LoadError::NotElf64 {
            class: file[EI_CLASS],
        });
    }
    if file[EI_DATA] != ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian {
            data: file[EI_DATA],
        });
    }
    let hdr = Header::parse(file).map_err(|_| LoadError::Truncated {
        what: "the ELF header",
        needed: SIZEOF_EHDR as u64,
        file_len: file.len(),
    })?;
    if hdr.e_type != ET_EXEC && hdr.e_type != ET_DYN {
        return Err(LoadError::WrongType { e_type: hdr.e_type });
    }
    if hdr.e_machine != EM_X86_64 {
        return Err(LoadError::WrongMachine {
            machine: hdr.e_machine,
        });
    }
    if usize::from(hdr.e_phentsize) != PHDR_SIZE {
        return Err(LoadError::BadPhentsize {
            phentsize: hdr.e_phentsize,
        });
    }
    let table = usize::from(hdr.e_phnum) * PHDR_SIZE;
    if table == 0 || table > MAX_PHDR_TABLE {
        return Err(LoadError::BadPhnum { phnum: hdr.e_phnum });
    }
    let end = hdr.e_phoff.checked_add(table as u64);
    if end.is_none_or(|end| end > file.len() as u64) {
        return Err(LoadError::Truncated {
            what: "the program headers",
            needed: end.unwrap_or(u64::MAX),
            file_len: file.len(),
        });
    }
    Ok(hdr)
}

/// Reads the program header table (already known to lie inside the file).
fn parse_phdrs(file: &[u8], hdr: &Header) -> Result<Vec<ProgramHeader>, LoadError> {
    let truncated = LoadError::Truncated {
        what: "the program headers",
        needed: hdr
            .e_phoff
            .saturating_add(hdr.e_phnum as u64 * PHDR_SIZE as u64),
        file_len: file.len(),
    };
    let offset = usize::try_from(hdr.e_phoff).map_err(|_| truncated.clone())?;
    ProgramHeader::parse(file, offset, usize::from(hdr.e_phnum), Endian::Little)
        .map_err(|_| truncated)
}

/// The PT_INTERP path for the error message, if it is readable.
fn interp_name(file: &[u8], ph: &ProgramHeader) -> Option<String> {
    let start = usize::try_from(ph.p_offset).ok()?;
    let len = usize::try_from(ph.p_filesz).ok()?;
    let bytes = file.get(start..start.checked_add(len)?)?;
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
    let bytes = &bytes[..bytes.len().min(MAX_INTERP_QUOTE)];
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// Validates one PT_LOAD; `None` for an empty one (p_memsz 0), which maps nothing.
fn check_load(file: &[u8], index: usize, ph: &ProgramHeader) -> Result<Option<Segment>, LoadError> {
    if ph.p_filesz > ph.p_memsz {
        return Err(LoadError::FileszExceedsMemsz {
            index,
            filesz: ph.p_filesz,
            memsz: ph.p_memsz,
        });
    }
    let in_file = ph
        .p_offset
        .checked_add(ph.p_filesz)
        .is_some_and(|end| end <= file.len() as u64);
    if !in_file {
        return Err(LoadError::SegmentOutsideFile {
            index,
            offset: ph.p_offset,
            filesz: ph.p_filesz,
            file_len: file.len(),
        });
    }
    if ph.p_vaddr % PAGE != ph.p_offset % PAGE {
        return Err(LoadError::MisalignedSegment {
            index,
            vaddr: ph.p_vaddr,
            offset: ph.p_offset,
        });
    }
    let end = ph.p_vaddr.checked_add(ph.p_memsz);
    if end.and_then(page_up).is_none() {
        return Err(LoadError::AddressOverflow { index });
    }
    if ph.p_memsz == 0 {
        return Ok(None);
    }
    Ok(Some(Segment {
        index,
        vaddr: ph.p_vaddr,
        memsz: ph.p_memsz,
        offset: ph.p_offset,
        filesz: ph.p_filesz,
        prot: Prot::from_elf_flags(ph.p_flags),
    }))
}

/// Turns per-segment page extents into sorted, disjoint ranges; pages covered by several
/// segments get the union of their protections, and equal neighbours are merged.
fn merge_pages(extents: &[(u64, u64, Prot)]) -> Vec<PageRange> {
    let mut bounds: Vec<u64> = extents.iter().flat_map(|e| [e.0, e.1]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut pages: Vec<PageRange> = Vec::new();
    for w in bounds.windows(2) {
        let (start, end) = (w[0], w[1]);
        let mut covered = false;
        let mut prot = Prot::empty();
        for e in extents.iter().filter(|e| e.0 <= start && end <= e.1) {
            covered = true;
            prot |= e.2;
        }
        if !covered {
            continue;
        }
        match pages.last_mut() {
            Some(last) if last.end == start && last.prot == prot => last.end = end,
            _ => pages.push(PageRange { start, end, prot }),
        }
    }
    pages
}

/// The (unrelocated) address of the program header table in memory.
///
/// With PT_PHDR, its p_vaddr, which must be where the table's file bytes are loaded. Without,
/// the address at which e_phoff lands inside a PT_LOAD's file bytes (Linux's method).
fn phdr_vaddr(
    hdr: &Header,
    phdr_ph: Option<&ProgramHeader>,
    segments: &[Segment],
) -> Result<u64, LoadError> {
    let table = u64::from(hdr.e_phnum) * PHDR_SIZE as u64;
    // e_phoff + table cannot overflow: parse_header checked it against the file length.
    let phoff = hdr.e_phoff;
    match phdr_ph {
        None => segments
            .iter()
            .find(|s| s.offset <= phoff && phoff + table <= s.offset + s.filesz)
            .map(|s| s.vaddr + (phoff - s.offset))
            .ok_or(LoadError::PhdrsNotMapped),
        // PT_PHDR must point at where the table's file bytes are loaded: otherwise AT_PHDR
        // would point at memory that does not hold the program headers (libc reads PT_TLS
        // through it).
        Some(ph) => {
            let holds_table = |s: &Segment| {
                let (v, file_end) = (ph.p_vaddr, s.vaddr + s.filesz);
                s.vaddr <= v
                    && v.checked_add(table).is_some_and(|end| end <= file_end)
                    && s.offset + (v - s.vaddr) == phoff
            };
            if segments.iter().any(holds_table) {
                Ok(ph.p_vaddr)
            } else {
                Err(LoadError::PhdrsNotMapped)
            }
        }
    }
}

/// Validates PT_TLS: its initialized bytes must be file bytes of one PT_LOAD.
fn check_tls(
    index: usize,
    ph: &ProgramHeader,
    segments: &[Segment],
    reloc: &dyn Fn(u64) -> Option<u64>,
) -> Result<TlsTemplate, LoadError> {
    let bad = |reason| LoadError::BadTls { reason };
    if ph.p_filesz > ph.p_memsz {
        return Err(bad("p_filesz exceeds p_memsz"));
    }
    if ph.p_memsz >= USER_SPACE_END {
        return Err(bad("p_memsz is larger than user space"));
    }
    let align = ph.p_align.max(1);
    if !align.is_power_of_two() {
        return Err(bad("p_align is not a power of two"));
    }
    let init_end = ph
        .p_vaddr
        .checked_add(ph.p_filesz)
        .ok_or(LoadError::AddressOverflow { index })?;
    let inside = segments.iter().any(|s| {
        let file_end = s.vaddr + s.filesz;
        if ph.p_filesz == 0 {
            s.vaddr <= ph.p_vaddr && ph.p_vaddr <= s.end()
        } else {
            s.vaddr <= ph.p_vaddr && init_end <= file_end
        }
    });
    if !inside {
        return Err(bad("the initialization image is not loaded from the file"));
    }
    Ok(TlsTemplate {
        vaddr: reloc(ph.p_vaddr).ok_or(LoadError::AddressOverflow { index })?,
        filesz: ph.p_filesz,
        memsz: ph.p_memsz,
        align,
    })
}
