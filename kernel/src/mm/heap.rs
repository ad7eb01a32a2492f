//! The kernel heap: `linked_list_allocator` over one physically contiguous region taken from
//! the boot memory map, behind a lock that masks interrupts so an interrupt handler can never
//! find the heap locked by the code it interrupted.

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
