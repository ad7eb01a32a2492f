//! The system calls the vDSO falls back to: the `syscall` instruction itself, with the
//! kernel's raw result (a negative errno on failure), as Linux's vDSO returns it.
//!
//! The wrappers are `#[cold]` and never inlined, so the fallback stays out of the callers' fast
//! paths: a caller ends in a tail jump here.

use core::arch::asm;

/// `syscall(nr, a, b, c)`.
#[cold]
#[inline(never)]
pub fn syscall3(nr: usize, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kernel reads its arguments from these registers and clobbers only rax, rcx
    // and r11. What it writes to memory is what the caller asked the vDSO function to write.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
    ret
}
