//! Loads and stores relative to the thread pointer (`%fs`), the way compilers access TLS.
//!
//! Sound only while FS points at a TCB of the layout in [`crate::layout`] with the KTLS area
//! reserved behind it: the shim sets that up for every thread before any code of the program
//! runs (in the host tests FS is glibc's TCB, and these are only used at offsets glibc's TCB
//! has too, or not at all when no area is registered).

use core::arch::asm;

/// The thread pointer, read from the TCB's self pointer at `%fs:0`.
#[inline(always)]
pub fn tp() -> usize {
    let v: usize;
    // SAFETY: every thread's FS points at a TCB whose first word is its own address (x86_64
    // psABI; ours and glibc's).
    unsafe {
        asm!("mov {}, qword ptr fs:[0]", out(reg) v, options(nostack, readonly, preserves_flags));
    }
    v
}

/// A 32-bit load from `%fs:off`, never merged with another (the kernel writes these fields).
///
/// # Safety
/// `[tp + off, tp + off + 4)` must be mapped and readable, 4-byte aligned.
#[inline(always)]
pub unsafe fn load_u32(off: isize) -> u32 {
    let v: u32;
    // SAFETY: the caller vouches for the address; a non-`pure` asm is never merged or hoisted.
    unsafe {
        asm!("mov {:e}, dword ptr fs:[{}]", out(reg) v, in(reg) off, options(nostack, readonly, preserves_flags));
    }
    v
}

/// A 32-bit store to `%fs:off`.
///
/// # Safety
/// `[tp + off, tp + off + 4)` must be writable memory the caller owns, 4-byte aligned.
#[inline(always)]
pub unsafe fn store_u32(off: isize, v: u32) {
    // SAFETY: the caller vouches for the address.
    unsafe {
        asm!("mov dword ptr fs:[{}], {:e}", in(reg) off, in(reg) v, options(nostack, preserves_flags));
    }
}

/// A 64-bit load from `%fs:off`.
///
/// # Safety
/// As [`load_u32`], 8 bytes.
#[inline(always)]
pub unsafe fn load_u64(off: isize) -> u64 {
    let v: u64;
    // SAFETY: the caller vouches for the address.
    unsafe {
        asm!("mov {}, qword ptr fs:[{}]", out(reg) v, in(reg) off, options(nostack, readonly, preserves_flags));
    }
    v
}
