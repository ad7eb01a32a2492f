//! Frame-pointer backtraces, for the panic and hang reports. The kernel is built with frame
//! pointers (`.cargo/config.toml`): each frame begins with a record of two words, the caller's
//! rbp and the return address, and rbp points at it.
//!
//! The reports run where nothing may fault (a panic, an NMI), so the walk reads only what
//! looks like a kernel stack frame: an aligned address in memory the boot page tables map
//! for good (the first 4 GiB of the direct map, where the heap and so every kernel and IST
//! stack lives, or the kernel image, which holds the boot stack), each frame above the last
//! and within one stack's size of the first.

use super::boot::{BOOT_STACK_SIZE, KERNEL_VMA, PHYS_OFFSET};
use core::ops::Range;

/// The direct map of physical 0..4 GiB: mapped by the boot page tables, never unmapped.
const DIRECT_MAP_AT_BOOT: Range<u64> = PHYS_OFFSET..PHYS_OFFSET + (4 << 30);
/// The kernel image's mapping (physical 0..2 GiB at the top of the address space).
const KERNEL_IMAGE: Range<u64> = KERNEL_VMA..u64::MAX;
/// No kernel stack is larger than the boot stack.
const MAX_STACK: u64 = BOOT_STACK_SIZE as u64;
/// Frames beyond this many are not shown.
const MAX_FRAMES: usize = 32;

/// The caller's frame pointer.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads the frame pointer register; no memory access.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    rbp
}

/// Whether the frame record (two words) at `rbp` lies in always-mapped kernel memory.
fn readable_frame(rbp: u64) -> bool {
    let Some(last_byte) = rbp.checked_add(15) else {
        return false;
    };
    let inside = |r: &Range<u64>| r.contains(&rbp) && r.contains(&last_byte);
    rbp.is_multiple_of(8) && (inside(&DIRECT_MAP_AT_BOOT) || inside(&KERNEL_IMAGE))
}

/// The return addresses of the frame chain starting at `rbp`, innermost first; the walk stops
/// at anything that does not look like a kernel frame (see the module comment).
pub fn return_addresses(rbp: u64) -> impl Iterator<Item = u64> {
    let first = rbp;
    let mut next_rbp = Some(rbp);
    core::iter::from_fn(move || {
        let rbp = next_rbp.take()?;
        if !readable_frame(rbp) || rbp - first >= MAX_STACK {
            return None;
        }
        // SAFETY: `rbp` is aligned and the two words at it lie in memory that is always
        // mapped (readable_frame); they are only read.
        let (caller_rbp, ret) = unsafe {
            (
                (rbp as *const u64).read_volatile(),
                ((rbp + 8) as *const u64).read_volatile(),
            )
        };
        if ret < KERNEL_VMA {
            return None;
        }
        if caller_rbp > rbp {
            next_rbp = Some(caller_rbp);
        }
        Some(ret)
    })
    .take(MAX_FRAMES)
}
