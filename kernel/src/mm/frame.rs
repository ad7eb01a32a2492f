//! Physical frame allocator for 4 KiB frames.
//!
//! Frames never handed out yet are taken from the boot memory ranges with a bump pointer, so
//! boot does not touch (and make the hypervisor back) every page of RAM. Freed frames go on
//! an intrusive free list: each holds the physical address of the next in its first 8 bytes,
//! reached through the direct map. Both paths are O(1) and need no memory of their own. The
//! free count is what `/proc/meminfo` reports and what the leak tests compare.

use super::PAGE_SIZE;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// A 4 KiB-aligned physical address owned by whoever allocated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame(pub u64);

const MAX_RANGES: usize = 64;

struct FreeList {
    /// Head of the list of freed frames; 0 = empty (frame 0 is never handed out).
    head: u64,
    /// Untouched ranges [next, end), consumed from the front.
    ranges: [(u64, u64); MAX_RANGES],
    nranges: usize,
}

static FREE: Mutex<FreeList> = Mutex::new(FreeList {
    head: 0,
    ranges: [(0, 0); MAX_RANGES],
    nranges: 0,
});
static FREE_COUNT: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

/// Adds the frames of [start, end) (physical, page-aligned inward) to the pool.
pub fn add_region(start: u64, end: u64) {
    let start = (start.max(PAGE_SIZE as u64) + PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
    let end = end & !(PAGE_SIZE as u64 - 1);
    if end <= start {
        return;
    }
    let frames = ((end - start) / PAGE_SIZE as u64) as usize;
    let mut list = FREE.lock();
    let n = list.nranges;
    if n == MAX_RANGES {
        crate::warn!("too many memory ranges: {start:#x}..{end:#x} left unused");
        return;
    }
    list.ranges[n] = (start, end);
    list.nranges += 1;
    FREE_COUNT.fetch_add(frames, Ordering::Relaxed);
    TOTAL.fetch_add(frames, Ordering::Relaxed);
}

pub fn alloc() -> Option<Frame> {
    crate::arch::cpu::without_interrupts(|| {
        let mut list = FREE.lock();
        let frame = if list.head != 0 {
            let f = Frame(list.head);
            list.head = super::read_phys_u64(f.0);
            f
        } else {
            let n = list.nranges;
            let r = list.ranges[..n].iter_mut().find(|r| r.0 < r.1)?;
            let f = Frame(r.0);
            r.0 += PAGE_SIZE as u64;
            f
        };
        FREE_COUNT.fetch_sub(1, Ordering::Relaxed);
        Some(frame)
    })
}

/// A frame filled with zeros.
pub fn alloc_zeroed() -> Option<Frame> {
    let f = alloc()?;
    super::frame_bytes_mut(f).fill(0);
    Some(f)
}

pub fn free(frame: Frame) {
    debug_assert!(frame.0.is_multiple_of(PAGE_SIZE as u64) && frame.0 != 0);
    crate::arch::cpu::without_interrupts(|| {
        let mut list = FREE.lock();
        super::write_phys_u64(frame.0, list.head);
        list.head = frame.0;
        FREE_COUNT.fetch_add(1, Ordering::Relaxed);
    });
}

pub fn free_count() -> usize {
    FREE_COUNT.load(Ordering::Relaxed)
}

pub fn total_count() -> usize {
    TOTAL.load(Ordering::Relaxed)
}
