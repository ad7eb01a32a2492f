//! Physical frame allocator: an intrusive free list of 4 KiB frames.
//!
//! Each free frame holds the physical address of the next free frame in its first 8 bytes
//! (reached through the direct map), so the allocator needs no memory of its own and both
//! allocation and freeing are O(1). The free count is what `/proc/meminfo` reports and what
//! the leak tests compare.

use super::{phys_to_virt, PAGE_SIZE};
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// A 4 KiB-aligned physical address owned by whoever allocated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame(pub u64);

struct FreeList {
    head: u64, // 0 = empty (frame 0 is never handed out)
}

static FREE: Mutex<FreeList> = Mutex::new(FreeList { head: 0 });
static FREE_COUNT: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

/// Adds the frames of [start, end) (physical, page-aligned inward) to the pool.
pub fn add_region(start: u64, end: u64) {
    let start = (start.max(PAGE_SIZE as u64) + PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
    let end = end & !(PAGE_SIZE as u64 - 1);
    let mut addr = start;
    while addr < end {
        free(Frame(addr));
        TOTAL.fetch_add(1, Ordering::Relaxed);
        addr += PAGE_SIZE as u64;
    }
}

pub fn alloc() -> Option<Frame> {
    crate::arch::cpu::without_interrupts(|| {
        let mut list = FREE.lock();
        if list.head == 0 {
            return None;
        }
        let frame = Frame(list.head);
        list.head = super::read_phys_u64(frame.0);
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
    debug_assert!(frame.0 % PAGE_SIZE as u64 == 0 && frame.0 != 0);
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

impl Frame {
    pub fn virt(self) -> u64 {
        phys_to_virt(self.0)
    }
}
