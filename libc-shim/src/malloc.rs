//! malloc and friends over mmap: power-of-two size classes from 32 to 4096 bytes carved from
//! 64 KiB slabs, with one free list per class; bigger blocks get their own mapping. One spin
//! lock (yielding the CPU while it waits) makes it thread-safe.
//!
//! Every block starts with a 16-byte header in front of the pointer the caller gets, so
//! pointers are 16-byte aligned and `free` knows the block's kind:
//!
//! * a class block: `[class, 0]`;
//! * a mapping of its own: `[LARGE, mapping length]`;
//! * an over-aligned block (aligned_alloc): `[ALIGNED, distance back to the block it lives in]`.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::layout::align_up;
use crate::sys;

const HEADER: usize = 16;
const MIN_SHIFT: usize = 5; // 32-byte blocks (16 usable)
const CLASSES: usize = 8; // ... up to 4096-byte blocks
const SLAB: usize = 64 * 1024;
const PAGE: usize = 4096;
const LARGE: usize = usize::MAX;
const ALIGNED: usize = usize::MAX - 1;

/// The lock and the free lists.
struct Heap {
    lock: AtomicBool,
}

static HEAP: Heap = Heap {
    lock: AtomicBool::new(false),
};

struct Guard;

impl Heap {
    fn lock(&self) -> Guard {
        let mut spins = 0u32;
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // The holder may be preempted on this very CPU: let it run.
                sys::sched_yield();
            }
        }
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        HEAP.lock.store(false, Ordering::Release);
    }
}

/// The class of a request of `size` usable bytes, if a class fits it.
fn class_of(size: usize) -> Option<usize> {
    let total = size.checked_add(HEADER)?;
    (0..CLASSES).find(|&c| total <= 1 << (MIN_SHIFT + c))
}

/// Usable bytes of a block of class `c`.
fn class_usable(c: usize) -> usize {
    (1 << (MIN_SHIFT + c)) - HEADER
}

/// The raw memory work: free lists threaded through free blocks, headers, mappings.
mod raw {
    use super::*;
    use core::cell::UnsafeCell;

    /// Heads of the free lists, guarded by `HEAP.lock`.
    struct Lists(UnsafeCell<[usize; CLASSES]>);
    // SAFETY: only accessed with HEAP.lock held (a `Guard` proves it).
    unsafe impl Sync for Lists {}
    static FREE: Lists = Lists(UnsafeCell::new([0; CLASSES]));

    fn lists(_g: &mut Guard) -> &mut [usize; CLASSES] {
        // SAFETY: the guard proves the lock is held, so this is the only reference.
        unsafe { &mut *FREE.0.get() }
    }

    fn write_header(block: usize, kind: usize, extra: usize) -> *mut u8 {
        // SAFETY: `block` is the start of a block of ours at least HEADER bytes long, 16-byte
        // aligned, that nobody else uses.
        unsafe {
            (block as *mut usize).write(kind);
            (block as *mut usize).add(1).write(extra);
        }
        (block + HEADER) as *mut u8
    }

    /// The header of a pointer `malloc` returned.
    ///
    /// # Safety
    /// `p` came from this allocator and was not freed.
    pub unsafe fn header(p: *mut u8) -> (usize, usize) {
        let h = p as usize - HEADER;
        // SAFETY: every pointer we hand out has its header in the 16 bytes before it.
        unsafe {
            (
                (h as *const usize).read(),
                (h as *const usize).add(1).read(),
            )
        }
    }

    pub fn alloc_class(c: usize) -> *mut u8 {
        let mut g = HEAP.lock();
        let lists = lists(&mut g);
        if lists[c] == 0 {
            let size = 1usize << (MIN_SHIFT + c);
            let Ok(slab) = sys::mmap_anon(SLAB) else {
                return core::ptr::null_mut();
            };
            let slab = slab as usize;
            // Thread the new blocks into the list, last first, so they come out in order.
            let mut b = slab + SLAB - size;
            loop {
                // SAFETY: b is a fresh block of the new slab, owned by the free list now.
                unsafe { (b as *mut usize).write(lists[c]) };
                lists[c] = b;
                if b == slab {
                    break;
                }
                b -= size;
            }
        }
        let b = lists[c];
        // SAFETY: b is on the free list, so its first word is the next free block.
        lists[c] = unsafe { (b as *const usize).read() };
        write_header(b, c, 0)
    }

    pub fn alloc_large(size: usize) -> *mut u8 {
        let Some(len) = size.checked_add(HEADER + PAGE - 1).map(|n| n & !(PAGE - 1)) else {
            return core::ptr::null_mut();
        };
        match sys::mmap_anon(len) {
            Ok(m) => write_header(m as usize, LARGE, len),
            Err(_) => core::ptr::null_mut(),
        }
    }

    /// Marks `p` (inside a block of ours) as an over-aligned pointer into `block`.
    pub fn aligned_header(p: usize, block: *mut u8) -> *mut u8 {
        write_header(p - HEADER, ALIGNED, p - block as usize)
    }

    /// # Safety
    /// `p` came from this allocator, is not freed, and nobody uses it afterwards.
    pub unsafe fn free(p: *mut u8) {
        // SAFETY: per the caller.
        let (kind, extra) = unsafe { header(p) };
        match kind {
            LARGE => {
                // SAFETY: the block is a mapping of its own of `extra` bytes, given up.
                let _ = unsafe { sys::munmap((p as usize - HEADER) as *mut u8, extra) };
            }
            // SAFETY: the real block is `extra` bytes before; freeing it frees `p`.
            ALIGNED => unsafe { free((p as usize - extra) as *mut u8) },
            c if c < CLASSES => {
                let b = p as usize - HEADER;
                let mut g = HEAP.lock();
                let lists = lists(&mut g);
                // SAFETY: the block is ours again; its first word links it into the list.
                unsafe { (b as *mut usize).write(lists[c]) };
                lists[c] = b;
            }
            _ => {
                crate::die(b"free(): invalid pointer\n");
            }
        }
    }

    /// Copies `n` bytes between two live blocks.
    ///
    /// # Safety
    /// Both ranges are valid and do not overlap.
    pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: per the caller.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, n) }
    }

    /// # Safety
    /// `[p, p + n)` is a live block of ours.
    pub unsafe fn zero(p: *mut u8, n: usize) {
        // SAFETY: per the caller.
        unsafe { core::ptr::write_bytes(p, 0, n) }
    }
}

/// malloc: a 16-byte aligned block of at least `size` bytes, or null. `malloc(0)` returns a
/// unique pointer.
pub fn malloc(size: usize) -> *mut u8 {
    match class_of(size) {
        Some(c) => raw::alloc_class(c),
        None => raw::alloc_large(size),
    }
}

/// Usable bytes of the block `p`.
///
/// # Safety
/// `p` came from this allocator and was not freed.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: per the caller.
    match unsafe { raw::header(p) } {
        (LARGE, len) => len - HEADER,
        (ALIGNED, back) => {
            // SAFETY: the enclosing block is live too.
            unsafe { usable_size((p as usize - back) as *mut u8) - back }
        }
        (c, _) if c < CLASSES => class_usable(c),
        _ => 0,
    }
}

/// free. Null is ignored.
///
/// # Safety
/// `p` is null or came from this allocator, was not freed, and is not used afterwards.
pub unsafe fn free(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: per the caller.
        unsafe { raw::free(p) }
    }
}

/// calloc: `n * size` zeroed bytes, or null on overflow or exhaustion.
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return core::ptr::null_mut();
    };
    let p = malloc(total);
    if !p.is_null() {
        // SAFETY: p is a fresh block of at least `total` bytes.
        unsafe { raw::zero(p, total) };
    }
    p
}

/// realloc, as glibc: null `p` is malloc, size 0 frees and returns null; the block stays where
/// it is when it is big enough and not much too big.
///
/// # Safety
/// As [`free`] for `p`.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: per the caller.
        unsafe { free(p) };
        return core::ptr::null_mut();
    }
    // SAFETY: per the caller.
    let have = unsafe { usable_size(p) };
    if size <= have && size >= have / 4 {
        return p;
    }
    let q = malloc(size);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; min(have, size) fits in both.
        unsafe {
            raw::copy(q, p, have.min(size));
            free(p);
        }
    }
    q
}

/// aligned_alloc: a block of `size` bytes aligned to `align` (a power of two), or null.
pub fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    if align <= HEADER {
        return malloc(size);
    }
    // Room to move the pointer up to the alignment with a header in front of it.
    let Some(total) = size.checked_add(align + HEADER) else {
        return core::ptr::null_mut();
    };
    let block = malloc(total);
    if block.is_null() {
        return block;
    }
    let p = align_up(block as usize + HEADER, align);
    raw::aligned_header(p, block)
}
