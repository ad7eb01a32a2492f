//! Physical frame allocator for 4 KiB frames.
//!
//! Frames never handed out yet are taken from the boot memory ranges with a bump pointer, so
//! boot does not touch (and make the hypervisor back) every page of RAM. Freed frames go on
//! an intrusive free list: each holds the physical address of the next in its first 8 bytes,
//! reached through the direct map. Both paths are O(1) and need no memory of their own. The
//! free count is what `/proc/meminfo` reports and what the leak tests compare.
//!
//! A user frame may be mapped by several address spaces (MAP_SHARED memory, and private
//! pages shared copy-on-write after fork). Each mapping holds a reference: `share` adds one,
//! `release` drops one and frees the frame with the last. The count kept per frame is the
//! number of references beyond the first, so a frame fresh from `alloc` needs no setup.

use super::PAGE_SIZE;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
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

/// References beyond the first to each frame, indexed by frame number (see the module
/// comment). Set once at boot, covering every frame the allocator can hand out.
static SHARES: spin::Once<&'static [AtomicU32]> = spin::Once::new();

/// Sets up the reference counts for frames below physical address `end` (after the heap).
pub fn init_shares(end: u64) {
    SHARES.call_once(|| {
        let n = (end / PAGE_SIZE as u64) as usize;
        let mut v = Vec::with_capacity(n);
        v.resize_with(n, || AtomicU32::new(0));
        v.leak()
    });
}

fn shares(f: Frame) -> &'static AtomicU32 {
    let table = SHARES.get().expect("frame reference counts not set up");
    &table[(f.0 / PAGE_SIZE as u64) as usize]
}

/// Adds a reference to a frame the caller holds one to.
pub fn share(f: Frame) {
    shares(f).fetch_add(1, Ordering::AcqRel);
}

/// Whether anyone else holds a reference to a frame the caller holds one to.
pub fn is_shared(f: Frame) -> bool {
    shares(f).load(Ordering::Acquire) != 0
}

/// Drops the caller's reference to a frame; the last one frees it.
pub fn release(f: Frame) {
    let last = shares(f)
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_err();
    if last {
        free(f);
    }
}
