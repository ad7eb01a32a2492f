//! The kernel heap: `linked_list_allocator` over one physically contiguous region taken from
//! the boot memory map, behind a lock that masks interrupts so an interrupt handler can never
//! find the heap locked by the code it interrupted.
//!
//! # Running out
//!
//! An allocation that fails where Rust cannot report it (`Arc::new`, `Box::new`, a `Vec` or
//! `BTreeMap` growing) panics the kernel, and stable Rust has no fallible `Arc`/`Box`
//! constructors. So nothing user space asks for may take the heap's last bytes. The rule,
//! like Linux's memory watermarks:
//!
//! * The last [`reserve`] bytes (1/16 of the heap, at least 1 MiB) are kept for the kernel's
//!   own bounded bookkeeping, which cannot fail gracefully: run and wait queues, exit and
//!   reaping, signal delivery. Their size is bounded by the number of threads, which the
//!   system-wide thread limit bounds in turn.
//! * Every path that makes the kernel keep something on user space's behalf (a process or
//!   thread, an open file or pipe, a mapping, a tmpfs node) first calls [`admit`], which says
//!   ENOMEM once the free heap is down to the reserve. What such a call then allocates
//!   infallibly is small (a few KiB) and comes out of the reserve's slack.
//! * Buffers whose size user space chooses (pipe contents, tmpfs file data, descriptor
//!   tables, kernel stacks) are allocated with `try_reserve` after asking [`can_spare`]
//!   whether they fit above the reserve, and fail with the syscall's ENOMEM/ENOSPC/EAGAIN.
//!
//! The heap does not grow: what it can give is fixed at boot, so these checks are exact
//! (up to fragmentation, which the reserve's size covers for small objects).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use spin::Mutex;

pub struct KernelHeap {
    heap: Mutex<Heap>,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    heap: Mutex::new(Heap::empty()),
};

static SIZE: AtomicUsize = AtomicUsize::new(0);

/// Hands the region [start, start + size) (direct-map virtual addresses) to the heap.
pub fn init(start: u64, size: usize) {
    // SAFETY: the caller (mm::init) carved this region out of free RAM; nothing else uses it.
    unsafe { HEAP.heap.lock().init(start as *mut u8, size) };
    SIZE.store(size, Ordering::Relaxed);
}

/// Bytes of heap in use.
pub fn used() -> usize {
    crate::arch::cpu::without_interrupts(|| HEAP.heap.lock().used())
}

/// Bytes of heap not in use.
pub fn free() -> usize {
    crate::arch::cpu::without_interrupts(|| HEAP.heap.lock().free())
}

/// The bytes kept for the kernel's own infallible allocations (see the module comment).
pub fn reserve() -> usize {
    (size() / 16).max(1 << 20)
}

/// Whether an allocation of `bytes` that user space asked for leaves the reserve untouched.
pub fn can_spare(bytes: usize) -> bool {
    free().saturating_sub(bytes) >= reserve()
}

/// ENOMEM once the free heap is down to the reserve: called before the kernel creates
/// something on user space's behalf (see the module comment).
pub fn admit() -> Result<(), ktls_abi::Errno> {
    if can_spare(0) {
        Ok(())
    } else {
        Err(ktls_abi::Errno::ENOMEM)
    }
}

pub fn size() -> usize {
    SIZE.load(Ordering::Relaxed)
}

// SAFETY: Heap::allocate_first_fit/deallocate implement the GlobalAlloc contract; the lock
// serialises all access and masks interrupts while held.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::arch::cpu::without_interrupts(|| {
            self.heap
                .lock()
                .allocate_first_fit(layout)
                .map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        crate::arch::cpu::without_interrupts(|| {
            if let Some(p) = core::ptr::NonNull::new(ptr) {
                // SAFETY: GlobalAlloc's contract: ptr came from alloc with this layout.
                unsafe { self.heap.lock().deallocate(p, layout) }
            }
        })
    }
}
