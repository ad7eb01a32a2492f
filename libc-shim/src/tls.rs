//! Building a thread's block in memory: the TLS image, the TCB and the (zeroed) KTLS area, as
//! [`crate::layout`] lays them out.

use crate::layout::tcb;
use crate::rt::Runtime;

/// Fills the block that starts at `block` (`rt.block.size` bytes, aligned to
/// `rt.block.tp_align`, already zeroed) for a thread whose control block is `thread` (0 for
/// the main thread); returns its thread pointer.
///
/// # Safety
/// `[block, block + rt.block.size)` is zeroed writable memory owned by the new thread, and
/// `rt.image`, if any, is the program's readable PT_TLS image.
pub unsafe fn init_block(rt: &Runtime, block: usize, thread: usize) -> usize {
    let tp = block + rt.block.below;
    // SAFETY: everything written lies in the block, per the layout; the image is readable.
    unsafe {
        if let Some(img) = rt.image {
            core::ptr::copy_nonoverlapping(
                img.addr as *const u8,
                (tp - rt.block.tls_offset) as *mut u8,
                img.filesz.min(img.memsz),
            );
        }
        let w = |off: usize, v: u64| ((tp + off) as *mut u64).write(v);
        w(tcb::SELF, tp as u64);
        w(tcb::SELF2, tp as u64);
        w(tcb::STACK_GUARD, rt.guards[0]);
        w(tcb::POINTER_GUARD, rt.guards[1]);
        w(tcb::THREAD, thread as u64);
    }
    tp
}
