//! Reading the vvar page (the KTLS getters in ktls.rs read it from assembly).
//!
//! The vvar page sits at `VVAR_OFFSET_FROM_VDSO` from the image's ELF header, which the linker
//! names `__ehdr_start`; a `lea` relative to the instruction pointer computes the address, so
//! the code needs no relocation and no GOT. Fields are read with `read_volatile` at their
//! offsets in `ktls_abi::vvar::Vvar`: the kernel changes them while the program runs, and
//! volatile reads are neither merged, repeated nor reordered among themselves.

use core::mem::offset_of;
use ktls_abi::vvar::{Vvar, VVAR_OFFSET_FROM_VDSO};

pub const SEQ: usize = offset_of!(Vvar, seq);
pub const CLOCK_MODE: usize = offset_of!(Vvar, clock_mode);
pub const TSC_SHIFT: usize = offset_of!(Vvar, tsc_shift);
pub const TSC_MULT: usize = offset_of!(Vvar, tsc_mult);
pub const BASE_TSC: usize = offset_of!(Vvar, base_tsc);
pub const BASE_MONO_NS: usize = offset_of!(Vvar, base_mono_ns);
pub const REALTIME_OFFSET_NS: usize = offset_of!(Vvar, realtime_offset_ns);

// The lea below hard-codes the distance.
const _: () = assert!(VVAR_OFFSET_FROM_VDSO == -4096);

/// The vvar page's address.
#[inline(always)]
fn base() -> *const u8 {
    let p: *const u8;
    // SAFETY: computes an address and touches nothing. `__ehdr_start` is the linker's hidden
    // symbol for the image's first byte, so this is a PC-relative reference the linker
    // resolves itself.
    unsafe {
        core::arch::asm!(
            "lea {}, [rip + __ehdr_start - 4096]",
            out(reg) p,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    p
}

/// The u32 at byte `off` of the vvar page.
#[inline(always)]
pub fn read_u32(off: usize) -> u32 {
    // SAFETY: the kernel maps the vvar page, readable, below every vDSO it maps, and `off` is
    // a field offset of `Vvar` (4-aligned, inside the page).
    unsafe { base().add(off).cast::<u32>().read_volatile() }
}

/// The u64 at byte `off` of the vvar page.
#[inline(always)]
pub fn read_u64(off: usize) -> u64 {
    // SAFETY: as for read_u32 (8-aligned field offsets).
    unsafe { base().add(off).cast::<u64>().read_volatile() }
}
