//! The one error type of the crate.

use alloc::string::String;
use core::fmt;
use ktls_abi::Errno;

/// Why an executable cannot be planned or an initial stack cannot be built.
///
/// Every variant has a one-line [`Display`](fmt::Display) message meant for the kernel log and
/// an [`errno`](LoadError::errno) for execve's return value. `index` fields are program-header
/// indices (0-based, file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    // ---- ELF header ----
    /// The file is too short for a structure the headers describe.
    Truncated {
        what: &'static str,
        needed: u64,
        file_len: usize,
    },
    /// The file does not start with `\x7fELF`.
    NotElf,
    /// EI_CLASS is not ELFCLASS64.
    NotElf64 { class: u8 },
    /// EI_DATA is not ELFDATA2LSB.
    NotLittleEndian { data: u8 },
    /// e_machine is not EM_X86_64.
    WrongMachine { machine: u16 },
    /// e_type is neither ET_EXEC nor ET_DYN.
    WrongType { e_type: u16 },
    /// e_phentsize is not the size of an Elf64_Phdr.
    BadPhentsize { phentsize: u16 },
    /// e_phnum is 0, or the table is larger than Linux accepts.
    BadPhnum { phnum: u16 },
    /// The program has a PT_INTERP: it needs a dynamic linker.
    DynamicallyLinked { interpreter: Option<String> },

    // ---- program headers ----
    /// No PT_LOAD with a non-zero p_memsz.
    NoLoadSegment,
    /// A PT_LOAD's file bytes run past the end of the file.
    SegmentOutsideFile {
        index: usize,
        offset: u64,
        filesz: u64,
        file_len: usize,
    },
    /// A PT_LOAD has p_filesz > p_memsz.
    FileszExceedsMemsz {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    /// A segment's address range wraps around the address space.
    AddressOverflow { index: usize },
    /// A PT_LOAD ends above the user half of the address space.
    SegmentOutsideUserSpace { index: usize, start: u64, end: u64 },
    /// A PT_LOAD starts below the lowest mappable address.
    SegmentBelowMinAddr { index: usize, vaddr: u64 },
    /// p_vaddr and p_offset disagree modulo the page size.
    MisalignedSegment {
        index: usize,
        vaddr: u64,
        offset: u64,
    },
    /// Two PT_LOADs cover the same bytes of memory.
    OverlappingSegments { first: usize, second: usize },
    /// e_entry is not inside any PT_LOAD.
    EntryNotLoaded { entry: u64 },
    /// The program headers are not in the loaded image, so AT_PHDR cannot be given.
    PhdrsNotMapped,
    /// The PT_TLS header is unusable.
    BadTls { reason: &'static str },
    /// The kernel passed a load address for a static PIE that is not page aligned.
    BadPieBase { base: u64 },

    // ---- initial stack ----
    /// One argument, environment string or the execfn is longer than MAX_ARG_STRLEN.
    ArgTooLong { what: &'static str, len: usize },
    /// Arguments and environment together exceed the limit.
    ArgsTooLarge { size: u64, limit: u64 },
    /// A string to place on the stack contains a NUL byte.
    NulInString { what: &'static str, index: usize },
    /// The stack top is unusable, or the image does not fit below it.
    BadStackTop { top: u64, reason: &'static str },
    /// The caller's auxiliary vector contains an entry the builder owns.
    BadAuxv { key: u64 },
    /// `parse_stack` found something that is not a well-formed initial stack.
    BadStack { reason: &'static str },
}

impl LoadError {
    /// The errno execve returns for this error: E2BIG for oversized arguments, EINVAL for bad
    /// kernel-side parameters, ENOEXEC for everything about the file.
    pub fn errno(&self) -> Errno {
        match self {
            LoadError::ArgTooLong { .. } | LoadError::ArgsTooLarge { .. } => Errno::E2BIG,
            LoadError::BadPieBase { .. }
            | LoadError::NulInString { .. }
            | LoadError::BadStackTop { .. }
            | LoadError::BadAuxv { .. }
            | LoadError::BadStack { .. } => Errno::EINVAL,
            _ => Errno::ENOEXEC,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            Truncated {
                what,
                needed,
                file_len,
            } => write!(
                f,
                "truncated ELF file: {what} need {needed} bytes, the file has {file_len}"
            ),
            NotElf => f.write_str("not an ELF file (bad magic)"),
            NotElf64 { class } => write!(
                f,
                "not a 64-bit ELF file (EI_CLASS {class}); ktls runs x86_64 executables only"
            ),
            NotLittleEndian { data } => {
                write!(f, "not a little-endian ELF file (EI_DATA {data})")
            }
            WrongMachine { machine } => write!(
                f,
                "ELF file is for machine {machine}, not x86_64 (EM_X86_64 = 62)"
            ),
            WrongType { e_type } => write!(
                f,
                "ELF type {e_type} is not executable (want ET_EXEC or a static-PIE ET_DYN)"
            ),
            BadPhentsize { phentsize } => {
                write!(f, "bad ELF e_phentsize {phentsize} (want 56)")
            }
            BadPhnum { phnum } => write!(
                f,
                "bad ELF e_phnum {phnum} (the program header table must be 1 to 4096 bytes)"
            ),
            DynamicallyLinked { interpreter } => {
                f.write_str("program is dynamically linked")?;
                if let Some(i) = interpreter {
                    write!(f, " (interpreter {i:?})")?;
                }
                f.write_str("; ktls runs static executables only")
            }
            NoLoadSegment => f.write_str("ELF file has no loadable segment"),
            SegmentOutsideFile {
                index,
                offset,
                filesz,
                file_len,
            } => write!(
                f,
                "segment {index}: file bytes {offset:#x}+{filesz:#x} run past the end of the \
                 file ({file_len:#x} bytes)"
            ),
            FileszExceedsMemsz {
                index,
                filesz,
                memsz,
            } => write!(
                f,
                "segment {index}: p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}"
            ),
            AddressOverflow { index } => {
                write!(f, "segment {index}: address range overflows")
            }
            SegmentOutsideUserSpace { index, start, end } => write!(
                f,
                "segment {index}: {start:#x}..{end:#x} is outside user space"
            ),
            SegmentBelowMinAddr { index, vaddr } => write!(
                f,
                "segment {index}: address {vaddr:#x} is below the lowest mappable address"
            ),
            MisalignedSegment {
                index,
                vaddr,
                offset,
            } => write!(
                f,
                "segment {index}: p_vaddr {vaddr:#x} and p_offset {offset:#x} differ modulo \
                 the page size"
            ),
            OverlappingSegments { first, second } => {
                write!(f, "segments {first} and {second} overlap in memory")
            }
            EntryNotLoaded { entry } => write!(
                f,
                "entry point {entry:#x} is not inside any loadable segment"
            ),
            PhdrsNotMapped => f.write_str("the program headers are not inside a loadable segment"),
            BadTls { reason } => write!(f, "bad PT_TLS segment: {reason}"),
            BadPieBase { base } => {
                write!(f, "static-PIE load address {base:#x} is not page aligned")
            }
            ArgTooLong { what, len } => {
                write!(
                    f,
                    "{what} of {len} bytes is too long (the limit is {} bytes with its NUL)",
                    ktls_abi::mm::MAX_ARG_STRLEN
                )
            }
            ArgsTooLarge { size, limit } => write!(
                f,
                "arguments and environment need {size} bytes, more than the limit of {limit}"
            ),
            NulInString { what, index } => write!(f, "{what} {index} contains a NUL byte"),
            BadStackTop { top, reason } => {
                write!(f, "bad initial stack top {top:#x}: {reason}")
            }
            BadAuxv { key } => write!(
                f,
                "auxiliary vector entry {key} is reserved for the stack builder"
            ),
            BadStack { reason } => write!(f, "malformed initial stack: {reason}"),
        }
    }
}

impl core::error::Error for LoadError {}
