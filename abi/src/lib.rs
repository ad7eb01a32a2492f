//! The user/kernel contract of ktls, as Rust types: the single source of truth.
//!
//! Everything user space and the kernel must agree on lives here: Linux's x86_64 syscall
//! numbers, errno values, auxiliary-vector keys, flag values and the layout of every struct
//! that crosses the boundary. The kernel, the vDSO, the libc shim, the runner and the tests all
//! take their numbers from this crate and nowhere else. Struct layouts are `zerocopy` types with
//! compile-time size and offset assertions, so a wrong field order fails the build.
#![no_std]

pub mod auxv;
pub mod clone;
pub mod errno;
pub mod fs;
pub mod ktls;
pub mod mm;
pub mod poll;
pub mod prctl;
pub mod rseq;
pub mod signal;
pub mod syscall;
pub mod time;
pub mod tty;
pub mod uts;
pub mod vvar;

pub use errno::Errno;

/// The page size of x86_64 user space (AT_PAGESZ).
pub const PAGE_SIZE: usize = 4096;

/// First address above the user half of the x86_64 address space (47-bit user space).
pub const USER_SPACE_END: u64 = 0x0000_8000_0000_0000;

/// Asserts at compile time that a type has a size and that its fields sit at given offsets.
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $(assert!(core::mem::offset_of!($ty, $field) == $off);)*
        };
    };
}
