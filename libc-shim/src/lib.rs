//! The ktls libc shim: a minimal C runtime for static x86_64 executables that reserves and
//! registers a KTLS area for every thread (spec/ktls.md, section 11: the libc contract), and
//! falls back to plain rseq and system calls on kernels without KTLS (Linux).
//!
//! * As `libktls_shim.a` with `crt/crt0.S` and `include/ktls.h` it is a tiny libc for C
//!   programs built with `gcc -nostdlib -static` (see README.md for the command).
//! * As an rlib it is the runtime of Rust `no_std` programs: enable the `start` feature for
//!   `_start`, define `#[no_mangle] extern "C" fn main(argc, argv, envp) -> i32`, and use the
//!   Rust API below ([`gettid`], [`spawn`], [`println!`], [`ShimAlloc`], ...).
//!
//! Layout and placement of the area: see [`layout`]. Every number comes from `ktls-abi`.
#![cfg_attr(not(test), no_std)]

pub mod auxv;
pub mod cabi;
pub mod elf;
pub mod fmt;
pub mod ids;
pub mod layout;
pub mod malloc;
pub mod mem;
pub mod printf;
pub mod rt;
#[cfg(not(test))]
pub mod start;
pub mod sys;
pub mod thread;
pub mod tls;
pub mod tp;
pub mod vdso;

#[cfg(test)]
mod tests;

use core::ffi::c_void;

pub use ids::{
    clock_gettime, getegid, geteuid, getgid, getpid, gettid, getuid, ktls_cpu, ktls_offset,
    ktls_size, rseq_cpu, sched_getcpu,
};
pub use layout::{Registration, LEVEL_BUILT_WITH};
pub use thread::current_registration;

/// Writes `msg` to standard error and aborts.
pub fn die(msg: &[u8]) -> ! {
    let _ = sys::write_all(2, b"ktls-shim: ");
    let _ = sys::write_all(2, msg);
    cabi::abort()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let mut out = Stderr(printf::FdSink::new(2));
    let _ = writeln!(out, "ktls-shim: panic: {info}");
    out.0.flush();
    cabi::abort()
}

/// The precompiled `core` (built for unwinding) refers to the unwinder's personality routine
/// from its unwind tables; with `panic = "abort"` nothing ever unwinds, so nothing calls it.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// A joinable thread made by [`spawn`].
pub struct JoinHandle(*mut thread::Thread);

// SAFETY: the handle is just the address of the thread's control block; joining from another
// thread is fine (the kernel's futex and the block's atomics do the synchronisation).
unsafe impl Send for JoinHandle {}

impl JoinHandle {
    /// Waits for the thread and returns what its function returned.
    pub fn join(self) -> *mut c_void {
        // SAFETY: the handle came from spawn and `self` is consumed, so it is joined once.
        unsafe { thread::join(self.0) }
    }

    /// How the thread's KTLS area was registered (valid once the thread has started).
    pub fn registration(&self) -> Registration {
        // SAFETY: the control block lives until join, which consumes the handle.
        thread::registration_of(unsafe { &*self.0 })
    }
}

/// Starts a thread running `start(arg)` with its own stack, TLS block and KTLS area.
pub fn spawn(start: thread::StartFn, arg: *mut c_void) -> Result<JoinHandle, ktls_abi::Errno> {
    thread::spawn(start, arg).map(JoinHandle)
}

/// The raw KTLS load of the 4-byte field at `offset` in the calling thread's area: `Some`
/// when the kernel fills the field (`__ktls_size` reaches its end) and the area is live.
pub fn ktls_read(offset: u32) -> Option<u32> {
    ids::read(offset)
}

/// Standard output for `core::fmt` (used by [`print!`] and [`println!`]); each `write_fmt`
/// goes out in as few write(2) calls as its size allows.
pub struct Stdout(pub printf::FdSink);
/// Standard error, likewise.
pub struct Stderr(pub printf::FdSink);

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        fmt::Sink::put(&mut self.0, s.as_bytes());
        Ok(())
    }
}

impl core::fmt::Write for Stderr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        fmt::Sink::put(&mut self.0, s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(fd: i32, args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let mut out = Stdout(printf::FdSink::new(fd));
    let _ = out.write_fmt(args);
    out.0.flush();
}

/// `print!` for `no_std` programs: to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(1, format_args!($($arg)*)) };
}

/// `println!` for `no_std` programs: to standard output, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::_print(1, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::_print(1, format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` for `no_std` programs: to standard error, with a newline.
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => { $crate::_print(2, format_args!("{}\n", format_args!($($arg)*))) };
}

/// A `#[global_allocator]` for Rust `no_std` programs: the shim's malloc.
pub struct ShimAlloc;

// SAFETY: malloc/aligned_alloc return blocks of at least the requested size and alignment that
// stay valid until freed; free and realloc take only pointers they returned.
unsafe impl core::alloc::GlobalAlloc for ShimAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        malloc::aligned_alloc(layout.align(), layout.size())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: core::alloc::Layout) {
        // SAFETY: per GlobalAlloc's contract, ptr came from alloc.
        unsafe { malloc::free(ptr) }
    }
    unsafe fn realloc(
        &self,
        ptr: *mut u8,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: per GlobalAlloc's contract, ptr came from alloc with this layout.
            return unsafe { malloc::realloc(ptr, new_size) };
        }
        let q = malloc::aligned_alloc(layout.align(), new_size);
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                malloc::free(ptr);
            }
        }
        q
    }
}
