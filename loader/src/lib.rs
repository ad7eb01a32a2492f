//! ELF loading plans and the x86_64 initial process stack, as pure `no_std` + `alloc` logic.
//!
//! The kernel's execve does I/O and page-table work; everything that can be decided from
//! bytes alone lives here, where it is tested on the host against real executables:
//!
//! * [`plan`] validates an ELF file (ELF64, little-endian, x86_64; ET_EXEC, or ET_DYN without
//!   PT_INTERP, i.e. a static PIE) and returns a [`LoadPlan`]: the page ranges to map with
//!   their protections, the file bytes to copy into them (everything else is zero, which is
//!   how bss and the tail of the last file page are cleared), the entry point, AT_PHDR, the
//!   PT_TLS template, PT_GNU_STACK and the initial break. The kernel maps `pages` zeroed,
//!   performs `copies`, and applies the protections; there is no partial-page file mapping
//!   logic left to get wrong. Dynamically linked programs (PT_INTERP) are refused:
//!   ktls runs static executables only.
//! * [`auxv_entries`] and [`build_stack`] produce the initial stack exactly as Linux 6.x's
//!   create_elf_tables lays it out (x86_64 psABI figure 3.9), with Linux's argument limits;
//!   [`parse_stack`] decodes one back, for tests and the kernel's self-checks.
//!
//! Only the ELF header and the program headers are read (with goblin's `elf64` types); section
//! headers, symbols and dynamic sections are never looked at. Files come from user space, so
//! no input makes these functions panic: every problem is a [`LoadError`], whose
//! [`errno`](LoadError::errno) is ENOEXEC for the file, E2BIG for oversized arguments.
//! All constants (page size, user-space end, auxv keys, argument limits) come from `ktls-abi`.
//!
//! Deliberate differences from Linux, all stricter: the whole program header table must be
//! loaded (for AT_PHDR) and PT_PHDR must agree with it; PT_LOAD segments must not overlap in
//! memory (Linux lets a later one replace pages of an earlier one); the entry point must lie
//! in a PT_LOAD; PT_TLS is validated. No address randomization is done here: the kernel chooses
//! `pie_base` and the stack top.
#![no_std]
extern crate alloc;

mod elf;
mod error;
mod stack;

pub use elf::{plan, FileCopy, LoadPlan, PageRange, Prot, TlsTemplate, MAX_PHDR_TABLE, PHDR_SIZE};
pub use error::LoadError;
pub use stack::{
    auxv_entries, build_stack, build_stack_with_limit, parse_stack, AuxvParams, ParsedStack,
    StackArgs, StackImage, DEFAULT_ARG_LIMIT,
};
