//! memcpy, memmove, memset, memcmp, bcmp, strlen and a few string functions: the calls C
//! compilers and rustc emit on their own. The copies and fills are `rep movsb` / `rep stosb`
//! (fast on every x86_64 with ERMS, and impossible for the compiler to turn back into a call
//! to themselves); the comparisons are plain loops.
//!
//! In the host tests these are ordinary Rust functions (glibc's are the real ones there), so
//! the tests can compare the two.

use core::arch::asm;

/// # Safety
/// `[src, src + n)` readable, `[dst, dst + n)` writable, not overlapping.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: per the caller; `rep movsb` copies RCX bytes forward (the ABI keeps DF clear).
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// # Safety
/// `[src, src + n)` readable, `[dst, dst + n)` writable; they may overlap.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst below src, or no overlap: a forward copy reads every byte before writing it.
        // SAFETY: per the caller.
        return unsafe { memcpy(dst, src, n) };
    }
    // dst inside (src, src + n): copy backwards, from the last byte down.
    // SAFETY: per the caller; with DF set `rep movsb` walks down from RSI/RDI; DF is cleared
    // again before the asm ends, as the ABI requires.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
    dst
}

/// # Safety
/// `[dst, dst + n)` writable.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: per the caller; `rep stosb` stores AL RCX times, forward.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// # Safety
/// Both ranges readable for `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, per the caller.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// memcmp's equality-only sibling, which LLVM emits for `==` on byte slices.
///
/// # Safety
/// As [`memcmp`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: per the caller.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to the terminator is readable, per the caller. The volatile read
    // keeps LLVM from recognising the loop as strlen and calling this very function.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// # Safety
/// `s` is readable up to its terminator or `max` bytes, whichever comes first.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn strnlen(s: *const u8, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: as for strlen, never beyond `max`.
    while n < max && unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// # Safety
/// Both are NUL-terminated strings.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn strcmp(a: *const u8, b: *const u8) -> i32 {
    // SAFETY: per the caller; usize::MAX never limits.
    unsafe { strncmp(a, b, usize::MAX) }
}

/// # Safety
/// Both are readable up to their terminator or `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn strncmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: bytes up to and including the first terminator are readable.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y || x == 0 {
            return x as i32 - y as i32;
        }
    }
    0
}
