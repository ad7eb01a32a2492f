//! Reading the vvar page and the calling thread's KTLS area.
//!
//! The vvar page sits at `VVAR_OFFSET_FROM_VDSO` from the image's ELF header, which the linker
//! names `__ehdr_start`; a `lea` relative to the instruction pointer computes the address, so
//! the code needs no relocation and no GOT. Fields are read with `read_volatile` at their
//! offsets in `ktls_abi::vvar::Vvar`: the kernel changes them while the program runs, and
//! volatile reads are neither merged, repeated nor reordered among themselves.

use core::mem::offset_of;
use ktls_abi::auxv::HWCAP2_FSGSBASE;
use ktls_abi::ktls::{KtlsArea, KTLS_BASE};
use ktls_abi::vvar::{Vvar, VVAR_OFFSET_FROM_VDSO};

pub const SEQ: usize = offset_of!(Vvar, seq);
pub const CLOCK_MODE: usize = offset_of!(Vvar, clock_mode);
pub const TSC_SHIFT: usize = offset_of!(Vvar, tsc_shift);
pub const TSC_MULT: usize = offset_of!(Vvar, tsc_mult);
pub const BASE_TSC: usize = offset_of!(Vvar, base_tsc);
pub const BASE_MONO_NS: usize = offset_of!(Vvar, base_mono_ns);
pub const REALTIME_OFFSET_NS: usize = offset_of!(Vvar, realtime_offset_ns);
const KTLS_OFFSET: usize = offset_of!(Vvar, ktls_offset);
const KTLS_FEATURE_SIZE: usize = offset_of!(Vvar, ktls_feature_size);
const HWCAP2: usize = offset_of!(Vvar, hwcap2);

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

/// The thread pointer (spec section 10, step 3): RDFSBASE where the kernel enabled it, which
/// is exact and cannot fault; else the TCB self-pointer every psABI libc keeps at `%fs:0`.
#[inline(always)]
fn thread_pointer() -> u64 {
    let tp: u64;
    if read_u32(HWCAP2) as u64 & HWCAP2_FSGSBASE != 0 {
        // SAFETY: the kernel sets HWCAP2_FSGSBASE only when CR4.FSGSBASE is on.
        unsafe {
            core::arch::asm!("rdfsbase {}", out(reg) tp, options(nomem, nostack, preserves_flags))
        };
    } else {
        // SAFETY: reads the TCB's self-pointer. A process that fixed KTLS parameters has a libc
        // that set up TLS for its threads (the spec's assumption for this path).
        unsafe {
            core::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(readonly, nostack, preserves_flags)
            )
        };
    }
    tp
}

/// The u32 at `addr`, an address inside an area [`own_area`] or [`named_area`] returned.
#[inline(always)]
pub fn read_area_u32(addr: u64) -> u32 {
    // SAFETY: the area passed `ktls_abi::ktls::vdso_area`'s checks (aligned, in user space) and
    // is at the process's offset from a thread pointer, where the libc reserved an area in
    // every thread (the spec's assumption), or is one the caller named. `addr` is a field
    // below the filled size.
    unsafe { (addr as *const u32).read_volatile() }
}

/// The live KTLS area at `tp + offset`, `tp` the calling thread's pointer (`None`) or an area
/// the caller names (with offset 0), if the process has KTLS and the kernel fills the area up
/// to `end` at least: spec section 10, steps 2, 4 and 5.
///
/// The KTLS fields of the vvar page need no seqlock: the kernel writes them once in the page's
/// life (when the process fixes its parameters; execve brings a new page), `ktls_offset` before
/// `ktls_feature_size`, and `ktls_feature_size` stays 0 while `ktls_enabled` is 0. So a
/// nonzero size read here means the offset read after it is the final one (x86 does not
/// reorder loads with loads, and volatile reads keep their order).
#[inline(always)]
fn live_area(tp: Option<u64>, end: usize) -> Option<u64> {
    let filled = read_u32(KTLS_FEATURE_SIZE);
    if (filled as usize) < end {
        return None;
    }
    let (tp, offset) = match tp {
        Some(area) => (area, 0),
        None => (thread_pointer(), read_u64(KTLS_OFFSET) as i64),
    };
    let area = ktls_abi::ktls::vdso_area(tp, offset, filled)?;
    if read_area_u32(area + KTLS_BASE as u64) == 0 {
        return None;
    }
    Some(area)
}

/// The calling thread's live KTLS area, if it holds the bytes up to `end`.
#[inline(always)]
pub fn own_area(end: usize) -> Option<u64> {
    live_area(None, end)
}

/// The live KTLS area at `area`, if it holds the bytes up to `end`.
#[inline(always)]
pub fn named_area(area: u64, end: usize) -> Option<u64> {
    live_area(Some(area), end)
}

/// Offset and end of a u32 field of the area.
macro_rules! field {
    ($($f:tt)+) => {{
        let off = core::mem::offset_of!(ktls_abi::ktls::KtlsArea, $($f)+);
        (off, off + 4)
    }};
}
pub(crate) use field;

const _: () = assert!(offset_of!(KtlsArea, ktls_live) == KTLS_BASE as usize);
